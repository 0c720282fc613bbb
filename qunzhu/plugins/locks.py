"""Rasa's Redis lock store, also on a Redis Cluster.

Rasa's `RedisLockStore` keeps one key per conversation (GET, SET, DELETE), so it works on a
cluster as it is, given a cluster client; Rasa only ever builds a single-server one. With
QZ_REDIS_CLUSTER=1 this store swaps in its cluster twin. Configured in endpoints.yml as
`type: qunzhu.plugins.locks.RedisLockStore`.
"""

from __future__ import annotations

from typing import Any

from rasa.core.lock_store import RedisLockStore as RasaRedisLockStore
from rasa.utils.endpoints import EndpointConfig

from qunzhu.redisconn import cluster_like, cluster_mode


class RedisLockStore(RasaRedisLockStore):
    """The same locks, on a single Redis or a Redis Cluster."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        """From endpoints.yml (`url`, `port`, `db`, `password`, `key_prefix`), or keywords."""
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url, **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)
        if cluster_mode():
            self.red = cluster_like(self.red)  # type: ignore[has-type]
