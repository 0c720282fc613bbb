"""The anti-spam budget on the bridge's own posts: operators' posts through the API and
welcomes pass it; reactions to a member's message and the staff group are left alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest

from bot.app import Background
from bot.common.budget import Budget, Gate
from bot.common.clock import RealClock, VirtualClock
from bot.common.names import NameResolver
from bot.common.store import BridgeStore
from bot.inbound.newcomers import Newcomers
from bot.wecom.api import WeComApi
from qunzhu.campaigns import CEILING
from qunzhu.config import SHANGHAI
from qunzhu.names import NameBook
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import CORP_ID, CORP_SECRET, BridgeFactory, Sim, directory, start_sim
from tests.bridge.test_events_bridge import TEXTS, Welcomes, arrives
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def local(hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, 25, hour, minute, tzinfo=SHANGHAI).timestamp()


async def send(url: str, group: str, body: dict[str, Any],
               idem: str = "") -> tuple[int, dict[str, Any]]:
    headers = {**AUTH, **({"Idempotency-Key": idem} if idem else {})}
    async with aiohttp.ClientSession() as s, s.post(
            f"{url}/api/groups/{group}/messages", json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_operators_posts_count_against_the_groups_budget(
    make_bridge: BridgeFactory,
) -> None:
    clock = VirtualClock(local(8))
    bridge = await make_bridge(clock=clock, background=Background(False, False, False))
    for n in range(CEILING.service_per_day):
        assert (await send(bridge.url, "g1", {"content": f"通知 {n}"}))[0] == 202
        status, doc = await send(bridge.url, "g1", {"content": "紧跟着一条"})
        assert status == 429 and doc["reason"] in ("service_spacing", "service_cap")
        clock.advance(CEILING.service_gap_minutes * 60)
    status, doc = await send(bridge.url, "g1", {"content": "第十一条"})
    assert status == 429 and doc["reason"] == "service_cap"
    clock.advance(local(14) - clock.now())

    status, first = await send(bridge.url, "g1", {"content": "上新", "kind": "promotional"},
                               "promo-1")
    assert status == 202
    status, doc = await send(bridge.url, "g1", {"content": "再上新", "kind": "promotional"})
    assert status == 429 and doc["reason"] == "spacing"
    assert doc["retry_at"] == "2026-11-25T16:00:00+08:00"
    status, again = await send(bridge.url, "g1", {"content": "上新", "kind": "promotional"},
                               "promo-1")
    assert status == 202 and again["id"] == first["id"], "a retry is not a second post"

    assert (await send(bridge.url, "g1", {"content": "连续7天！", "kind": "reaction"}))[0] == 202
    assert (await send(bridge.url, "staff", {"content": "交接卡片"}))[0] == 202
    status, doc = await send(bridge.url, "g1", {"content": "x", "kind": "spam"})
    assert status == 400 and "kind" in doc["error"]


async def test_in_quiet_hours_only_reactions_go_out_and_they_have_a_cap_of_their_own(
    make_bridge: BridgeFactory,
) -> None:
    bridge = await make_bridge(clock=VirtualClock(local(23, 30)),
                               background=Background(False, False, False))
    status, doc = await send(bridge.url, "g2", {"content": "晚安福利"})
    assert status == 429 and doc["reason"] == "quiet_hours"
    for n in range(CEILING.reaction_per_day):
        assert (await send(bridge.url, "g2", {"content": f"恭喜 {n}！",
                                              "kind": "reaction"}))[0] == 202
    status, doc = await send(bridge.url, "g2", {"content": "再恭喜！", "kind": "reaction"})
    assert status == 429 and doc["reason"] == "reaction_cap", "no way around the budget"


@pytest.fixture
async def live() -> Any:
    sim = await start_sim(RealClock())
    yield sim
    await sim.callbacks.close()
    await sim.server.close()


async def welcome_with(live: Sim, redis_client: AsyncRedis, hour: int) -> Welcomes:
    welcomes = Welcomes()
    dir_ = directory()
    async with aiohttp.ClientSession() as session:
        api = WeComApi(session, base_url=live.url, corp_id=CORP_ID, corp_secret=CORP_SECRET)
        names = NameResolver(NameBook(redis_client, "t"), api, lambda: dir_)
        gate = Gate(Budget(redis_client), lambda _chat: CEILING, lambda: "staff")
        newcomers = Newcomers(
            BridgeStore(redis_client), api, lambda: dir_, TEXTS, welcomes.post, lambda: "福利官",
            names, welcome_text=lambda chat: "欢迎 {新人} 来到{群名}，@{机器人} 说「打卡」试试～",
            gate=gate, clock=VirtualClock(local(hour)))
        at = arrives(live, "g5", "wm_new", "新来的朵朵")
        await newcomers.welcome("g5", at, 1)
    return welcomes


async def test_the_operators_welcome_names_the_newcomer(
    live: Sim, redis_client: AsyncRedis,
) -> None:
    welcomes = await welcome_with(live, redis_client, 10)
    [post] = welcomes.posts
    assert post.content == "欢迎 新来的朵朵 来到测试群g5，@福利官 说「打卡」试试～"


async def test_welcomes_use_the_groups_reactions_not_its_service_posts(
    live: Sim, redis_client: AsyncRedis,
) -> None:
    when = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
    budget = Budget(redis_client)
    for n in range(CEILING.reaction_per_day):  # the day's reactions are used up
        assert (await budget.decide("g5", f"r{n}", "reaction", when, CEILING)).sent
    welcomes = await welcome_with(live, redis_client, 10)
    assert welcomes.posts == []
    assert int(await redis_client.hget("qz:bridge:metrics", "welcomes_held") or 0) == 1
    assert (await budget.decide("g5", "svc", "service", when, CEILING)).sent, "untouched"
