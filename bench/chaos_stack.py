"""The fault suite's stack: `make run`'s parts on private ports, supervised, and killed on cue.

Everything here goes through qunzhu.tools.stack as `make run` uses it (the same Stack, the same
restart back-off); faults are plain kill -9 of a part's process group, and a longer outage
only moves that part's restart time, so production code carries no test hooks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from qunzhu.tools.stack import ROOT, Child, Stack

PORTS = ("QZ_EMBEDDED_REDIS_PORT", "QZ_ACTIONS_PORT", "QZ_RASA_PORT", "QZ_RASA_STANDBY_PORT",
         "BRIDGE_PORT", "QZ_SIM_PORT", "QZ_CONSOLE_PORT", "CHAOS_SENDER_PORT")
# Settings that would point the suite at someone else's services, or change its parts.
CLEARED = ("REDIS_URL", "RASA_URL", "BRIDGE_URL", "QZ_NO_SIMULATOR", "BRIDGE_CONSUMER",
           "BRIDGE_ROLES", "BRIDGE_SPOOL_DIR", "QZ_FAKE_NOW", "WECOM_API_BASE")
RECLAIM_IDLE_MS = "10000"  # a dead sender's or worker's entries move on after 10 s idle


def free_ports(count: int) -> list[int]:
    """Distinct ports nobody listens on now, so a user's `make run` is never in the way."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def configure(data_dir: Path) -> dict[str, str]:
    """Point every part at private ports and a throw-away data folder; the ports by setting."""
    for name in CLEARED:
        os.environ.pop(name, None)
    ports = dict(zip(PORTS, (str(p) for p in free_ports(len(PORTS))), strict=True))
    os.environ.update({name: port for name, port in ports.items() if name != "CHAOS_SENDER_PORT"})
    os.environ.update({"QZ_DATA_DIR": str(data_dir), "BRIDGE_API_TOKEN": secrets.token_hex(16),
                       "BRIDGE_RECLAIM_IDLE_MS": RECLAIM_IDLE_MS})
    return ports


@contextlib.contextmanager
def children_write_to(log_path: Path) -> Iterator[TextIO]:
    """Send this process's stdout/stderr (so every child's) to a log; yield the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8")
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        terminal.close()


@dataclass
class Supervisor:
    """Runs Stack.supervise every 0.5 s in a thread, as `make run`'s main loop does."""

    stack: Stack
    lock: threading.Lock = field(default_factory=threading.Lock)
    gave_up: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin supervising."""
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with self.lock:
                self.gave_up = self.gave_up or self.stack.supervise(time.monotonic())

    def stop(self) -> None:
        """Stop supervising (before the stack is stopped, so nothing is restarted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def child(self, name: str) -> Child:
        """The stack's part of that name."""
        return next(c for c in self.stack.children if c.name == name)

    def kill(self, name: str, hold_s: float) -> float:
        """kill -9 a part's process group; with hold_s, the supervisor restarts it only then.

        Under the lock, so the supervisor cannot restart it between the kill and the hold.
        Returns the wall-clock time of the kill.
        """
        with self.lock:
            child = self.child(name)
            os.killpg(child.proc.pid, signal.SIGKILL)
            at = time.time()
            child.proc.wait()
            if hold_s > 0:
                child.restart_at = time.monotonic() + hold_s
        return at

    def all_running(self) -> bool:
        """Every part has a live process (none is waiting for its restart)."""
        with self.lock:
            return all(c.proc.poll() is None for c in self.stack.children)


def start_sender(bridge_env: dict[str, str], port: str) -> tuple[subprocess.Popen[bytes], str]:
    """An extra bridge process that only sends posts (its own port and consumer name).

    Not part of the Stack: nothing restarts it once killed, so its pending posts can only
    move on through another sender's reclaim.
    """
    consumer = f"chaos-sender-{secrets.token_hex(3)}"
    env = {**bridge_env, "BRIDGE_PORT": port, "BRIDGE_ROLES": "sender",
           "BRIDGE_CONSUMER": consumer}
    proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env,
                            start_new_session=True)
    return proc, consumer


def kill_group(proc: subprocess.Popen[bytes]) -> float:
    """kill -9 a process group we started; the wall-clock time of the kill."""
    at = time.time()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return at
