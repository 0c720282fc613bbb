"""Bridge benchmark: end-to-end turns, 30,000 group posts, and callback ack latency, in one run.

(a) turns/s and p50/p99 from a signed, encrypted callback leaving the simulator to the reply
    arriving on its response_url (simulator → bridge → Rasa → actions → reply), at
    concurrency 16 and 32; the same traffic sent straight to stock Rasa (Rasa 3.6's default
    pipeline and policies with JiebaTokenizer, REST channel) is the baseline.
(b) 30,000 groups × 1 post through the bridge's sender into the simulator's webhook:
    elapsed, dispatches/s, 45009 count, lost posts, the bridge's peak RSS.
(c) callback ack latency (callback sent → HTTP 200) while (b) runs.
Numbers, not asserts: `make bench-bridge`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import redis.asyncio as aioredis
from aiohttp import web

from bench.nlu_run import BASELINE_CONFIG, percentile
from bot.common.clock import RealClock
from bot.common.posts import Post
from bot.common.store import BridgeStore
from bot.simulator.callbacks import CallbackSender
from bot.simulator.server import create_sim_app
from bot.simulator.state import SimMember, SimState
from qunzhu.tools import stack

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MODEL = ROOT / "models" / "qunzhu.tar.gz"
MESSAGES = ["打卡", "我的积分", "几点开门", "领券", "排行榜", "怎么开发票", "你好", "我的券",
            "能送外卖吗", "抽奖规则"]
STOCK_POLICIES = """
  - name: MemoizationPolicy
  - name: RulePolicy
  - name: UnexpecTEDIntentPolicy
    max_history: 5
    epochs: 100
  - name: TEDPolicy
    max_history: 5
    epochs: 100
    constrain_similarities: true
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def stock_model() -> Path:
    """Rasa's default config (JiebaTokenizer) trained on our data; cached by input hash."""
    config = BASELINE_CONFIG.replace("policies: []", "policies:" + STOCK_POLICIES)
    inputs = [config.encode(), (ROOT / "domain.yml").read_bytes()]
    for folder in ("data/nlu", "data/rules", "data/stories"):
        for path in sorted((ROOT / folder).rglob("*.yml")):
            inputs.append(path.read_bytes())
    digest = hashlib.sha256(b"".join(inputs)).hexdigest()[:12]
    model = OUT / f"stock-{digest}.tar.gz"
    if model.exists():
        return model
    OUT.mkdir(parents=True, exist_ok=True)
    config_file = OUT / "stock-config.yml"
    config_file.write_text(config, encoding="utf-8")
    print("training the stock-Rasa baseline model (default pipeline and policies)…", flush=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "rasa"), "train", "--config", str(config_file),
         "--data", "data/nlu", "data/rules", "data/stories", "--out", str(OUT),
         "--fixed-model-name", f"stock-{digest}"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    return model


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    return {"turns_s": len(latencies) / elapsed, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "n": len(latencies)}


async def drive(concurrency: int, total: int,
                one: Callable[[str, str], Awaitable[float]]) -> dict[str, float]:
    """`total` turns by `concurrency` members at once, each waiting for its reply."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def member(k: int) -> None:
        user = f"m{concurrency}x{k}x{secrets.token_hex(2)}"
        for i in counter:
            latencies.append(await one(user, MESSAGES[i % len(MESSAGES)]))

    started = time.perf_counter()
    await asyncio.gather(*(member(k) for k in range(concurrency)))
    return summary(latencies, time.perf_counter() - started)


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU time so far of each named group of processes."""
    out = {}
    for name, group in pids.items():
        times = [psutil.Process(pid).cpu_times() for pid in group]
        out[name] = sum(t.user + t.system for t in times)
    return out


