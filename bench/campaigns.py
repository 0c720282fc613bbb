"""`make bench-campaigns`: a brand's morning reminder and lunchtime promotion to 30,000 groups
through the campaign scheduler, on a real redis-server, in virtual time.

The campaigns: 09:00 check-in reminder (service, jitter ±10 min) and 12:00 promotion
(promotional, jitter ±5 min), one robot per group. The scheduler (bot.campaigns.scheduler,
in this process, queueing with BridgeStore.enqueue) ticks every virtual second from 08:49 to
12:10 on a VirtualClock. Printed:

1. the posts against WeCom's 20 posts/min per robot (from when each post was queued), and the
   peak posts/s and posts/min over all groups, against the same posts without jitter;
2. budget violations per group and local day (promotions against the file's cap, spacing,
   quiet hours, service cap), from the outbox and the scheduler's status records;
3. duplicates and losses: each (campaign, group) queued exactly once, XLEN = 2 × groups;
4. wall and CPU time (time.process_time) per 1,000 occurrences, Redis CPU and memory — against
   the same posts queued straight with BridgeStore.enqueue_many (no scheduler, budget or
   rendering), the baseline, in the same run;
5. two scheduler instances ticking in turn (both try, one leads): what the standby costs;
6. where a tick's time goes: due_between() in and out of a jitter window.

The baseline and one scheduler run again on a three-master Redis Cluster (--no-cluster skips
it). Timings are printed, never asserted; a failed check (1–3) exits 1. QZ_BENCH_GROUPS (or
--groups) sets the group count (QZ_BENCH_GROUPS=2000 for a quick run); --profile runs the
single scheduler under cProfile and prints the hot spots.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from unittest import mock

import psutil
import redis

from bench.nlu_run import percentile
from bot.campaigns import scheduler as scheduler_module
from bot.campaigns.occurrences import Occurrence, SpreadCache, due_between
from bot.campaigns.render import LiveData
from bot.campaigns.scheduler import Scheduler
from bot.common.clock import VirtualClock
from bot.common.groups import Directory, Robot
from bot.common.posts import Post
from bot.common.store import OUTBOX, BridgeStore
from qunzhu.campaign_status import day_keys
from qunzhu.campaigns import CampaignsFile, load_campaigns, occurrence_key
from qunzhu.config import SHANGHAI, Brand, Games, load_brand, load_games
from qunzhu.redisconn import AsyncRedis, async_client, text_of
from tests.redis_servers import Servers, start_cluster, start_single

DAY = datetime(2026, 11, 25, tzinfo=SHANGHAI)  # a Wednesday
START = DAY.replace(hour=8, minute=49)
END = DAY.replace(hour=12, minute=10)
TICK_S = 1.0  # the bridge's scheduler ticks every second
ROBOT_LIMIT = 20  # posts per robot in any 60 s (PROTOCOL.md)
WINDOW_S = 60.0
BATCH = 1000  # the baseline's posts per round trip (as bench-bridge accepts a campaign)
CAMPAIGNS = """
budget:
  promo_per_day: 1
campaigns:
  - id: morning
    name: 每日打卡提醒
    text: "早上好，{群名}！今天也来打卡吧，连续打卡有惊喜"
    schedule: {daily: "09:00"}
    promotional: false
    jitter_minutes: 10
  - id: lunch
    name: 午间福利
    text: "{群名}的朋友们，午间福利来啦：今天 12 点起到店出示群聊可享第二杯半价"
    schedule: {daily: "12:00"}
    promotional: true
    jitter_minutes: 5
"""


@dataclass
class Cost:
    """What one way of queueing the posts took."""

    wall_s: float
    cpu_s: float
    redis_cpu_s: float
    mem_before: int
    mem_after: int


@dataclass
class TickLog:
    """Every tick's virtual time, wall and CPU time, per scheduler instance."""

    ticks: int = 0
    led: int = 0
    cpu_s: float = 0.0
    walls: list[tuple[float, float]] = field(default_factory=list)  # (virtual t, wall s)
    rest: list[tuple[float, int]] = field(default_factory=list)  # (CPU s besides finding what
    # is due, posts queued) per tick


