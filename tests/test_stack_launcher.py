"""The embedded Redis keeps data across restarts; settings parse and are documented."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from qunzhu import settings, stack

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_embedded_redis_keeps_data_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QZ_EMBEDDED_REDIS_PORT", str(_free_port()))
    first = stack.Stack()
    url = stack.start_embedded_redis(first, {})
    redis.Redis.from_url(url).hset("qz:{x}:member:u", "points", 42)
    first.stop()  # SIGTERM: Redis flushes its append-only file
    second = stack.Stack()
    try:
        url = stack.start_embedded_redis(second, {})
        assert redis.Redis.from_url(url).hget("qz:{x}:member:u", "points") == b"42"
    finally:
        second.stop()
    assert (tmp_path / "redis").exists()


def test_busy_port_is_refused_clearly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = str(sock.getsockname()[1])
        with pytest.raises(RuntimeError, match=f"port {port}.*QZ_RASA_PORT"):
            stack._require_free(port, "Rasa server", "QZ_RASA_PORT")


@pytest.mark.parametrize(("url", "parts"), [
    ("redis://127.0.0.1:6390/0", ("127.0.0.1", 6390, 0, "", False)),
    ("redis://:s%40cret@cache.internal:6380/2", ("cache.internal", 6380, 2, "s@cret", False)),
    ("rediss://cache:6379", ("cache", 6379, 0, "", True)),
])
def test_redis_url_parts(url: str, parts: tuple[object, ...]) -> None:
    p = settings.redis_parts(url)
    assert (p.host, p.port, p.db, p.password, p.use_ssl) == parts


@pytest.mark.parametrize("url", ["http://x", "redis://host/abc"])
def test_bad_redis_url(url: str) -> None:
    with pytest.raises(ValueError):
        settings.redis_parts(url)


def test_stack_env_never_needs_unset_variables() -> None:
    env = stack.stack_env("redis://127.0.0.1:6390/0")
    for name in ("QZ_REDIS_HOST", "QZ_REDIS_PORT", "QZ_REDIS_DB", "QZ_REDIS_PASSWORD",
                 "QZ_ACTIONS_PORT", "QZ_TRACKER_TTL_S"):
        assert name in env
    endpoints = (ROOT / "endpoints.yml").read_text(encoding="utf-8")
    import re

    for name in re.findall(r"\$\{(\w+)\}", endpoints):
        assert name in env, f"endpoints.yml needs {name} but the launcher does not set it"


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for setting in settings.SETTINGS:
        assert f"`{setting.name}`" in readme, f"README lacks {setting.name}"
