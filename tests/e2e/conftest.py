"""The whole stack as `make run` starts it, once per test module, and helpers to talk to it.

Each module that asks for `stack_up` gets its own stack on a flushed Redis: check-ins are
once a day per member, so a module starts with nobody checked in.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import redis

from qunzhu.tools import stack
from tests.conftest import RedisTarget
from tests.console.conftest import project_copy

API_TOKEN = "e2e-api-token-0123456789"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Running:
    """Where the started stack listens, and its processes."""

    rasa: str
    sandbox: str
    bridge: str
    console: str
    services: stack.Stack = field(compare=False, repr=False)

    def stop(self, name: str) -> None:
        """Stop a part of the stack (every bridge process for "bridge") as if it went down."""
        for started, proc in self.services.procs:
            if (started == name or started.startswith(name + "-")) and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)


@pytest.fixture(scope="session")
def redis_url(single_redis: RedisTarget) -> str:
    """The whole stack runs on one Redis here (the cluster is covered part by part)."""
    return single_redis.url


@pytest.fixture(scope="module")
def stack_up(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Start actions, Rasa, bridge and simulator against the (flushed) test Redis."""
    mp = pytest.MonkeyPatch()
    rasa_port, bridge_port = free_port(), free_port()
    mp.setenv("REDIS_URL", redis_url)
    mp.setenv("QZ_RASA_PORT", str(rasa_port))
    mp.setenv("QZ_RASA_STANDBY_PORT", str(free_port()))
    mp.setenv("QZ_PUBLISH_DRAIN_S", "2")
    mp.setenv("QZ_ACTIONS_PORT", str(free_port()))
    mp.setenv("BRIDGE_PORT", str(bridge_port))
    mp.setenv("QZ_SIM_PORT", str(free_port()))
    console_port = free_port()
    mp.setenv("QZ_CONSOLE_PORT", str(console_port))
    # What the console teaches is committed in a git copy, never in the project under test.
    project = project_copy(tmp_path_factory.mktemp("project"))
    mp.setenv("QZ_CONSOLE_PROJECT_DIR", str(project))
    # The running parts read the operator files the console edits, as in `make run`.
    mp.setenv("QZ_BRAND_FILE", str(project / "data/brand.yml"))
    mp.setenv("QZ_GAMES_FILE", str(project / "data/games.yml"))
    mp.setenv("QZ_DOMAIN_FILE", str(project / "domain.yml"))
    mp.setenv("QZ_CAMPAIGNS_FILE", str(project / "data/campaigns.yml"))
    mp.setenv("RASA_URL", f"http://127.0.0.1:{rasa_port}")
    mp.setenv("BRIDGE_API_TOKEN", API_TOKEN)
    redis.Redis.from_url(redis_url).flushdb()
    services = stack.Stack()
    try:
        page, _console_line = stack.start_all(services)
        assert page is not None
        yield Running(f"http://127.0.0.1:{rasa_port}", page.rstrip("/"),
                      f"http://127.0.0.1:{bridge_port}", f"http://127.0.0.1:{console_port}",
                      services)
    finally:
        services.stop()
        mp.undo()


@pytest.fixture(scope="module")
def running(stack_up: Running) -> str:
    """Rasa's base URL."""
    return stack_up.rasa


def http_json(method: str, url: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body, ensure_ascii=False).encode() if body is not None else None,
        method=method, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read().decode("utf-8"))


def http_status(method: str, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Status and JSON body, also for 4xx answers."""
    try:
        return 200, http_json(method, url, body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode("utf-8"))


def feed(sandbox: str, group: str = "sandbox") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = http_json("GET", f"{sandbox}/sandbox/feed?after=0")["items"]
    return [i for i in items if i["group"] == group]


def wait_for(check: Callable[[], T], timeout_s: float = 60,
             explain: Callable[[], Any] | None = None) -> T:
    """The first truthy result of check(); explain() says what there was instead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("not reached in time" + (f": {explain()!r}" if explain else ""))