@dataclass
class Listing:
    """CPU the scheduler spent finding what is due: Directory.tags() and due_between()."""

    tags_s: float = 0.0
    tags_calls: int = 0
    due_s: float = 0.0
    due_calls: int = 0

    def reset(self) -> None:
        """Zero for the next pass."""
        self.tags_s = self.due_s = 0.0
        self.tags_calls = self.due_calls = 0


LISTING = Listing()


# ------------------------------------------------------------------ set-up
class TimedDirectory(Directory):
    """The directory, timing tags() (the scheduler builds the group → tags map every window)."""

    def tags(self) -> dict[str, list[str]]:
        """Directory.tags(), its CPU added to LISTING."""
        started = time.process_time()
        try:
            return super().tags()
        finally:
            LISTING.tags_s += time.process_time() - started
            LISTING.tags_calls += 1


def timed_due_between(*args: Any, **kwargs: Any) -> list[Occurrence]:
    """due_between(), its CPU added to LISTING (patched into the scheduler for a pass)."""
    started = time.process_time()
    try:
        return due_between(*args, **kwargs)
    finally:
        LISTING.due_s += time.process_time() - started
        LISTING.due_calls += 1


def make_directory(count: int) -> Directory:
    """`count` groups, each with its own robot (its own webhook key, so its own rate limit)."""
    robots = {f"g{n:05d}": Robot(f"g{n:05d}", f"门店{n:05d}群", f"bench-key-{n:05d}-{'x' * 16}",
                                 False) for n in range(count)}
    return TimedDirectory(robots=robots, staff_chatid="", staff_mention=())


def make_scheduler(r: AsyncRedis, brand: Brand, games: Games, file: CampaignsFile,
                   groups: Directory, clock: VirtualClock, owner: str) -> Scheduler:
    """A scheduler as the bridge builds one, queueing into the real outbox."""
    store = BridgeStore(r)

    async def member_count(_chatid: str) -> int:
        return 0

    async def enqueue(post: Post, idem: str) -> str:
        post_id, _new = await store.enqueue(post.group, post.fields(), idem, clock.now())
        return post_id

    live = LiveData(r, lambda: brand, lambda: games, lambda: groups, member_count)
    return Scheduler(r, brand.id, lambda: file, lambda: groups, live, enqueue, clock,
                     owner=owner, tick_s=TICK_S)


def node_clients(servers: Servers) -> list[redis.Redis]:
    """A plain client per server process (INFO and FLUSHALL go to every cluster node)."""
    if servers.ports:
        return [redis.Redis(host="127.0.0.1", port=p) for p in servers.ports]
    return [redis.Redis.from_url(servers.url)]


def redis_memory(servers: Servers) -> int:
    """used_memory summed over the servers."""
    return sum(int(c.info("memory")["used_memory"]) for c in node_clients(servers))


def redis_cpu(servers: Servers) -> float:
    """CPU seconds the redis-server processes have used so far."""
    total = 0.0
    for proc in servers.procs:
        times = psutil.Process(proc.pid).cpu_times()
        total += times.user + times.system
    return total


def flush(servers: Servers) -> None:
    """An empty Redis for the next pass (memory measured from here)."""
    for client in node_clients(servers):
        client.flushall()


def scheduled_at(file: CampaignsFile) -> dict[str, tuple[datetime, int]]:
    """Each campaign's moment today and its jitter (minutes)."""
    out = {}
    for campaign in file.campaigns:
        moment = next(campaign.schedule.between(START - timedelta(hours=1), END))
        out[campaign.id] = (moment, campaign.jitter_minutes)
    return out


# ------------------------------------------------------------------ the passes
async def baseline(r: AsyncRedis, servers: Servers, file: CampaignsFile,
                   groups: Directory) -> Cost:
    """The same posts (text, source, idempotency key) straight into the outbox, 1,000 per
    round trip: what queueing alone costs."""
    flush(servers)
    moments = scheduled_at(file)
    store = BridgeStore(r)
    mem_before, redis_before = redis_memory(servers), redis_cpu(servers)
    wall, cpu = time.perf_counter(), time.process_time()
    for campaign in file.campaigns:
        moment = moments[campaign.id][0]
        posts = []
        for chatid, robot in groups.robots.items():
            text = campaign.text.format_map({"群名": robot.name})
            post = Post(chatid, "text", text, source=campaign.id)
            posts.append((chatid, post.fields(),
                          f"campaign:{occurrence_key(campaign.id, moment, chatid)}"))
        for i in range(0, len(posts), BATCH):
            await store.enqueue_many(posts[i:i + BATCH], moment.timestamp())
    cost = Cost(time.perf_counter() - wall, time.process_time() - cpu,
                redis_cpu(servers) - redis_before, mem_before, redis_memory(servers))
    queued = int(await r.xlen(OUTBOX))
    if queued != len(groups.robots) * len(file.campaigns):
        raise SystemExit(f"baseline queued {queued:,} posts, expected "
                         f"{len(groups.robots) * len(file.campaigns):,}")
    return cost


