"""Rasa's lock store, as configured in endpoints.yml, on one server and on a Redis Cluster."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest
from rasa.core.lock_store import LockStore
from rasa.utils.endpoints import EndpointConfig

from qunzhu.plugins.locks import RedisLockStore
from qunzhu.redisconn import AsyncRedis, is_cluster

pytestmark = pytest.mark.redis


def configured(redis_url: str) -> LockStore:
    """The lock store Rasa builds from endpoints.yml's `lock_store` section."""
    url = urlparse(redis_url)
    config = EndpointConfig(url=url.hostname, type="qunzhu.plugins.locks.RedisLockStore",
                            port=url.port, db=0, key_prefix="qzlock")
    return LockStore.create(config)


async def test_turns_of_one_conversation_take_turns(
    redis_url: str, redis_client: AsyncRedis,
) -> None:
    store = configured(redis_url)
    assert isinstance(store, RedisLockStore)
    assert is_cluster(store.red) == is_cluster(redis_client)
    order: list[str] = []

    async def turn(name: str) -> None:
        async with store.lock("g1:alice", wait_time_in_seconds=0.01):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(turn("a"), turn("b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert store.get_lock("g1:alice") is None  # the lock is gone once both finished
