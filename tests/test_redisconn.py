"""The cluster client comes back after the whole cluster was down (redis-py 4.6 did not)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.common.store import INBOX, BridgeStore
from qunzhu.redisconn import REDIS_DOWN, async_client
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