async def scheduled(r: AsyncRedis, servers: Servers, file: CampaignsFile, groups: Directory,
                    owners: list[str], profile: cProfile.Profile | None = None
                    ) -> tuple[Cost, dict[str, TickLog], list[Scheduler], Listing]:
    """The scheduler(s) from 08:49 to 12:10, one virtual second per tick; with two, each tick
    both try, taking turns to go first."""
    flush(servers)
    LISTING.reset()
    brand, games = load_brand(), load_games()
    clock = VirtualClock(START.timestamp())
    schedulers = [make_scheduler(r, brand, games, file, groups, clock, o) for o in owners]
    logs = {o: TickLog() for o in owners}
    mem_before, redis_before = redis_memory(servers), redis_cpu(servers)
    wall, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    step = 0
    with mock.patch.object(scheduler_module, "due_between", timed_due_between):
        while clock.now() < END.timestamp():
            clock.advance(TICK_S)
            order = schedulers if step % 2 == 0 else schedulers[::-1]
            for scheduler in order:
                log = logs[scheduler.owner]
                tick_wall, cpu_before = time.perf_counter(), time.process_time()
                listed, sent = LISTING.tags_s + LISTING.due_s, scheduler.tally.sent
                led = await scheduler.tick()
                tick_cpu = time.process_time() - cpu_before
                log.cpu_s += tick_cpu
                log.walls.append((clock.now(), time.perf_counter() - tick_wall))
                log.rest.append((tick_cpu - (LISTING.tags_s + LISTING.due_s - listed),
                                 scheduler.tally.sent - sent))
                log.ticks += 1
                log.led += led
            step += 1
    if profile is not None:
        profile.disable()
    cost = Cost(time.perf_counter() - wall, time.process_time() - cpu,
                redis_cpu(servers) - redis_before, mem_before, redis_memory(servers))
    return cost, logs, schedulers, Listing(**LISTING.__dict__)


# ------------------------------------------------------------------ the checks
@dataclass
class Queued:
    """One queued post, joined with its status record."""

    campaign: str
    chatid: str
    post: str
    at: float  # when the scheduler queued it (virtual)
    due: float  # its jittered moment
    scheduled: float  # the campaign's moment (what it would be without jitter)


def max_in_window(times: list[float], width: float) -> int:
    """The most of `times` (sorted) inside any [t, t + width)."""
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect_left(times, t + width, lo=i) - i)
    return best


async def read_back(r: AsyncRedis, brand_id: str, file: CampaignsFile
                    ) -> tuple[list[dict[str, str]], dict[tuple[str, str], dict[str, object]],
                               Counter[str]]:
    """The outbox's entries, the status records by (campaign, group), and their counters."""
    entries: list[dict[str, str]] = []
    last = "-"
    while True:
        page = await r.xrange(OUTBOX, min=last, max="+", count=10_000)
        if last != "-":
            page = page[1:]
        if not page:
            break
        entries += [{text_of(k): text_of(v) for k, v in fields.items()} for _id, fields in page]
        last = text_of(page[-1][0])
    records: dict[tuple[str, str], dict[str, object]] = {}
    counters: Counter[str] = Counter()
    for campaign in file.campaigns:
        occ_key, count_key = day_keys(brand_id, campaign.id, DAY.date())
        for raw_field, raw in (await r.hgetall(occ_key)).items():
            scheduled, _, chatid = text_of(raw_field).partition("|")
            doc = json.loads(text_of(raw))
            doc["scheduled"] = datetime.strptime(scheduled, "%Y%m%dT%H%M").replace(
                tzinfo=SHANGHAI).timestamp()
            records[(campaign.id, chatid)] = doc
        counters.update({f"{campaign.id}:{text_of(k)}": int(v)
                         for k, v in (await r.hgetall(count_key)).items()})
    return entries, records, counters


