"""`make chaos`: kill parts of the real stack mid-burst and count what members and groups saw.

The stack is `make run`'s (embedded Redis, action server, Rasa, the bridge, the WeCom
simulator) on private ports with a throw-away data folder, supervised exactly as under
`make run`. Each scenario sends a burst of member messages through the simulator (check-ins,
coupon claims, questions, each from a fresh member) and group posts through the bridge's
API, kills one part a few seconds in, probes once a second until a probe gets a real answer,
then waits until every message is answered (or a bound passes) and checks the game ledger.

A message is answered by a reply on its response_url or a group post mentioning the member;
answered twice, unanswered, a post accepted (202) but never delivered or delivered twice,
and a member credited twice all fail the run (exit code 1). Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import redis.asyncio as aioredis
import yaml
from redis.exceptions import RedisError

from actions.gamekeys import GameKeys
from bench import chaos_report as report
from bench.chaos_report import Answer, Row, Sent, Slot
from bench.chaos_stack import Supervisor, children_write_to, configure, kill_group, start_sender
from bench.chaos_traffic import (
    PROBE,
    PostClient,
    SimClient,
    burst,
    member_plan,
    post_burst,
)
from bot.common.store import DEAD, INBOX, OUTBOX, SENDERS, BridgeStore
from qunzhu import settings
from qunzhu.config import load_brand, load_games
from qunzhu.tools.stack import MODEL, ROOT, Stack, start_all

OUT = ROOT / "bench" / "out"
BOUND_S = 180.0  # after the fault ended, how long answers and posts may still take
BACK_MAX_S = 300.0  # how long a killed part may take to come back (after its hold)
SETTLE_MAX_S = 300.0  # how long the stack may take to be quiet again between scenarios
POLL_S = 2.0
METRIC_NAMES = ("callbacks_accepted", "callbacks_duplicate", "rasa_failures", "turn_retries",
                "reply_url_failures", "posts_dead", "digests")


@dataclass(frozen=True)
class Scenario:
    """One fault during one burst."""

    name: str
    part: str  # redis, actions, rasa, bridge, or sender (an extra sender-only bridge)
    hold_s: float  # extra time the part stays down before the supervisor may restart it
    messages: int
    duration_s: float  # the burst is spread over this long
    fault_at_s: float  # seconds into the burst the part is killed
    posts: int
    about: str
    posts_s: float = 0.0  # posts are spread over this long (0: over the whole burst)
    min_posts: int = 2  # --scale never shrinks the posts below this


SCENARIOS = (
    Scenario("redis_kill", "redis", 0, 400, 30, 5, 24, "kill -9 Redis; restarted after back-off"),
    Scenario("redis_down_20s", "redis", 20, 800, 40, 5, 24, "kill -9 Redis, back after 20 s"),
    Scenario("redis_down_120s", "redis", 120, 800, 40, 5, 24, "kill -9 Redis, back after 120 s"),
    Scenario("actions_kill", "actions", 0, 400, 30, 5, 24, "kill -9 the action server"),
    Scenario("rasa_kill", "rasa", 0, 400, 30, 5, 24, "kill -9 Rasa (reloads its model)"),
    Scenario("bridge_kill", "bridge", 0, 400, 30, 5, 24, "kill -9 the bridge"),
    # 60 posts in 10 s outrun the robot's 20 a minute, so both senders hold posts when the
    # extra one is killed; its pending posts must be reclaimed by the bridge's sender.
    Scenario("sender_kill", "sender", 0, 400, 30, 15, 60,
             "kill -9 an extra sender holding posts; the bridge's sender reclaims them",
             posts_s=10, min_posts=40),
)


def scaled(scenario: Scenario, scale: float) -> Scenario:
    """The same fault with a smaller (or larger) burst; timings stay."""
    return dataclasses.replace(scenario, messages=max(10, round(scenario.messages * scale)),
                               posts=max(scenario.min_posts, round(scenario.posts * scale)))


def roomy_games(data_dir: Path, scenarios: Sequence[Scenario]) -> None:
    """Use data/games.yml with every coupon pool stocked for all of this run's claims.

    With the shipped stock (700) the pools sell out part-way through a full run, and a
    sold-out reply would hide a member given two coupons for one claim.
    """
    asks = sum(sum(1 for _u, kind, _t in member_plan(s.name, s.messages) if kind == "coupon")
               for s in scenarios)
    games = yaml.safe_load((ROOT / "data" / "games.yml").read_text(encoding="utf-8"))
    for pool in games["coupons"]:
        pool["stock"] = max(int(pool["stock"]), asks)
    path = data_dir / "games.yml"
    path.write_text(yaml.safe_dump(games, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_games(path)  # refuse now, not in the action server, if the copy does not validate
    os.environ["QZ_GAMES_FILE"] = str(path)


def busy_texts() -> tuple[str, ...]:
    """The polite busy reply's variations, from domain.yml (it counts as an answer)."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return tuple(str(v["text"]) for v in domain["responses"]["utter_busy"])


