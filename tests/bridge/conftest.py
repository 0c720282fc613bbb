"""Bridge fixtures: the real bridge app and the WeCom simulator, both on local ports."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import Background, create_app
from bot.common.clock import Clock, VirtualClock
from bot.common.groups import Directory, Robot
from bot.outbound.sender import SenderConfig
from bot.simulator.callbacks import CallbackSender
from bot.simulator.server import CONFIG, create_sim_app
from bot.simulator.state import SimMember, SimState
from qunzhu.redisconn import AsyncRedis
from tests.conftest import bridge_settings

TOKEN = "sandboxtoken0123456789"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
CORP_ID = "wwtestcorp01"
CORP_SECRET = "corpsecret-for-tests-only"
GROUPS = ("g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g10", "staff")


def key_of(group: str) -> str:
    """The robot key of a test group (known to the simulator)."""
    return f"robotkey-{group}-{'k' * 16}"


def directory(extra: dict[str, str] | None = None) -> Directory:
    """Robots for the test groups; `extra` adds groups with keys the simulator does not know."""
    robots = {g: Robot(g, f"测试群{g}", key_of(g), True) for g in GROUPS}
    for group, key in (extra or {}).items():
        robots[group] = Robot(group, group, key, False)
    return Directory(robots=robots, staff_chatid="staff", staff_mention=("kefu01",))


@dataclasses.dataclass
class Sim:
    """The simulator's state, its server and its callback sender."""

    state: SimState
    server: TestServer
    callbacks: CallbackSender

    @property
    def url(self) -> str:
        """Base URL of the simulated WeCom."""
        return str(self.server.make_url("")).rstrip("/")


@dataclasses.dataclass
class Bridge:
    """A running bridge app."""

    app: web.Application
    server: TestServer

    @property
    def url(self) -> str:
        """Base URL of the bridge."""
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
def vclock() -> VirtualClock:
    """Virtual time shared by the simulator and the bridge."""
    return VirtualClock()


async def start_sim(clock: Clock, bridge_url: str = "http://127.0.0.1:9") -> Sim:
    """A simulator with the test groups and a few members."""
    state = SimState(clock, token=TOKEN, aes_key=AES_KEY, corp_id=CORP_ID,
                     corp_secret=CORP_SECRET)
    for group in GROUPS:
        g = state.add_group(group, f"测试群{group}", key_of(group))
        for userid in ("alice", "bob"):
            g.members[userid] = SimMember(userid, userid.title(), int(clock.now()) - 3600)
    callbacks = CallbackSender(state, bridge_url, retry_delay_s=0.01)
    server = TestServer(create_sim_app(state, callbacks, bot_name="福利官",
                                       public_url="http://placeholder"))
    await server.start_server()
    server.app[CONFIG]["public_url"] = str(server.make_url("")).rstrip("/")
    return Sim(state, server, callbacks)


@pytest.fixture
async def sim(vclock: VirtualClock) -> AsyncIterator[Sim]:
    """The simulator on virtual time."""
    s = await start_sim(vclock)
    yield s
    await s.callbacks.close()
    await s.server.close()


BridgeFactory = Callable[..., Any]


@pytest.fixture
async def make_bridge(
    redis_url: str, redis_client: AsyncRedis
) -> AsyncIterator[BridgeFactory]:
    """Start bridges (as many as a test needs) with chosen loops, clock and settings."""
    started: list[TestServer] = []

    async def factory(
        *, wecom_api_base: str = "http://127.0.0.1:9", clock: Clock | None = None,
        background: Background | None = None, sender_config: SenderConfig | None = None,
        extra_groups: dict[str, str] | None = None, **overrides: Any,
    ) -> Bridge:
        values: dict[str, Any] = {"token": TOKEN, "encoding_aes_key": AES_KEY,
                                  "corp_id": CORP_ID, "corp_secret": CORP_SECRET,
                                  "wecom_api_base": wecom_api_base, **overrides}
        # Live processes have distinct consumer names (a name is one process's pending list).
        values.setdefault("consumer", f"test-{os.getpid()}-{len(started)}")
        settings = bridge_settings(values.pop("redis_url", redis_url), **values)
        app = create_app(settings, clock=clock, directory=directory(extra_groups),
                         background=background or Background(False, False, False),
                         sender_config=sender_config)
        server = TestServer(app)
        await server.start_server()
        started.append(server)
        return Bridge(app, server)

    yield factory
    for server in reversed(started):
        await server.close()


async def get_json(url: str, **kwargs: Any) -> Any:
    """GET a JSON document."""
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as resp:
        return await resp.json()