async def check(r: AsyncRedis, brand_id: str, file: CampaignsFile, groups: Directory
                ) -> list[str]:
    """Print the rate, budget and exactly-once numbers; return what failed."""
    failures: list[str] = []
    entries, records, counters = await read_back(r, brand_id, file)
    expected = {(c.id, g) for c in file.campaigns for g in groups.robots}
    promotional = {c.id: c.promotional for c in file.campaigns}

    # 3. exactly once
    xlen = int(await r.xlen(OUTBOX))
    seen = Counter((e.get("source", ""), e["group"]) for e in entries)
    doubled = sum(n - 1 for n in seen.values() if n > 1)
    lost = len(expected - set(seen))
    strays = len(set(seen) - expected)
    states = Counter(str(doc["state"]) for doc in records.values())
    reasons = Counter(f"{doc['state']}:{doc['reason']}" for doc in records.values())
    post_ids = {e.get("id", ""): (e.get("source", ""), e["group"]) for e in entries}
    unmatched = sum(1 for key, doc in records.items()
                    if doc["state"] == "sent" and post_ids.get(str(doc["post"])) != key)
    counted_sent = sum(n for k, n in counters.items() if k.endswith(":sent"))
    print(f"  exactly once: {len(entries):,} queued (XLEN {xlen:,}, expected {len(expected):,}),"
          f" {doubled} duplicates, {lost} lost, {strays} unexpected; outcomes "
          + ", ".join(f"{s} {states.get(s, 0):,}" for s in ("sent", "deferred", "dropped",
                                                             "skipped"))
          + f" ({', '.join(f'{k} {n:,}' for k, n in sorted(reasons.items()))}); "
          f"status counters say sent {counted_sent:,}")
    if xlen != len(expected) or len(entries) != len(expected):
        failures.append(f"outbox holds {xlen:,} posts, expected {len(expected):,}")
    if doubled or lost or strays:
        failures.append(f"{doubled} duplicates, {lost} lost, {strays} unexpected posts")
    if len(records) != len(expected) or states.get("sent", 0) != len(expected):
        failures.append(f"status records: {len(records):,} for {len(expected):,} occurrences, "
                        f"{dict(states)}")
    if unmatched:
        failures.append(f"{unmatched} sent records name no matching outbox entry")
    if counted_sent != len(expected):
        failures.append(f"status counters say {counted_sent:,} sent, expected {len(expected):,}")

    queued = [Queued(c, g, str(doc["post"]), float(str(doc["at"])),
                     float(str(doc["due"])), float(str(doc["scheduled"])))
              for (c, g), doc in records.items() if doc["state"] == "sent"]

    # 1. WeCom's rate limit per robot, and the spread over all groups
    by_robot: dict[str, list[float]] = defaultdict(list)
    for q in queued:
        robot = groups.robot(q.chatid)
        by_robot[robot.robot_id if robot else f"?{q.chatid}"].append(q.at)
    robot_peak = max((max_in_window(sorted(ts), WINDOW_S) for ts in by_robot.values()),
                     default=0)
    over = sum(1 for ts in by_robot.values() if max_in_window(sorted(ts), WINDOW_S) > ROBOT_LIMIT)
    at_sorted = sorted(q.at for q in queued)
    per_second = Counter(int(t) for t in at_sorted)
    flat = sorted(q.scheduled for q in queued)  # the same posts with no jitter
    flat_second = Counter(int(t) for t in flat)
    late = [q.at - q.due for q in queued]
    early = sum(1 for x in late if x < -0.001)
    print(f"  rate: {len(by_robot):,} robots, the busiest gets {robot_peak} in any 60 s "
          f"(WeCom allows {ROBOT_LIMIT}), {over} robots over; all groups: peak "
          f"{max(per_second.values(), default=0):,} posts/s, {max_in_window(at_sorted, 60):,} "
          f"in any 60 s — without jitter: {max(flat_second.values(), default=0):,} posts/s, "
          f"{max_in_window(flat, 60):,} in any 60 s")
    if late:
        print(f"  queued after its jittered moment: mean {sum(late) / len(late):.2f} s, "
              f"max {max(late):.2f} s (tick {TICK_S:g} s); {early} early")
    if over:
        failures.append(f"{over} robots get more than {ROBOT_LIMIT} posts in 60 s")
    if early:
        failures.append(f"{early} posts queued before their moment")

    # 2. the budget, per group and local day
    by_group: dict[tuple[str, str], list[Queued]] = defaultdict(list)
    for q in queued:
        local_day = datetime.fromtimestamp(q.at, SHANGHAI).date().isoformat()
        by_group[(q.chatid, local_day)].append(q)
    broken: Counter[str] = Counter()
    shown_limits = None
    for (chatid, _day), posts in by_group.items():
        robot = groups.robot(chatid)
        limits = file.limits(chatid, list(robot.tags) if robot else [])
        shown_limits = shown_limits or limits
        promos = sorted(q.at for q in posts if promotional[q.campaign])
        services = [q for q in posts if not promotional[q.campaign]]
        if len(promos) > limits.promo_per_day:
            broken["promo_per_day"] += 1
        if len(services) > limits.service_per_day:
            broken["service_per_day"] += 1
        gaps = [b - a for a, b in pairwise(promos)]
        if any(g < limits.promo_gap_minutes * 60 for g in gaps):
            broken["promo_gap"] += 1
        broken["quiet_hours"] += sum(
            1 for q in posts if limits.is_quiet(datetime.fromtimestamp(q.at, SHANGHAI)))
    violations = sum(broken.values())
    if shown_limits is not None:
        print(f"  budget: {violations} violations over {len(by_group):,} group-days "
              f"(promotions ≤ {shown_limits.promo_per_day}/day, ≥ "
              f"{shown_limits.promo_gap_minutes} min apart, none in "
              f"{shown_limits.quiet_start:%H:%M}–{shown_limits.quiet_end:%H:%M}; service ≤ "
              f"{shown_limits.service_per_day}/day)"
              + (f": {dict(broken)}" if violations else ""))
    if violations:
        failures.append(f"budget violations: {dict(broken)}")
    return failures