def ledger_rows(raw: Sequence[tuple[Any, dict[Any, Any]]]) -> list[dict[str, str]]:
    """XRANGE rows as plain string dicts."""
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)
    return [{text(k): text(v) for k, v in fields.items()} for _id, fields in raw]


@dataclass
class Run:
    """What one scenario has seen so far."""

    scenario: Scenario
    sent: list[Sent] = field(default_factory=list)
    probes: list[Sent] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    post_refusals: dict[str, int] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    webhook: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    t0: float = field(default_factory=time.time)
    fault_at: float = 0.0
    back_at: float | None = None
    traffic_done: bool = False
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def prefix(self) -> str:
        """Every member of this scenario has a userid starting with this."""
        return f"chaos_{self.scenario.name}_"

    def answers(self) -> dict[str, list[Answer]]:
        """Answers per member of this scenario, from the last observation."""
        mine = [s for s in self.slots if s.userid.startswith(self.prefix)]
        return report.answers_by_member(mine, self.webhook)


def dump(run: Run) -> None:
    """Everything a scenario observed, for a post-mortem: bench/out/chaos/<scenario>.json."""
    folder = OUT / "chaos"
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"fault_at": run.fault_at, "back_at": run.back_at, "t0": run.t0,
           "sent": [dataclasses.asdict(s) for s in [*run.sent, *run.probes]],
           "replies": [dataclasses.asdict(s) for s in run.slots],
           "webhook": run.webhook, "posts_accepted": run.accepted}
    (folder / f"{run.scenario.name}.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


class Chaos:
    """The running stack, the clients that drive it, and the scenarios."""

    def __init__(self, supervisor: Supervisor, ports: dict[str, str],
                 session: aiohttp.ClientSession, terminal: TextIO) -> None:
        self.sup = supervisor
        self.ports = ports
        self.session = session
        self.terminal = terminal
        brand = load_brand()
        self.brand_id = brand.id
        self.campaigns = {c.id: c.stock for c in load_games().coupons}
        self.busy = busy_texts()
        self.sim = SimClient(session, f"http://127.0.0.1:{ports['QZ_SIM_PORT']}", brand.bot_name)
        self.bridge_url = f"http://127.0.0.1:{ports['BRIDGE_PORT']}"
        self.posts = PostClient(session, self.bridge_url, settings.get("BRIDGE_API_TOKEN"))
        self.redis = aioredis.Redis.from_url(settings.redis_url(), socket_timeout=2,
                                             socket_connect_timeout=2)
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """A progress line on the terminal (the parts' own output goes to the log)."""
        elapsed = time.monotonic() - self.started
        print(f"chaos [{elapsed // 60:02.0f}:{elapsed % 60:04.1f}] {text}", file=self.terminal)

    # ------------------------------------------------------------------ health
    async def _http_ok(self, url: str) -> bool:
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    async def part_up(self, part: str) -> bool:
        """Whether a part answers as it should when healthy."""
        if part == "redis":
            try:
                return bool(await self.redis.ping())
            except (RedisError, OSError):
                return False
        urls = {"actions": f"http://127.0.0.1:{self.ports['QZ_ACTIONS_PORT']}/health",
                "rasa": f"http://127.0.0.1:{self.ports['QZ_RASA_PORT']}/",
                "bridge": f"{self.bridge_url}/healthz"}
        return part not in urls or await self._http_ok(urls[part])

    async def spool(self) -> dict[str, int] | None:
        """The bridge's disk spool as /healthz shows it ({} without one; None: no answer)."""
        try:
            async with self.session.get(f"{self.bridge_url}/healthz",
                                        timeout=aiohttp.ClientTimeout(total=2)) as resp:
                doc = await resp.json()
            return {str(k): int(v) for k, v in (doc.get("spool") or {}).items()}
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError, TypeError):
            return None

    async def spooled(self) -> int:
        """Records waiting in the bridge's disk spool (-1 when the bridge does not answer)."""
        spool = await self.spool()
        return -1 if spool is None else spool.get("records", 0)

    async def queued(self) -> tuple[int, int]:
        """Entries left in the inbox and outbox streams (-1, -1 when Redis does not answer)."""
        try:
            return int(await self.redis.xlen(INBOX)), int(await self.redis.xlen(OUTBOX))
        except (RedisError, OSError):
            return -1, -1

    async def quiet(self) -> bool:
        """Every part up and nothing left in the streams or the spool."""
        if not self.sup.all_running():
            return False
        for part in ("redis", "actions", "rasa", "bridge"):
            if not await self.part_up(part):
                return False
        return await self.queued() == (0, 0) and await self.spooled() == 0

    async def settle(self) -> bool:
        """Wait (bounded) until the stack is whole and quiet again."""
        deadline = time.monotonic() + SETTLE_MAX_S
        while time.monotonic() < deadline:
            if self.sup.gave_up:
                raise RuntimeError(f"the supervisor gave up on {self.sup.gave_up}")
            if await self.quiet():
                return True
            await asyncio.sleep(1)
        return False

    async def metrics(self) -> dict[str, int]:
        """The bridge's counters in Redis."""
        return await BridgeStore(self.redis).metrics()  # the counters of every slot, summed

    # ------------------------------------------------------------------ faults
    async def wait_back(self, run: Run) -> None:
        """Record when the killed part answers again (bounded)."""
        part = run.scenario.part
        if part == "sender":  # nothing brings it back; the fault ends with the kill
            run.back_at = run.fault_at
            return
        deadline = time.monotonic() + run.scenario.hold_s + BACK_MAX_S
        await asyncio.sleep(0.5)
        while time.monotonic() < deadline:
            if self.sup.child(part).proc.poll() is None and await self.part_up(part):
                run.back_at = time.time()
                return
            await asyncio.sleep(0.5)

    async def inject(self, run: Run, extra: Any) -> None:
        """Kill the scenario's part at its time, then note when it is back."""
        await asyncio.sleep(run.scenario.fault_at_s)
        if run.scenario.part == "sender":
            run.fault_at = await asyncio.to_thread(kill_group, extra)
        else:
            run.fault_at = await asyncio.to_thread(self.sup.kill, run.scenario.part,
                                                   run.scenario.hold_s)
        self.say(f"killed {run.scenario.part} (kill -9) at +{run.scenario.fault_at_s:.0f} s")
        await self.wait_back(run)
        if run.back_at is not None and run.scenario.part != "sender":
            self.say(f"{run.scenario.part} answers again after {run.back_at - run.fault_at:.1f} s")

    async def probe(self, run: Run) -> None:
        """Once a second after the fault, a fresh member asks something, until one is answered."""
        while not run.fault_at:
            await asyncio.sleep(0.1)
        n = 0
        while not run.recovered.is_set() and time.time() < self.deadline(run):
            userid = f"{run.prefix}p{n}"
            await self.sim.add_members([userid])
            run.probes.append(await self.sim.say(userid, "probe", PROBE))
            n += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.recovered.wait(), 1.0)

    # ------------------------------------------------------------------ one scenario
    @staticmethod
    def deadline(run: Run) -> float:
        """Wall-clock time after which the scenario stops waiting: BOUND_S after the fault
        ended, or after the longest the part may take to come back."""
        sc = run.scenario
        ended = run.back_at or run.t0 + sc.fault_at_s + sc.hold_s + BACK_MAX_S
        return ended + BOUND_S

    def finished(self, run: Run, answers: dict[str, list[Answer]]) -> bool:
        """Everything said is answered (or was never accepted), every post arrived."""
        slots = {s.userid: s for s in run.slots}
        for message in [*run.sent, *run.probes]:
            slot = slots.get(message.userid)
            if not answers.get(message.userid) and not (slot and slot.never_accepted):
                return False
        texts = [report.webhook_text(p) for _at, p in run.webhook]
        return all(report.token_counts(run.accepted, texts).values())

    async def observe(self, run: Run) -> None:
        """Read the simulator until the scenario is over (or its bound has passed)."""
        while True:
            run.slots = await self.sim.slots(run.prefix)
            run.webhook = await self.sim.webhook()
            answers = run.answers()
            if run.fault_at and report.recovery_s(run.probes, answers, run.fault_at,
                                                  self.busy) is not None:
                run.recovered.set()
            if self.sup.gave_up or time.time() > self.deadline(run):
                return
            if (run.traffic_done and run.back_at is not None and self.finished(run, answers)
                    and await self.quiet()):
                return
            await asyncio.sleep(POLL_S)

    async def traffic(self, run: Run) -> None:
        """The members' burst and the posts, side by side."""
        sc = run.scenario
        plan = member_plan(sc.name, sc.messages)
        await self.sim.add_members([u for u, _k, _t in plan])
        post_deadline = time.monotonic() + sc.duration_s + sc.hold_s + BACK_MAX_S
        sent, (accepted, refused) = await asyncio.gather(
            burst(self.sim, plan, sc.duration_s),
            post_burst(self.posts, sc.name, sc.posts, sc.posts_s or sc.duration_s,
                       post_deadline))
        run.sent, run.accepted, run.post_refusals = sent, accepted, refused
        run.traffic_done = True

    async def run(self, scenario: Scenario) -> Row:
        """Burst, fault, probes, wait, count."""
        run = Run(scenario)
        self.say(f"{scenario.name}: {scenario.about} — {scenario.messages} messages and "
                 f"{scenario.posts} posts over {scenario.duration_s:.0f} s")
        if not await self.settle():
            self.say("the stack is not quiet before the scenario; running it anyway")
        before = {**await self.metrics(),
                  **{f"spool_{k}": v for k, v in (await self.spool() or {}).items()}}
        dead_before = int(await self.redis.xlen(DEAD))
        extra, consumer = await self.start_extra_sender(scenario)
        started, run.t0 = time.monotonic(), time.time()
        jobs = [self.traffic(run), self.inject(run, extra), self.probe(run)]
        if consumer:
            jobs.append(self.held_by(consumer, scenario))
        tasks = [asyncio.create_task(job) for job in jobs]
        try:
            await self.observe(run)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if extra is not None:
                kill_group(extra)
        for task in tasks:  # a harness error (not a cancellation) must not pass unseen
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{scenario.name}: {task.exception()!r}")
        row = await self.count(run, before, dead_before)
        row.notes.append(f"took {time.monotonic() - started:.0f} s")
        dump(run)
        self.say(f"{scenario.name}: {report.markdown_table([row]).splitlines()[-1]}")
        return row

    async def start_extra_sender(self, scenario: Scenario) -> tuple[Any, str]:
        """For the sender scenario: a second, sender-only bridge sharing the outbox."""
        if scenario.part != "sender":
            return None, ""
        port = self.ports["CHAOS_SENDER_PORT"]
        proc, consumer = start_sender(self.sup.child("bridge").env, port)
        deadline = time.monotonic() + 60
        while not await self._http_ok(f"http://127.0.0.1:{port}/healthz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the extra sender did not start; see the log")
            await asyncio.sleep(0.25)
        self.say(f"extra sender-only bridge {consumer} on port {port}")
        return proc, consumer

    async def held_by(self, consumer: str, scenario: Scenario) -> None:
        """Just before the kill, note how many posts the extra sender holds."""
        await asyncio.sleep(max(0.0, scenario.fault_at_s - 0.3))
        with contextlib.suppress(RedisError, OSError):
            info = await self.redis.xpending(OUTBOX, SENDERS)
            held = {(c["name"].decode() if isinstance(c["name"], bytes) else c["name"]):
                    int(c["pending"]) for c in info.get("consumers", [])}
            self.say(f"the extra sender holds {held.get(consumer, 0)} posts as it is killed")

    # ------------------------------------------------------------------ counting
    async def count(self, run: Run, before: dict[str, int], dead_before: int) -> Row:
        """Turn the observations into the scenario's row and notes."""
        sc, row = run.scenario, Row(run.scenario.name)
        answers = run.answers()
        report.tally_messages(row, [*run.sent, *run.probes], run.slots, answers, self.busy)
        texts = [report.webhook_text(p) for _at, p in run.webhook]
        report.tally_posts(row, run.accepted, report.token_counts(run.accepted, texts))
        if run.fault_at:
            row.recovery_s = report.recovery_s(run.probes, answers, run.fault_at, self.busy)
        await self.count_credits(run, row)
        row.notes += self.message_notes(run, answers)
        row.notes += await self.stack_notes(run, before, dead_before)
        row.broken = row.broken or bool(self.sup.gave_up) or run.back_at is None
        if sc.part != "sender" and run.back_at is None:
            row.notes.append(f"{sc.part} did not come back within the bound")
        return row

    async def count_credits(self, run: Run, row: Row) -> None:
        """Members credited twice (ledger), and coupon pools issued beyond their stock."""
        users = [s.userid for s in run.sent if s.kind in ("checkin", "coupon")]
        keys = GameKeys(self.brand_id)
        rows = [row for user in sorted(set(users))
                for row in ledger_rows(await self.redis.xrange(keys.ledger(user)))]
        doubled = report.doubled_credits(report.credit_counts(rows, users))
        row.credits_doubled = len(doubled)
        if doubled:
            row.notes.append(f"credited twice: {', '.join(doubled[:10])}")
        row.notes.append(", ".join(self.credited(run, rows, kind) for kind in ("checkin", "coupon"))
                         + "; pools issued " + ", ".join(await self.pools(row)))

    @staticmethod
    def credited(run: Run, rows: list[dict[str, str]], kind: str) -> str:
        """How many members who asked for a check-in or a coupon got one (a sold-out pool
        or a busy reply explains a shortfall)."""
        askers = [s.userid for s in run.sent if s.kind == kind]
        got = report.credit_counts([r for r in rows if r.get("reason") == kind], askers)
        return f"{kind} credited {len(got)} of {len(askers)}"

    async def pools(self, row: Row) -> list[str]:
        """Each coupon pool as issued/stock; more than its stock breaks the run."""
        shown = []
        for campaign, stock in self.campaigns.items():
            key = GameKeys(self.brand_id).issued(campaign)
            issued = int(await self.redis.get(key) or 0)
            shown.append(f"{campaign} {issued}/{stock}")
            if issued > stock:
                row.broken = True
                row.notes.append(f"coupon pool {campaign} oversold: {issued} of {stock}")
        return shown

    def message_notes(self, run: Run, answers: dict[str, list[Answer]]) -> list[str]:
        """What explains the message columns: refusals, second replies, who went unanswered."""
        notes = []
        refused = sum(s.refused for s in run.slots)
        if refused:
            notes.append(f"{refused} second replies were tried on spent response_urls")
        silent = [s for s in [*run.sent, *run.probes] if not answers.get(s.userid)]
        slots = {s.userid: s for s in run.slots}
        for message in silent[:5]:
            slot = slots.get(message.userid)
            notes.append(f"unanswered: {message.userid} said {message.text!r} at "
                         f"{message.at - run.fault_at:+.1f} s from the fault; callback statuses "
                         f"{list(slot.statuses) if slot else 'none'}")
        delivered = [at for at, p in run.webhook
                     if any(t in report.webhook_text(p) for t in run.accepted)]
        if delivered and run.fault_at:
            notes.append(f"last post delivered {max(delivered) - run.fault_at:+.1f} s "
                         "from the fault")
        if run.post_refusals:
            notes.append(f"posts never accepted (last status: count): {run.post_refusals}")
        doubled = [a for a in answers.values() if len(a) > 1]
        for got in doubled[:3]:
            notes.append(f"answered twice: {got[0].userid}: "
                         + " / ".join(f"{a.via} at {a.at - run.fault_at:+.1f} s" for a in got))
        return notes

    async def stack_notes(self, run: Run, before: dict[str, int], dead_before: int) -> list[str]:
        """The bridge's own counters over the scenario, and anything left queued."""
        notes = []
        with contextlib.suppress(RedisError, OSError):
            after = {**await self.metrics(),
                     **{f"spool_{k}": v for k, v in (await self.spool() or {}).items()}}
            moved = {n: after.get(n, 0) - before.get(n, 0) for n in METRIC_NAMES}
            for name in ("spool_spooled", "spool_drained"):  # per process: a restart resets them
                now, then = after.get(name, 0), before.get(name, 0)
                moved[name] = now - then if now >= then else now
            notes.append("bridge counters: " + ", ".join(f"{k} +{v}" for k, v in moved.items()
                                                         if v))
            dead = int(await self.redis.xlen(DEAD)) - dead_before
            if dead:
                notes.append(f"{dead} posts dead-lettered")
        inbox, outbox = await self.queued()
        if (inbox, outbox) != (0, 0):
            notes.append(f"still queued at the end: inbox {inbox}, outbox {outbox}")
        if run.back_at is not None and run.fault_at and run.scenario.part != "sender":
            notes.append(f"{run.scenario.part} back after {run.back_at - run.fault_at:.1f} s")
        return notes

    async def warm_up(self) -> None:
        """One answered message before the first scenario, so Rasa's first turn is not timed."""
        await self.sim.add_members(["chaos_warmup_0"])
        await self.sim.say("chaos_warmup_0", "probe", PROBE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(s.replied_at for s in await self.sim.slots("chaos_warmup_")):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("the warm-up message was never answered; see the log")


async def run_all(chaos_parts: tuple[Supervisor, dict[str, str], TextIO],
                  scenarios: Sequence[Scenario], rows: list[Row]) -> None:
    """Every chosen scenario, one after the other, on the one stack."""
    supervisor, ports, terminal = chaos_parts
    async with aiohttp.ClientSession() as session:
        chaos = Chaos(supervisor, ports, session, terminal)
        try:
            await chaos.warm_up()
            for scenario in scenarios:
                rows.append(await chaos.run(scenario))
        finally:
            await chaos.redis.close()


def choose(only: str, scale: float) -> list[Scenario]:
    """The scenarios named by --only (all when empty), scaled."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(known)}")
    return [scaled(known[n], scale) for n in (names or list(known))]


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated scenario names "
                        f"({', '.join(s.name for s in SCENARIOS)})")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply burst sizes (0.25 for a quick run)")
    return parser.parse_args(argv)


def interrupt_on_sigterm() -> None:
    """SIGTERM stops the suite like Ctrl-C: the stack is always stopped."""
    def _raise(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _raise)


def stop_everything(supervisor: Supervisor, stack: Stack, data_dir: Path) -> None:
    """Stop supervising, then every part (Redis last), then drop the throw-away data."""
    supervisor.stop()
    stack.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def summary(rows: Sequence[Row], scenarios: Sequence[Scenario], elapsed_s: float) -> str:
    """The table, the notes and the verdict."""
    verdict = ("PASS" if len(rows) == len(scenarios) and not any(r.failed for r in rows)
               else "FAIL")
    return "\n".join(["", report.markdown_table(rows), "", report.notes_text(rows), "",
                      f"{verdict}: {len(rows)} of {len(scenarios)} scenarios in "
                      f"{elapsed_s / 60:.1f} min"])


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run the scenarios, print the table; 1 on losses, doubles or silence."""
    args = parse(argv)
    scenarios = choose(args.only, args.scale)
    if not MODEL.exists():
        print(f"chaos: no trained model at {MODEL}: run `make train`", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / "chaos.log"
    log_path.unlink(missing_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="qz-chaos-"))
    ports = configure(data_dir)
    roomy_games(data_dir, scenarios)
    interrupt_on_sigterm()
    stack, started = Stack(), time.monotonic()
    rows: list[Row] = []
    supervisor = Supervisor(stack)
    print(f"chaos: starting the stack on private ports; its output goes to {log_path}",
          flush=True)
    with children_write_to(log_path) as terminal:
        try:
            start_all(stack)
            supervisor.start()
            asyncio.run(run_all((supervisor, ports, terminal), scenarios, rows))
        except KeyboardInterrupt:
            print("chaos: interrupted; stopping the stack", file=terminal)
        except Exception as exc:  # still stop the stack and show the scenarios that ran
            traceback.print_exc()  # into the log
            print(f"chaos: {type(exc).__name__}: {exc} (traceback in {log_path})",
                  file=terminal)
        finally:
            stop_everything(supervisor, stack, data_dir)
        print(summary(rows, scenarios, time.monotonic() - started), file=terminal)
    return 0 if len(rows) == len(scenarios) and not any(r.failed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
