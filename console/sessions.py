"""Console sessions kept in Redis (aiohttp-session's RedisStorage), on a server or a cluster.

aiohttp-session 2.12 checks for `redis.asyncio.Redis` and so refuses redis-py's cluster
client, though it only ever calls GET, SET and DELETE on one key — which a cluster serves.
This storage is RedisStorage with that check relaxed; everything else is the library's.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp_session import AbstractStorage
from aiohttp_session.redis_storage import RedisStorage

from qunzhu.redisconn import AsyncRedis

COOKIE = "qz_console"


class ConsoleSessionStorage(RedisStorage):
    """RedisStorage that takes a single-server or a cluster client."""

    def __init__(self, client: AsyncRedis, *, max_age: int, secure: bool) -> None:
        AbstractStorage.__init__(
            self, cookie_name=COOKIE, max_age=max_age, path="/", secure=secure or None,
            httponly=True, samesite="Lax", encoder=json.dumps, decoder=json.loads)
        self._key_factory = lambda: uuid.uuid4().hex
        self._redis: Any = client