# ------------------------------------------------------------------ printing
def per_k(seconds: float, occurrences: int) -> str:
    """Milliseconds per 1,000 occurrences."""
    return f"{seconds * 1000 / (occurrences / 1000):,.0f} ms"


def mib(n: int) -> str:
    """Bytes as MiB."""
    return f"{n / 2**20:,.1f} MiB"


def in_windows(t: float, moments: Iterable[tuple[datetime, int]]) -> bool:
    """Whether a virtual time lies where some campaign's jitter window is being listed."""
    return any(abs(t - m.timestamp()) <= j * 60 + TICK_S for m, j in moments)


def print_cost(label: str, cost: Cost, occurrences: int, base: Cost | None) -> None:
    """One pass's time, CPU and memory, against the baseline when given."""
    ratio = (f" — {cost.wall_s / base.wall_s:.1f}× the baseline's wall, "
             f"{cost.cpu_s / base.cpu_s:.1f}× its CPU") if base else ""
    print(f"{label}: {cost.wall_s:,.1f} s wall, {cost.cpu_s:,.1f} s CPU = "
          f"{per_k(cost.wall_s, occurrences)} wall, {per_k(cost.cpu_s, occurrences)} CPU per "
          f"1,000 occurrences{ratio}; redis-server CPU {cost.redis_cpu_s:,.1f} s "
          f"({per_k(cost.redis_cpu_s, occurrences)} per 1,000); Redis memory "
          f"{mib(cost.mem_before)} → {mib(cost.mem_after)} "
          f"(+{(cost.mem_after - cost.mem_before) / occurrences:,.0f} bytes per occurrence)")


