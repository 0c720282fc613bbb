"""The embedded Redis keeps data across restarts; settings parse and are documented."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from qunzhu import settings
from qunzhu.tools import stack

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


def test_a_part_that_dies_is_started_again_after_a_pause_and_given_up_on_at_the_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys
    import time

    parts = stack.Stack()
    try:
        parts.start("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"], {})
        parts.procs[0][1].wait()
        now = 1000.0
        assert parts.supervise(now) is None  # noticed: restart due after 1 s
        first = parts.procs[0][1]
        assert parts.supervise(now + 0.5) is None and parts.procs[0][1] is first  # not yet
        assert parts.supervise(now + 1.0) is None and parts.procs[0][1] is not first
        err = capsys.readouterr().err
        assert "flaky stopped (exit code 3); starting it again in 1 s" in err
        assert "flaky started again" in err
        gave_up = None
        for _ in range(100):  # it keeps dying: pauses grow, then the launcher gives up
            parts.procs[0][1].wait()
            now += 20
            gave_up = parts.supervise(now) or parts.supervise(now + 17)
            if gave_up:
                break
            time.sleep(0.01)
        assert gave_up == "flaky"
        assert len(parts.children[0].restarts) == stack.RESTART_LIMIT
    finally:
        parts.stop()


def test_a_killed_embedded_redis_comes_back_with_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import time

    monkeypatch.setenv("QZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QZ_EMBEDDED_REDIS_PORT", str(_free_port()))
    parts = stack.Stack()
    try:
        url = stack.start_embedded_redis(parts, {})
        client = redis.Redis.from_url(url)
        client.hset("qz:{x}:member:u", "points", 42)
        time.sleep(1.2)  # appendfsync everysec
        os.kill(parts.procs[0][1].pid, signal.SIGKILL)
        parts.procs[0][1].wait()
        now = time.monotonic()
        parts.supervise(now)
        parts.supervise(now + 1.0)
        for _ in range(100):
            try:
                if client.hget("qz:{x}:member:u", "points") == b"42":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        assert client.hget("qz:{x}:member:u", "points") == b"42"
    finally:
        parts.stop()
