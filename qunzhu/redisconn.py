"""One way to open Redis for every part: a single server, or a Redis Cluster.

`QZ_REDIS_CLUSTER=1` says REDIS_URL names a node of a Redis Cluster; the client then follows
the cluster's slots. Every Lua script keeps its keys in one slot (one hash tag), so the same
code runs on both. What a cluster cannot do is a MULTI across keys, so writes that need to
be atomic are Lua scripts, and `pipeline()` here is a plain batch on a cluster.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.cluster import RedisCluster as SyncRedisCluster

from qunzhu import settings

AsyncRedis: TypeAlias = "aioredis.Redis | RedisCluster"
SyncRedis: TypeAlias = "redis.Redis | SyncRedisCluster"
CLUSTER_CONNECTIONS_PER_NODE = 256  # a cluster client fails past its pool instead of waiting


def cluster_mode() -> bool:
    """Whether REDIS_URL names a node of a Redis Cluster (QZ_REDIS_CLUSTER=1)."""
    return settings.get("QZ_REDIS_CLUSTER").strip().lower() in ("1", "true", "yes")


def async_client(url: str, *, max_connections: int = 32, timeout_s: float = 5.0,
                 cluster: bool | None = None, **kwargs: Any) -> AsyncRedis:
    """An asyncio client: a blocking pool on one server (a burst queues), or a cluster client."""
    if cluster_mode() if cluster is None else cluster:
        return RedisCluster.from_url(url, max_connections=CLUSTER_CONNECTIONS_PER_NODE,
                                     socket_timeout=timeout_s,
                                     socket_connect_timeout=timeout_s, **kwargs)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout_s, socket_timeout=timeout_s,
        health_check_interval=30, **kwargs)
    return aioredis.Redis(connection_pool=pool)


def sync_client(url: str, *, cluster: bool | None = None, **kwargs: Any) -> SyncRedis:
    """A blocking client (Rasa's tracker and lock stores, tools)."""
    if cluster_mode() if cluster is None else cluster:
        return SyncRedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def is_cluster(client: AsyncRedis | SyncRedis) -> bool:
    """Whether a client talks to a Redis Cluster."""
    return isinstance(client, (RedisCluster, SyncRedisCluster))


def batch(client: AsyncRedis) -> Pipeline | ClusterPipeline:
    """A pipeline of independent commands: MULTI/EXEC on one server, a plain batch on a
    cluster (which cannot run a transaction across slots). Nothing that must be atomic
    belongs here; that is what the Lua scripts are for."""
    if isinstance(client, RedisCluster):
        return client.pipeline()
    return client.pipeline(transaction=True)


def cluster_like(client: redis.Redis) -> SyncRedisCluster:
    """A cluster client with the address and credentials of a single-server client (Rasa
    builds its stores' clients itself; this gives them a cluster twin)."""
    kwargs = client.connection_pool.connection_kwargs
    return SyncRedisCluster(host=kwargs.get("host", "localhost"),
                            port=int(kwargs.get("port", 6379)),
                            username=kwargs.get("username"), password=kwargs.get("password"),
                            socket_timeout=kwargs.get("socket_timeout"))