def print_split(listing: Listing, log: TickLog, occurrences: int, base: Cost) -> None:
    """The leader's CPU: finding what is due, each tick's fixed steps, each occurrence."""
    rest = sum(cpu for cpu, _sent in log.rest)
    fixed = statistics.median(cpu for cpu, sent in log.rest if not sent)  # ticks queueing none
    per_post = max(0.0, rest - fixed * len(log.rest))
    print(f"  CPU split: finding what is due {listing.tags_s + listing.due_s:,.1f} s — "
          f"Directory.tags() {listing.tags_s:,.1f} s ({listing.tags_calls:,} calls, "
          f"{listing.tags_s / max(1, listing.tags_calls) * 1000:.2f} ms each), due_between "
          f"{listing.due_s:,.1f} s ({listing.due_calls:,} windows); each tick's lease, cursor "
          f"and deferred set {fixed * 1e6:,.0f} µs × {len(log.rest):,} = "
          f"{fixed * len(log.rest):,.1f} s; render, budget, status and enqueue "
          f"{per_post:,.1f} s = {per_k(per_post, occurrences)} per 1,000 occurrences "
          f"(the baseline: {per_k(base.cpu_s, occurrences)})")


def print_ticks(log: TickLog, moments: list[tuple[datetime, int]]) -> None:
    """How long a tick takes outside and inside the jitter windows."""
    quiet = [w * 1000 for t, w in log.walls if not in_windows(t, moments)]
    busy = [w * 1000 for t, w in log.walls if in_windows(t, moments)]
    parts = [f"  ticks: {log.ticks:,} ({log.led:,} leading)"]
    if quiet:
        parts.append(f"outside the jitter windows p50 {percentile(quiet, 0.5):.2f} ms")
    if busy:
        parts.append(f"inside them ({len(busy):,} ticks) p50 {percentile(busy, 0.5):.0f} ms, "
                     f"p99 {percentile(busy, 0.99):.0f} ms, max {max(busy):.0f} ms, "
                     f"{sum(busy) / 1000:,.1f} s in all")
    print(", ".join(parts))


def print_listing_cost(file: CampaignsFile, groups: Directory) -> None:
    """due_between() alone for one 1 s window at 09:00 (inside the reminder's jitter window) —
    with no cache, building the scheduler's cache, and with it warm — and at 10:30."""
    tags = groups.tags()
    nine, idle = DAY.replace(hour=9), DAY.replace(hour=10, minute=30)
    cache: SpreadCache = {}

    def timed(at: datetime, rounds: int, spreads: SpreadCache | None) -> tuple[float, float]:
        started, found = time.process_time(), 0
        for i in range(rounds):
            found += len(due_between(file, tags, at + timedelta(seconds=i),
                                     at + timedelta(seconds=i + 1), spreads))
        return (time.process_time() - started) / rounds * 1000, found / rounds

    cold, found = timed(nine, 3, None)
    first, _ = timed(nine - timedelta(seconds=1), 1, cache)
    warm, _ = timed(nine, 20, cache)
    quiet, _ = timed(idle, 20, cache)
    print(f"  due_between for one 1 s window, {len(tags):,} groups, CPU: at 09:00 (finds "
          f"{found:.0f}) {cold:,.1f} ms with no cache, {first:,.1f} ms filling the cache, "
          f"{warm:,.2f} ms with it warm (the scheduler's case); at 10:30 (nothing near) "
          f"{quiet:,.2f} ms")


