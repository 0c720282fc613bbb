"""Shared fixtures: a real redis-server per test session and services on a fixed clock."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio.cluster import RedisCluster

from actions import runtime
from actions.clock import SHANGHAI, FixedClock
from actions.posts import BridgePoster
from actions.preferences import Preferences
from actions.store import GameStore
from bot.app import Background, create_app
from bot.common.groups import Directory, Robot
from bot.common.settings import BridgeSettings
from qunzhu.names import NameBook
from qunzhu.redisconn import AsyncRedis, async_client, cluster_mode
from tests.redis_servers import start_cluster, start_single

TEST_BRAND = "testbrand"
# Minutes-long tests, started first: on two xdist workers, one left finishing a long test
# alone at the end costs the whole run that long.
LONGEST_FIRST = ("tests/bridge/test_fuzz.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (a stable sort: every worker collects the same order)."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith(LONGEST_FIRST) else 1)

# Last-good copies of operator files go to a scratch folder, never the project's .data/.
os.environ.setdefault("QZ_DATA_DIR", tempfile.mkdtemp(prefix="qz-data-"))


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """Where the real-Redis tests run: one server, or a Redis Cluster of three masters."""

    url: str
    cluster: bool


@pytest.fixture(scope="session")
def single_redis() -> Iterator[RedisTarget]:
    """A real redis-server for the session (QZ_TEST_REDIS_URL if given)."""
    given = os.environ.get("QZ_TEST_REDIS_URL")
    if given:
        yield RedisTarget(given, False)
        return
    servers = start_single()
    yield RedisTarget(servers.url, False)
    servers.stop()


@pytest.fixture(scope="session")
def cluster_redis() -> Iterator[RedisTarget]:
    """A real Redis Cluster of three masters on 127.0.0.1 for the session."""
    given = os.environ.get("QZ_TEST_REDIS_CLUSTER_URL")
    if given:
        yield RedisTarget(given, True)
        return
    servers = start_cluster(3)
    yield RedisTarget(servers.url, True)
    servers.stop()


@pytest.fixture(scope="session", params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> RedisTarget:
    """Every real-Redis test runs twice: on one server and on a three-master cluster."""
    target: RedisTarget = request.getfixturevalue(f"{request.param}_redis")
    return target


@pytest.fixture(scope="session")
def redis_url(redis_target: RedisTarget) -> str:
    """The URL of the Redis this test runs against."""
    return redis_target.url


@pytest.fixture
async def redis_client(redis_target: RedisTarget,
                       monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncRedis]:
    """A client on a flushed database, closed after the test; the code under test is told
    (QZ_REDIS_CLUSTER) which kind of Redis it is on, as a deployment would tell it."""
    monkeypatch.setenv("QZ_REDIS_CLUSTER", "1" if redis_target.cluster else "")
    client = async_client(redis_target.url, cluster=redis_target.cluster)
    if isinstance(client, RedisCluster):
        await client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.flushdb()
    yield client
    await client.close()


@pytest.fixture
def store(redis_client: AsyncRedis) -> GameStore:
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
    base = BridgeSettings(redis_url=redis_url, redis_cluster=cluster_mode(), api_token=API_TOKEN,
                          consumer=f"test-{os.getpid()}", reclaim_idle_ms=200)
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def bridge_api(redis_url: str, redis_client: AsyncRedis) -> AsyncIterator[TestServer]:
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
                           names=NameBook(store._r, TEST_BRAND),
                           preferences=Preferences(store._r, TEST_BRAND))
    runtime.use(svc)
    yield svc
    runtime.use(None)
    await poster.close()
