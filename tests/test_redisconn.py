"""The cluster client comes back after the whole cluster was down (redis-py 4.6 did not)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.common.store import INBOX, BridgeStore
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, async_client, text_of
from tests.redis_servers import start_cluster

pytestmark = pytest.mark.redis


async def test_a_cluster_client_reconnects_after_an_outage_longer_than_its_pool() -> None:
    servers = start_cluster(3)
    try:
        client = async_client(servers.url, cluster=True, max_connections=4, timeout_s=1)
        store = BridgeStore(client)
        assert await store.accept("aibot:before", {"n": "0"}, 60)
        servers.kill_nodes()
        failures = 0
        for n in range(40):  # ten times the pool: each failed send used to lose a connection
            try:
                await store.accept(f"aibot:during-{n}", {"n": str(n)}, 60)
            except REDIS_DOWN:
                failures += 1
        assert failures == 40
        servers.restart_cluster()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert await store.accept("aibot:after", {"n": "1"}, 60)
                break
            except REDIS_DOWN:
                assert time.monotonic() < deadline, "the client never came back"
                await asyncio.sleep(0.25)
        assert await client.xlen(INBOX) >= 1
        await client.close()
    finally:
        servers.stop()


@pytest.mark.redis
async def test_stream_groups_are_created_and_read_on_any_redis(
    redis_client: AsyncRedis,
) -> None:
    # Redis 7 describes XGROUP/XINFO by subcommand; redis-py 4.6's asyncio cluster client
    # could not route them, so no consumer group could be made on a Redis 7 cluster.
    stream = "qz:{test}:jobs"
    await redis_client.xadd(stream, {"n": "1"})
    assert await redis_client.xgroup_create(stream, "workers", id="0")
    assert await redis_client.xgroup_createconsumer(stream, "workers", "w1")
    [group] = await redis_client.xinfo_groups(stream)
    assert text_of(group["name"]) == "workers" and group["consumers"] == 1
    rows = await redis_client.xreadgroup("workers", "w1", {stream: ">"}, count=5)
    assert len(rows[0][1]) == 1


async def test_batches_wait_for_the_in_flight_bound_on_a_cluster() -> None:
    # 200 concurrent multi-key DELs (a cluster batch each) with a pool of 4 per node:
    # they queue behind the bound instead of failing with MaxConnectionsError.
    servers = start_cluster()
    try:
        client = async_client(servers.url, cluster=True, max_connections=4)
        keys = [f"k{i}" for i in range(400)]
        for key in keys:
            await client.set(key, "1")
        await asyncio.gather(*(client.delete(keys[i], keys[i + 1])
                               for i in range(0, 400, 2)))
        assert await client.exists(*keys) == 0
        await client.close()
    finally:
        servers.stop()