def print_profile(profile: cProfile.Profile, top: int = 14) -> None:
    """The functions the single scheduler spent its time in."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    print("cProfile of the single scheduler, by own time:")
    text = out.getvalue()
    start = text.find("   ncalls")
    print("\n".join("  " + line for line in text[start:].rstrip().splitlines()))
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(
        "due_between|_window|_one|tick|decide|record|render|enqueue|jitter|occurrence_key")
    text = out.getvalue()
    start = text.find("   ncalls")
    print("… and the scheduler's own steps, cumulative:")
    print("\n".join("  " + line for line in text[start:].rstrip().splitlines()))


# ------------------------------------------------------------------ main
async def bench(servers: Servers, file: CampaignsFile, groups: Directory, *, two: bool,
                profile: bool, label: str) -> list[str]:
    """Baseline, one scheduler, and (optionally) two, on one Redis; return what failed."""
    occurrences = len(groups.robots) * len(file.campaigns)
    moments = list(scheduled_at(file).values())
    r = async_client(servers.url, cluster=servers.cluster, max_connections=96)
    failures: list[str] = []
    brand_id = load_brand().id
    try:
        base = await baseline(r, servers, file, groups)
        print_cost(f"[{label}] baseline — the same {occurrences:,} posts straight into the "
                   f"outbox (BridgeStore.enqueue_many, {BATCH:,} per call)", base, occurrences,
                   None)

        profiler = cProfile.Profile() if profile else None
        cost, logs, schedulers, listing = await scheduled(r, servers, file, groups, ["s1"],
                                                          profiler)
        print_cost(f"[{label}] scheduler, 1 instance", cost, occurrences, base)
        print_split(listing, logs["s1"], occurrences, base)
        print_ticks(logs["s1"], moments)
        failures += [f"[{label}] 1 instance: {f}"
                     for f in await check(r, brand_id, file, groups)]
        if schedulers[0].tally.sent != occurrences:
            failures.append(f"[{label}] 1 instance: the scheduler counted "
                            f"{schedulers[0].tally.sent:,} sent")

        if two:
            cost2, logs2, pair, listing2 = await scheduled(r, servers, file, groups,
                                                           ["s1", "s2"])
            print_cost(f"[{label}] scheduler, 2 instances ticking in turn", cost2, occurrences,
                       base)
            print_split(listing2, next(logs2[s.owner] for s in pair if logs2[s.owner].led),
                        occurrences, base)
            for scheduler in pair:
                log = logs2[scheduler.owner]
                role = "leader" if log.led else "standby"
                print(f"  {scheduler.owner} ({role}): led {log.led:,} of {log.ticks:,} ticks, "
                      f"queued {scheduler.tally.sent:,}, {log.cpu_s:,.2f} s CPU = "
                      f"{log.cpu_s / log.ticks * 1e6:,.0f} µs per tick")
            standby = [logs2[s.owner] for s in pair if not logs2[s.owner].led]
            if standby:
                idle = [w * 1e6 for _t, w in standby[0].walls]
                print(f"  the standby's tick (one lease script): p50 "
                      f"{percentile(idle, 0.5):,.0f} µs, p99 {percentile(idle, 0.99):,.0f} µs "
                      f"wall; total for {standby[0].ticks:,} ticks {sum(idle) / 1e6:.2f} s")
            failures += [f"[{label}] 2 instances: {f}"
                         for f in await check(r, brand_id, file, groups)]
            if sum(s.tally.sent for s in pair) != occurrences:
                failures.append(f"[{label}] 2 instances: the schedulers counted "
                                f"{sum(s.tally.sent for s in pair):,} sent")
        if profiler is not None:
            print_profile(profiler)
    finally:
        await r.close()
    return failures


def main() -> int:
    """Run the passes; 1 when a correctness check failed."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int,
                        default=int(os.environ.get("QZ_BENCH_GROUPS", "30000")))
    parser.add_argument("--no-cluster", action="store_true",
                        help="skip the baseline and scheduler on a 3-master Redis Cluster")
    parser.add_argument("--single-only", action="store_true",
                        help="skip the two-instance pass")
    parser.add_argument("--profile", action="store_true",
                        help="run the single scheduler under cProfile and print hot spots")
    args = parser.parse_args()
    started = time.perf_counter()
    file = load_campaigns(Path("bench-campaigns.yml"), CAMPAIGNS)
    groups = make_directory(args.groups)
    occurrences = args.groups * len(file.campaigns)
    ticks = int((END - START).total_seconds() / TICK_S)
    version = redis.__version__
    print(f"campaigns: {args.groups:,} groups (one robot each) × 09:00 reminder (service, "
          f"±10 min) + 12:00 promotion (±5 min) = {occurrences:,} occurrences; virtual "
          f"{START:%H:%M} → {END:%H:%M}, a tick every {TICK_S:g} s ({ticks:,} ticks); "
          f"redis-py {version}")
    failures: list[str] = []
    servers = start_single()
    try:
        server_version = node_clients(servers)[0].info("server")["redis_version"]
        print(f"single redis-server {server_version}:")
        failures += asyncio.run(bench(servers, file, groups, two=not args.single_only,
                                      profile=args.profile, label="server"))
    finally:
        servers.stop()
    if not args.no_cluster:
        cluster = start_cluster()
        try:
            print("Redis Cluster, 3 masters:")
            failures += asyncio.run(bench(cluster, file, groups, two=False, profile=False,
                                          label="cluster"))
        finally:
            cluster.stop()
    print_listing_cost(file, groups)
    print(f"whole bench: {time.perf_counter() - started:,.0f} s wall")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