async def measured(pids: dict[str, list[int]], work: Awaitable[dict[str, float]],
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """Run `work`; return its result and each process's CPU ms per unit of work (per turn)."""
    before = cpu_seconds(pids)
    result = await work
    after = cpu_seconds(pids)
    return result, {k: (after[k] - before[k]) * 1000 / result["n"] for k in pids}


def cpu_line(per_unit: dict[str, float], unit: str) -> str:
    return f"    CPU ms per {unit}: " + ", ".join(f"{k} {v:.1f}" for k, v in per_unit.items())


class Harness:
    """The simulator in this process, the rest of the stack as child processes."""

    def __init__(self, groups: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="qz-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.groups = groups
        self.token = secrets.token_hex(16)
        self.aes = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self.corp = "wwbench01"
        self.secret = secrets.token_hex(8)
        self.api_token = secrets.token_hex(16)

    def start(self, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / log, "wb") as out:  # the child keeps its own copy of the fd
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        shutil.rmtree(self.tmp, ignore_errors=True)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=320, help="turns per concurrency level")
    parser.add_argument("--groups", type=int, default=30_000)
    parser.add_argument("--skip-turns", action="store_true", help="only (b) and (c)")
    parser.add_argument("--senders", type=int, default=2, help="sender processes for (b)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="Rasa processes behind the bridge (stock Rasa always has one)")
    args = parser.parse_args(argv)
    if not MODEL.exists():
        print("no models/qunzhu.tar.gz: run `make train`", file=sys.stderr)
        return 2
    baseline_model = stock_model()
    h = Harness(args.groups)
    try:
        return await run(h, args, baseline_model)
    finally:
        h.stop()


async def run(h: Harness, args: argparse.Namespace, baseline_model: Path) -> int:
    redis_port = free_port()
    h.start([stack.redis_server_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(h.tmp)], dict(os.environ), "redis")
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    await asyncio.sleep(0.5)
    ports = {k: free_port()
             for k in ("actions", "ours", "stock", "bridge", "sender", "sim", "wecom")}
    env = stack.stack_env(redis_url)
    env.update(QZ_ACTIONS_PORT=str(ports["actions"]), LOG_LEVEL="WARNING")
    rasa = str(Path(sys.executable).parent / "rasa")
    actions = h.start([sys.executable, "-m", "actions"], env, "actions")
    ours_ports = [ports["ours"], *(free_port() for _ in range(args.replicas - 1))]
    ours = [h.start([sys.executable, "-m", "qunzhu.tools.rasacli", "run", "-i", "127.0.0.1",
                     "-p", str(port), "-m", str(MODEL), "--endpoints", "endpoints.yml",
                     "--credentials", "credentials.yml"],
                    env, f"rasa-ours-{port}") for port in ours_ports]
    # Stock Rasa gets Rasa's own Redis tracker store (qunzhu's endpoints name a faster one).
    stock_endpoints = h.tmp / "stock-endpoints.yml"
    stock_endpoints.write_text((ROOT / "endpoints.yml").read_text(encoding="utf-8").replace(
        "type: qunzhu.plugins.trackers.FastRedisTrackerStore", "type: redis"), encoding="utf-8")
    stock = h.start([rasa, "run", "-i", "127.0.0.1", "-p", str(ports["stock"]), "-m",
                     str(baseline_model), "--endpoints", str(stock_endpoints), "--credentials",
                     "credentials.yml"], env, "rasa-stock")

    # Two simulators: this process's answers the turns' response_urls (so replies are timed
    # in this loop); a separate process serves the webhook for the posts of (b).
    clock = RealClock()
    state = SimState(clock, token=h.token, aes_key=h.aes, corp_id=h.corp, corp_secret=h.secret)
    state.add_group("bench", "bench", "benchkey-turns").members["u"] = SimMember("u", "u", 0)
    robots = [(f"g{i}", f"k{i:06d}{secrets.token_hex(8)}") for i in range(args.groups)]
    robots.append(("bench", "benchkey-turns"))
    lines = ["groups:", *(f"  - {{chatid: {c}, webhook_key: {k}}}" for c, k in robots)]
    groups_file = h.tmp / "groups.yml"
    groups_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (h.tmp / "robots.json").write_text(json.dumps(robots), encoding="utf-8")
    wecom_url = f"http://127.0.0.1:{ports['wecom']}"
    wecom = h.start([sys.executable, "-m", "bench.simproc", "--port", str(ports["wecom"]),
                     "--groups", str(h.tmp / "robots.json")], env, "wecom")
    sim_url = f"http://127.0.0.1:{ports['sim']}"
    bridge_url = f"http://127.0.0.1:{ports['bridge']}"
    callbacks = CallbackSender(state, bridge_url, timeout_s=5.0)
    sim_app = create_sim_app(state, callbacks, bot_name="福利官", public_url=sim_url)
    runner = web.AppRunner(sim_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ports["sim"]).start()

    bridge_env = {
        **env, "BRIDGE_PORT": str(ports["bridge"]),
        "RASA_URL": ",".join(f"http://127.0.0.1:{p}" for p in ours_ports),
        "WECOM_TOKEN": h.token, "WECOM_ENCODING_AES_KEY": h.aes, "WECOM_CORP_ID": h.corp,
        "WECOM_CORP_SECRET": h.secret, "WECOM_API_BASE": wecom_url,
        "BRIDGE_GROUPS_FILE": str(groups_file), "BRIDGE_API_TOKEN": h.api_token,
    }
    # Scaled out as in production: one process answers callbacks and runs turns, one sends.
    bridge = h.start([sys.executable, "-m", "bot"], {**bridge_env, "BRIDGE_ROLES": "turns,handoff"},
                     "bridge")
    sender_ports = [ports["sender"], *(free_port() for _ in range(args.senders - 1))]
    senders = [h.start([sys.executable, "-m", "bot"], {
        **bridge_env, "BRIDGE_ROLES": "sender", "BRIDGE_PORT": str(port)}, f"sender-{port}")
        for port in sender_ports]
    for url, proc in ((f"http://127.0.0.1:{ports['actions']}/health", actions),
                      *((f"http://127.0.0.1:{port}/", proc)
                        for port, proc in zip(ours_ports, ours, strict=True)),
                      (f"http://127.0.0.1:{ports['stock']}/", stock),
                      (f"{bridge_url}/healthz", bridge),
                      *((f"http://127.0.0.1:{port}/healthz", proc)
                        for port, proc in zip(sender_ports, senders, strict=True)),
                      (f"{wecom_url}/sim/stats", wecom)):
        await asyncio.to_thread(wait_http, url, proc)
    print(f"stack up: Redis, actions, Rasa (ours: {args.replicas} process(es)), Rasa (stock), "
          f"bridge (one turns process, "
          f"{args.senders} sender process(es)); {args.groups} groups\n")

    async with aiohttp.ClientSession() as session:
        async def via_bridge(user: str, text: str) -> float:
            url = state.new_response_url(sim_url, "bench", user)
            reply = state.expect_reply(url)
            msgid = secrets.token_hex(12)
            body, params = callbacks.aibot_request({
                "msgid": msgid, "aibotid": "ab", "chatid": "bench", "chattype": "group",
                "from": {"userid": user}, "response_url": url, "msgtype": "text",
                "text": {"content": f"@福利官\u2005{text}"}})
            t0 = time.perf_counter()
            await callbacks.deliver("/wecom/aibot", body, params, msgid)
            await asyncio.wait_for(reply, 60)
            return time.perf_counter() - t0

        async def rest(port: int, chat: str, user: str, text: str) -> float:
            payload = {"sender": f"{chat}:{user}", "message": f"@福利官\u2005{text}",
                       "metadata": {"msgid": secrets.token_hex(12), "chatid": chat,
                                    "userid": user, "chattype": "group"}}
            t0 = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/webhooks/rest/webhook",
                                    json=payload) as r:
                await r.read()
            return time.perf_counter() - t0

        async def stock_rasa(user: str, text: str) -> float:
            return await rest(ports["stock"], "stock", user, text)

        async def ours_rest(user: str, text: str) -> float:
            return await rest(ports["ours"], "direct", user, text)

        await drive(8, 40, via_bridge)  # warm-up: models loaded, caches filled
        await drive(8, 40, stock_rasa)
        if not args.skip_turns:
            print("(a) end-to-end turns (callback → reply), same messages, distinct members")
            print(f"{'':28}{'turns/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
        ours_pids = {"Rasa": [p.pid for p in ours], "actions": [actions.pid],
                     "bridge": [bridge.pid]}
        stock_pids = {"Rasa": [stock.pid], "actions": [actions.pid]}
        for concurrency in () if args.skip_turns else (16, 32):
            mine, mine_cpu = await measured(ours_pids, drive(concurrency, args.turns, via_bridge))
            direct = await drive(concurrency, args.turns, ours_rest)
            base, base_cpu = await measured(stock_pids,
                                            drive(concurrency, args.turns, stock_rasa))
            for name, r in ((f"qunzhu via bridge  c={concurrency}", mine),
                            (f"qunzhu Rasa REST   c={concurrency}", direct),  # the first replica
                            (f"stock Rasa REST    c={concurrency}", base)):
                print(f"{name:28}{r['turns_s']:9.1f}{r['p50_ms']:9.1f}{r['p99_ms']:9.1f}")
            print(f"{'ratio (turns/s)':28}{mine['turns_s'] / base['turns_s']:9.2f}×")
            print(cpu_line(mine_cpu, "turn, qunzhu via bridge"))
            print(cpu_line(base_cpu, "turn, stock Rasa") + "\n")

        # (b) + (c): 30,000 posts while a separate prober keeps calling back (~16/s).
        client = aioredis.Redis.from_url(redis_url)
        store = BridgeStore(client)
        procs = [psutil.Process(p.pid) for p in (bridge, *senders)]
        peak = sum(p.memory_info().rss for p in procs)
        acks_file = h.tmp / "acks.json"
        prober = h.start([sys.executable, "-m", "bench.ackprobe", "--bridge", bridge_url,
                          "--reply-base", wecom_url, "--rate", "16", "--out", str(acks_file)],
                         bridge_env, "prober")

        async def stats() -> dict[str, Any]:
            async with session.get(f"{wecom_url}/sim/stats") as r:
                doc: dict[str, Any] = await r.json()
                return doc

        await asyncio.sleep(1)
        post_pids = {**{f"sender {k + 1}": [p.pid] for k, p in enumerate(senders)},
                     "simulator": [wecom.pid]}
        post_cpu = cpu_seconds(post_pids)
        t0 = time.perf_counter()
        for start in range(0, args.groups, 1000):  # a campaign: batches of 1,000 groups
            await store.enqueue_many(
                [(f"g{i}", Post(f"g{i}", "text", f"今日福利 #{i} 🎁").fields(), f"bench-{i}")
                 for i in range(start, min(start + 1000, args.groups))], time.time())
        accepted_s = time.perf_counter() - t0
        seen = await stats()
        while seen["webhook"] < args.groups and time.perf_counter() - t0 < 900:
            peak = max(peak, sum(p.memory_info().rss for p in procs))
            await asyncio.sleep(0.1)
            seen = await stats()
        elapsed = time.perf_counter() - t0
        post_cpu = {k: (v - post_cpu[k]) * 1e6 / args.groups
                    for k, v in cpu_seconds(post_pids).items()}
        prober.terminate()
        await asyncio.to_thread(prober.wait, 30)
        acks = json.loads(acks_file.read_text()) if acks_file.exists() else []
        lost = args.groups - seen["distinct"]
        print(f"(b) {args.groups} groups × 1 post through the simulator")
        print(f"    accepted into the stream in {accepted_s:.1f} s; all delivered after "
              f"{elapsed:.1f} s")
        print(f"    dispatches/s {args.groups / elapsed:.0f}   "
              f"45009 {seen['errors'].get('45009', 0)}   lost {lost}   "
              f"bridge peak RSS ({len(procs)} processes) {peak / 2**20:.0f} MiB")
        sender_us = sum(v for k, v in post_cpu.items() if k.startswith("sender"))
        print("    CPU µs per post: " + ", ".join(f"{k} {v:.0f}" for k, v in post_cpu.items())
              + f" → a sender with a core of its own: ~{1e6 / max(1.0, sender_us):.0f} posts/s")
        print("(c) callback ack latency during (b), separate prober at 16/s: "
              f"n={len(acks)} p50 {percentile(acks, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(acks, 0.99) * 1000:.1f} ms")
        metrics = await store.metrics()
        print("\nbridge counters:", json.dumps(metrics, sort_keys=True))
        await client.close()
    await callbacks.close()
    await runner.cleanup()
    return 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # so the child processes are stopped too
    sys.exit(asyncio.run(main()))
