"""One way to open Redis for every part: a single server, or a Redis Cluster.

`QZ_REDIS_CLUSTER=1` says REDIS_URL names a node of a Redis Cluster; the client then follows
the cluster's slots. Every Lua script keeps its keys in one slot (one hash tag), so the same
code runs on both. What a cluster cannot do is a MULTI across keys, so writes that need to
be atomic are Lua scripts, and `pipeline()` here is a plain batch on a cluster.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeAlias, TypeVar

import redis
import redis.asyncio as aioredis
from redis import crc
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import RedisClusterException, RedisError

from qunzhu import settings

AsyncRedis: TypeAlias = "aioredis.Redis | RedisCluster"
SyncRedis: TypeAlias = "redis.Redis | SyncRedisCluster"


def text_of(raw: Any) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def script_arg(value: Any) -> str:
    """A Lua script's one JSON argument (ARGV[1]); Chinese kept as it is, not \\u-escaped."""
    return json.dumps(value, ensure_ascii=False)


def key_slot(key: str) -> int:
    """The Redis Cluster slot of a key (its hash tag's, when it has one)."""
    return int(crc.key_slot(key.encode()))


def cluster_mode() -> bool:
    """Whether REDIS_URL names a node of a Redis Cluster (QZ_REDIS_CLUSTER=1)."""
    return settings.get("QZ_REDIS_CLUSTER").strip().lower() in ("1", "true", "yes")


def async_client(url: str, *, max_connections: int = 32, timeout_s: float = 5.0,
                 cluster: bool | None = None, **kwargs: Any) -> AsyncRedis:
    """An asyncio client: a blocking pool on one server (a burst queues), or a cluster client."""
    if cluster_mode() if cluster is None else cluster:
        _mend_cluster_nodes()
        client = QueueingRedisCluster.from_url(
            url, max_connections=max_connections, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, **kwargs)
        client.limit_in_flight(max_connections)
        return client
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout_s, socket_timeout=timeout_s,
        health_check_interval=30, **kwargs)
    return aioredis.Redis(connection_pool=pool)


def _mend_cluster_nodes() -> None:
    """Give back a cluster node's connection when sending on it fails (redis-py 4.6 loses it).

    redis-py 4.6's asyncio `ClusterNode` sends outside its try/finally, so each command sent
    while a node is down leaks one pooled connection; after `max_connections` of them the
    node can never be used again and the client stays down after the cluster is back
    (redis-py issue #4110, fixed upstream by #4111). Applied once, when a cluster client is
    made; the same methods with the send moved inside the try.
    """
    if getattr(ClusterNode, "_qunzhu_mended", False):
        return

    async def execute_command(self: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        connection = self.acquire_connection()
        try:
            await connection.send_packed_command(connection.pack_command(*args), False)
            return await self.parse_response(connection, args[0], **kwargs)
        finally:
            self._free.append(connection)

    async def execute_pipeline(self: ClusterNode, commands: list[Any]) -> bool:
        connection = self.acquire_connection()
        try:
            await connection.send_packed_command(
                connection.pack_commands(cmd.args for cmd in commands), False)
            failed = False
            for cmd in commands:
                try:
                    cmd.result = await self.parse_response(connection, cmd.args[0],
                                                           **cmd.kwargs)
                except Exception as exc:
                    cmd.result = exc
                    failed = True
            return failed
        finally:
            self._free.append(connection)

    ClusterNode.execute_command = execute_command
    ClusterNode.execute_pipeline = execute_pipeline
    ClusterNode._qunzhu_mended = True


_BY_SUBCOMMAND = ("XGROUP", "XINFO")  # <command> <subcommand> <stream> …
_HOLDING: ContextVar[bool] = ContextVar("qunzhu_holds_a_redis_slot", default=False)
T = TypeVar("T")


class QueueingRedisCluster(RedisCluster):
    """A cluster client that queues commands past its pool size, as a blocking pool does.

    redis-py's cluster client raises MaxConnectionsError instead; a burst of members
    pressing at once must wait a moment, not fail.
    """

    _in_flight: asyncio.Semaphore | None = None

    def limit_in_flight(self, limit: int) -> None:
        """At most `limit` commands at once (each node's pool holds as many connections)."""
        self._in_flight = asyncio.Semaphore(limit)

    async def gated(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a call once a slot is free; a call made while this task already holds one
        (redis-py re-sends a batch's redirected commands one by one) goes straight on, or
        a burst of batches could each wait for a second slot for ever."""
        if self._in_flight is None or _HOLDING.get():
            return await call()
        async with self._in_flight:
            token = _HOLDING.set(True)
            try:
                return await call()
            finally:
                _HOLDING.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command once a slot is free."""
        async def send() -> Any:
            return await super(QueueingRedisCluster, self).execute_command(*args, **kwargs)

        return await self.gated(send)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        """Route XGROUP and XINFO by their stream on Redis 7 too.

        Redis 7 describes container commands through their subcommands, which redis-py
        4.6's asyncio key parser does not read (its sync parser does; redis-py #2165):
        `XGROUP CREATE <stream> …` found no key and could not be sent at all.
        """
        name = command.upper()
        if name in _BY_SUBCOMMAND and len(args) >= 2:
            return int(self.keyslot(args[1]))
        if name.split(" ", 1)[0] in _BY_SUBCOMMAND and " " in name and args:
            return int(self.keyslot(args[0]))
        return int(await super()._determine_slot(command, *args))

    def pipeline(self, transaction: Any | None = None,
                 shard_hint: Any | None = None) -> ClusterPipeline:
        """A batch that waits for a slot too (a multi-key DEL is one of these)."""
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises, as upstream does
        return QueueingClusterPipeline(self)


class QueueingClusterPipeline(ClusterPipeline):
    """A cluster batch counted as one command in flight: it takes at most one connection
    per node, so the client's bound still keeps every node's pool from running dry."""

    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        """Send the batch once a slot is free."""
        async def run() -> list[Any]:
            return list(await super(QueueingClusterPipeline, self).execute(
                raise_on_error, allow_redirections))

        if isinstance(self._client, QueueingRedisCluster):
            return await self._client.gated(run)
        return await run()


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
    """A cluster client with the address, credentials and TLS of a single-server client
    (Rasa builds its stores' clients itself; this gives them a cluster twin)."""
    kwargs = client.connection_pool.connection_kwargs
    tls = {k: kwargs[k] for k in ("ssl_keyfile", "ssl_certfile", "ssl_ca_certs", "ssl_cert_reqs")
           if k in kwargs}
    return SyncRedisCluster(host=kwargs.get("host", "localhost"),
                            port=int(kwargs.get("port", 6379)),
                            username=kwargs.get("username"), password=kwargs.get("password"),
                            socket_timeout=kwargs.get("socket_timeout"),
                            decode_responses=bool(kwargs.get("decode_responses", False)),
                            ssl=issubclass(client.connection_pool.connection_class,
                                           redis.SSLConnection), **tls)


# What "Redis is unreachable" looks like: a cluster client that reaches no node raises
# RedisClusterException, which is not a RedisError.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError, RedisClusterException)
REDIS_DOWN_OR_SLOW: tuple[type[BaseException], ...] = (*REDIS_DOWN, asyncio.TimeoutError)
