"""`make bench-console`: the console's numbers at a brand's scale, on a real redis-server.

1. Aggregation: events emitted into the brand's streams, counted by the bridge's aggregator
   (the real StreamConsumer and Lua) — events/s, against the same events only read and
   acknowledged (the streams' own cost: the baseline) in the same run.
2. A year of history for 1,000 groups (generated), then dashboard queries: a 90-day range for
   the brand and for one group, and the group list by health — p50/p99, against one HGETALL
   (one round trip: the floor) in the same run. Redis memory per group-day.
3. Publish under load (bench/publish.py): `make run`'s stack on private ports, members talking
   at 20 turns/s, an operator's edit published — edit → live wall time and the turns that failed
   during the publish (target 0), against the same traffic with no publish in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from bench.nlu_run import percentile
from bot.analytics.aggregator import AGGREGATORS, Aggregator
from bot.common.streams import Entry, StreamConsumer
from qunzhu import events, metrics
from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis, async_client, batch, text_of
from tests.redis_servers import start_single

BRAND = "benchbrand"
INTENTS = ["checkin", "faq/hours", "faq/delivery", "claim_coupon", "lucky_draw", "greet",
           "nlu_fallback"]


def day_events(rng: random.Random, group: str, day: datetime, per_day: int,
               serial: int) -> list[Event]:
    """One group's day: mostly turns and check-ins, some claims, draws and churn."""
    out = []
    for i in range(per_day):
        user = f"{group}-m{rng.randrange(60)}"
        at = (day + timedelta(seconds=rng.randrange(86_000))).timestamp()
        roll = rng.random()
        eid = f"e{serial}-{i}"
        if roll < 0.5:
            intent = rng.choice(INTENTS)
            out.append(Event(Kind.TURN, eid, group, user, at, {
                "intent": intent, "confidence": rng.random(),
                "fallback": intent == "nlu_fallback"}))
        elif roll < 0.8:
            out.append(Event(Kind.CHECKIN, eid, group, user, at,
                             {"streak": rng.randrange(1, 40), "points": 5}))
        elif roll < 0.9:
            out.append(Event(Kind.CLAIM, eid, group, user, at, {"campaign": "c1"}))
        elif roll < 0.97:
            out.append(Event(Kind.DRAW, eid, group, user, at, {"prize": "", "cost": 10}))
        else:
            out.append(Event(rng.choice([Kind.JOINED, Kind.LEFT]), eid, group, user, at))
    return out


async def emit_all(r: AsyncRedis, sample: list[Event]) -> None:
    for i in range(0, len(sample), 2000):
        pipe = batch(r)
        for e in sample[i:i + 2000]:
            pipe.xadd(events.stream_key(BRAND, events.shard_of(e)), e.fields(),
                      maxlen=events.RAW_MAXLEN, approximate=True)
        await pipe.execute()


async def drained(r: AsyncRedis, group: str) -> bool:
    """Every stream's consumer group exists and has read and acknowledged everything."""
    for key in events.stream_keys(BRAND):
        found = {text_of(g["name"]): g for g in await r.xinfo_groups(key)}
        g = found.get(group)
        if g is None or int(g["pending"]) or int(g.get("lag") or 0):
            return False
    return True


async def timed_drain(r: AsyncRedis, run: Callable[[], Coroutine[Any, Any, None]],
                      stop: Callable[[], None], group: str) -> float:
    started = time.perf_counter()
    task = asyncio.create_task(run())
    await asyncio.sleep(0.2)
    while not await drained(r, group):
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    stop()
    await asyncio.wait_for(task, 10)
    return elapsed


async def aggregation(r: AsyncRedis, count: int) -> None:
    rng = random.Random(1)
    start = datetime.now(metrics.TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    sample = [e for n in range(count // 10)
              for e in day_events(rng, f"g{n % 1000}", start, 10, n)][:count]
    await emit_all(r, sample)
    # Baseline: the same entries only read and acknowledged, by the same consumer class.
    stopping = asyncio.Event()
    consumers = [StreamConsumer(r, key, "readers", "bench", read_count=500)
                 for key in events.stream_keys(BRAND)]

    def ack_only(c: StreamConsumer) -> Callable[[list[Entry]], Awaitable[None]]:
        async def handle(entries: list[Entry]) -> None:
            await c.ack(*(e.id for e in entries), delete=False)
        return handle

    async def read_only() -> None:
        await asyncio.gather(*(c.run(ack_only(c), stopping) for c in consumers))

    base = await timed_drain(r, read_only, stopping.set, "readers")
    aggregator = Aggregator(r, BRAND, consumer="bench", read_count=500)
    took = await timed_drain(r, aggregator.run, aggregator.stop, AGGREGATORS)
    print(f"aggregation: {count:,} events, {count / took:,.0f} events/s counted "
          f"({aggregator.counted:,} counted) — baseline, read + ack only: "
          f"{count / base:,.0f} events/s (counting costs {took / base:.1f}× the streams' own work)")


async def history(r: AsyncRedis, groups: int, days: int, per_day: int) -> None:
    rng = random.Random(2)
    today = datetime.now(metrics.TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    before = int((await r.info("memory"))["used_memory"])
    started = time.perf_counter()
    total = 0
    serial = 10**9
    for d in range(days):
        day = today - timedelta(days=d)
        chunk: list[Event] = []
        for g in range(groups):
            serial += 1
            chunk += day_events(rng, f"g{g}", day, per_day, serial)
        for i in range(0, len(chunk), 5000):
            total += await metrics.record(r, BRAND, chunk[i:i + 5000])
    took = time.perf_counter() - started
    used = int((await r.info("memory"))["used_memory"]) - before
    print(f"history: {groups:,} groups × {days} days × {per_day} events = {total:,} events "
          f"folded in {took:.0f} s ({total / took:,.0f} events/s); Redis +{used / 2**20:,.0f} MiB "
          f"= {used / (groups * days):,.0f} bytes per group-day")


async def queries(r: AsyncRedis, groups: int, rounds: int) -> None:
    last = metrics.today()
    first = last - timedelta(days=89)
    keys = metrics.MetricKeys(BRAND)

    async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            await call()
            out.append((time.perf_counter() - t) * 1000)
        return out

    floor = await timed(lambda: r.hgetall(keys.brand_counts(last)), rounds)
    brand = await timed(lambda: metrics.range_stats(r, BRAND, first, last), rounds)
    group = await timed(lambda: metrics.range_stats(r, BRAND, first, last, "g7"), rounds)
    health = await timed(lambda: metrics.group_health(r, BRAND, last, 7), max(3, rounds // 20))

    def line(name: str, ms: list[float]) -> str:
        return (f"  {name:<38} p50 {percentile(ms, 0.5):7.1f} ms   "
                f"p99 {percentile(ms, 0.99):7.1f} ms")

    print("dashboard queries:")
    print(line("baseline: one HGETALL (a round trip)", floor))
    print(line("brand, 90 days", brand))
    print(line("one group, 90 days", group))
    print(line(f"group list by health, {groups:,} groups, 7+7 days", health))


async def main(args: argparse.Namespace) -> None:
    server = start_single()
    r = async_client(server.url, cluster=False, max_connections=64)
    try:
        await r.flushdb()
        await aggregation(r, args.events)
        await history(r, args.groups, args.days, args.per_day)
        await queries(r, args.groups, args.rounds)
    finally:
        await r.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--turns-per-s", type=float, default=20.0,
                        help="members' turns per second during the publish (0: skip it)")
    args = parser.parse_args()
    asyncio.run(main(args))
    if args.turns_per_s > 0:
        from bench import publish

        publish.main(args.turns_per_s)
