"""The console's counters: events folded once each, checked against a recount of the raw stream.

Runs on a real redis-server and on a real three-master cluster.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from bot.analytics.aggregator import AGGREGATORS, Aggregator
from qunzhu import events, inbox, metrics
from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis, text_of

pytestmark = pytest.mark.redis

BRAND = "testbrand"
DAY0 = date(2026, 11, 2)


def at(day: date, hour: int = 12) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=metrics.TZ).timestamp()


def random_events(rng: random.Random, n: int) -> list[Event]:
    """A few weeks of a few groups: every kind, some members many times, some events twice."""
    out: list[Event] = []
    for i in range(n):
        day = DAY0 + timedelta(days=rng.randrange(14))
        group = rng.choice(["g1", "g2", "g3", ""])
        user = f"u{rng.randrange(40)}"
        kind = rng.choice(list(Kind))
        data: dict[str, events.Value] = {}
        if kind is Kind.TURN:
            data = {"intent": rng.choice(["checkin", "faq", "nlu_fallback"]),
                    "confidence": rng.random(), "text": "你好"}
            data["fallback"] = data["intent"] == "nlu_fallback"
        elif kind is Kind.CHECKIN:
            data = {"streak": rng.randrange(1, 40), "points": rng.choice([5, 10, 20])}
        elif kind is Kind.DRAW:
            data = {"prize": rng.choice(["", "latte", "cup"]), "cost": 10}
        elif kind is Kind.SHOP:
            data = {"reward": "mug", "cost": 100}
        elif kind is Kind.HANDOFF_TAKEN:
            data = {"wait_s": rng.randrange(600)}
        elif kind in (Kind.CLAIM, Kind.REDEEMED):
            data = {"campaign": rng.choice(["c1", "c2"]), "code": f"X{i}"}
        event = Event(kind, f"{kind.value}:m{i}", group, user, at(day, rng.randrange(24)), data)
        out.append(event)
        if rng.random() < 0.15:  # emitted again: a retried turn, a replayed saga
            out.append(event)
    rng.shuffle(out)
    return out


async def raw_events(r: AsyncRedis) -> list[Event]:
    """Everything in the brand's raw streams."""
    got = []
    for key in events.stream_keys(BRAND):
        for _id, fields in await r.xrange(key):
            got.append(Event.from_fields(fields))
    return got


def recount(raw: list[Event], group: str = "") -> tuple[Counter[str], set[str]]:
    """The counters and active members, counted the plain way from the raw events."""
    unique = {e.eid: e for e in raw if not group or e.group == group}
    c: Counter[str] = Counter()
    active: set[str] = set()
    for e in unique.values():
        c[e.kind.value] += 1
        if e.kind is Kind.CHECKIN:
            c["points_earned"] += int(e.data["points"])
        if e.kind in (Kind.DRAW, Kind.SHOP):
            c["points_spent"] += int(e.data["cost"])
        if e.kind is Kind.TURN and e.data["fallback"]:
            c["fallbacks"] += 1
        if e.kind is Kind.DRAW and e.data["prize"]:
            c["prizes"] += 1
        if e.kind in metrics.ACTIVE_KINDS:
            active.add(e.user)
    return c, active


async def drain(r: AsyncRedis, aggregator: Aggregator) -> None:
    """Run the aggregator until every event is acknowledged."""
    task = asyncio.create_task(aggregator.run())
    try:
        for _ in range(400):
            pending = 0
            for key in events.stream_keys(BRAND):
                groups = await r.xinfo_groups(key) if await r.exists(key) else []
                for g in groups:
                    if text_of(g["name"]) == AGGREGATORS:
                        pending += int(g["pending"]) + int(g.get("lag") or 0)
                if not groups and await r.exists(key):
                    pending += 1
            if pending == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the aggregator did not catch up")
    finally:
        aggregator.stop()
        await asyncio.wait_for(task, 10)


async def test_counters_match_a_recount_of_the_raw_stream_whatever_was_emitted_twice(
    redis_client: AsyncRedis,
) -> None:
    sent = random_events(random.Random(11), 600)
    for event in sent:
        assert await events.emit(redis_client, BRAND, event)
    await drain(redis_client, Aggregator(redis_client, BRAND, consumer="a1", read_count=64))

    raw = await raw_events(redis_client)
    assert len(raw) == len(sent)  # acknowledged, not deleted: the raw record stays
    last = DAY0 + timedelta(days=13)
    for group in ("", "g1", "g2"):
        expected, members = recount(raw, group)
        got = await metrics.range_stats(redis_client, BRAND, DAY0, last, group)
        for kind, name in [(Kind.TURN, "turns"), (Kind.CHECKIN, "checkins"),
                           (Kind.CLAIM, "claims"), (Kind.REDEEMED, "redeemed"),
                           (Kind.DRAW, "draws"), (Kind.HANDOFF_OPENED, "handoffs_opened"),
                           (Kind.JOINED, "joins"), (Kind.LEFT, "leaves")]:
            assert got.total[name] == expected[kind.value], (group, name)
        for name in ("points_earned", "points_spent", "fallbacks", "prizes"):
            assert got.total[name] == expected[name], (group, name)
        assert abs(got.active - len(members)) <= 1  # HyperLogLog: exact at this size, ±1
        assert sum(d.get("turns") for d in got.days) == got.total["turns"]
        assert sum(n for _k, n in got.distribution("i:")) == got.total["turns"]
    # and every turn the bot fell back on is in the operators' inbox, once
    fell_back = {e.eid for e in raw if e.kind is Kind.TURN and e.data["fallback"]}
    filed = [i.eid for i in await inbox.recent(redis_client, BRAND, 0, 4_000_000_000)]
    assert fell_back <= set(filed) and len(filed) == len(set(filed))


async def test_a_batch_counted_twice_before_its_acknowledgement_counts_once(
    redis_client: AsyncRedis,
) -> None:
    batch = [Event(Kind.CHECKIN, f"checkin:m{i}", "g1", f"u{i}", at(DAY0),
                   {"streak": 3, "points": 10}) for i in range(5)]
    assert await metrics.record(redis_client, BRAND, batch) == 5
    assert await metrics.record(redis_client, BRAND, batch) == 0  # the crash's redelivery
    day = await metrics.range_stats(redis_client, BRAND, DAY0, DAY0, "g1")
    assert day.total["checkins"] == 5 and day.total["points_earned"] == 50
    assert day.distribution("s:") == [("2-3", 5)]
    assert day.active == 5 and day.checkin_rate() == 1.0


async def test_every_counter_is_kept_for_more_than_400_days(redis_client: AsyncRedis) -> None:
    event = Event(Kind.TURN, "turn:m1", "g1", "u1", at(DAY0),
                  {"intent": "faq", "confidence": 0.9, "fallback": False})
    await metrics.record(redis_client, BRAND, [event])
    keys = metrics.MetricKeys(BRAND)
    for key in (keys.brand_counts(DAY0), keys.group_counts(DAY0, "g1"), keys.health(DAY0),
                keys.active(DAY0), keys.active(DAY0, "g1"), keys.group_active(DAY0)):
        assert await redis_client.ttl(key) > 400 * 86400, key


async def test_an_unreadable_entry_is_dead_lettered_and_the_rest_still_counted(
    redis_client: AsyncRedis,
) -> None:
    good = Event(Kind.JOINED, "joined:m1", "g1", "u1", at(DAY0))
    await events.emit(redis_client, BRAND, good)
    key = events.stream_key(BRAND, events.shard_of(good))
    await redis_client.xadd(key, {"k": "no-such-kind", "eid": "x", "at": "1"})
    await drain(redis_client, Aggregator(redis_client, BRAND, consumer="a1"))
    assert len(await redis_client.xrange(f"{key}:dead")) == 1
    stats = await metrics.range_stats(redis_client, BRAND, DAY0, DAY0, "g1")
    assert stats.total["joins"] == 1


async def test_a_falling_check_in_rate_shows_in_the_group_health(redis_client: AsyncRedis) -> None:
    """g1's members stopped checking in this week; g2 kept going."""
    batch = []
    for offset in range(14):
        day = DAY0 + timedelta(days=offset)
        for group in ("g1", "g2"):
            for u in range(10):
                user = f"{group}-u{u}"
                batch.append(Event(Kind.TURN, f"t:{group}:{u}:{offset}", group, user, at(day),
                                   {"intent": "checkin", "confidence": 0.9}))
                if group == "g2" or offset < 7 or u < 2:
                    batch.append(Event(Kind.CHECKIN, f"c:{group}:{u}:{offset}", group, user,
                                       at(day), {"streak": 1, "points": 5}))
    await metrics.record(redis_client, BRAND, batch)
    health = {h.group: h for h in await metrics.group_health(
        redis_client, BRAND, DAY0 + timedelta(days=13), 7)}
    assert health["g2"].checkin_rate == 1.0 and health["g2"].checkin_trend == 0.0
    assert health["g1"].checkin_rate == pytest.approx(0.2)
    assert health["g1"].checkin_trend == pytest.approx(-0.8)
    assert health["g1"].active == 10


async def test_a_copy_emitted_again_after_midnight_is_not_counted_on_the_new_day(
    redis_client: AsyncRedis,
) -> None:
    """A check-in at 23:59 whose retry is stamped 00:01: one check-in, on the first day."""
    late = at(DAY0, 23) + 59 * 60
    first = Event(Kind.CHECKIN, "checkin:m-late", "g1", "u1", late, {"streak": 2, "points": 5})
    again = Event(Kind.CHECKIN, "checkin:m-late", "g1", "u1", late + 120,
                  {"streak": 2, "points": 5})
    assert await metrics.record(redis_client, BRAND, [first]) == 1
    assert await metrics.record(redis_client, BRAND, [again]) == 0
    both = await metrics.range_stats(redis_client, BRAND, DAY0, DAY0 + timedelta(days=1))
    assert both.total["checkins"] == 1 and both.days[0].get("checkins") == 1
    # and the other way round: the later copy counted first keeps the earlier one out
    early = Event(Kind.CHECKIN, "checkin:m-early", "g1", "u2", at(DAY0 + timedelta(days=2), 0)
                  + 30, {"streak": 1, "points": 5})
    before = Event(Kind.CHECKIN, "checkin:m-early", "g1", "u2", early.at - 90,
                   {"streak": 1, "points": 5})
    assert await metrics.record(redis_client, BRAND, [early]) == 1
    assert await metrics.record(redis_client, BRAND, [before]) == 0


def test_check_ins_within_one_second_rank_in_their_order_longer_streaks_first() -> None:
    noon = datetime(2026, 12, 7, 12, 0, 0, tzinfo=metrics.TZ).timestamp()

    def rank(user: str, at: float, streak: int) -> int:
        return metrics.checkin_rank(Event(Kind.CHECKIN, f"c{user}", "g1", user, at,
                                          {"streak": streak, "points": 5}))
    first, second, third = rank("zed", noon + 0.1, 1), rank("amy", noon + 0.4, 1), rank(
        "mia", noon + 0.9, 1)
    assert first > second > third  # by time, whatever their ids
    assert rank("late", noon + 3600, 2) > first  # a longer streak first, however late
    assert rank("x", 86_399.999 + datetime(2026, 12, 7, tzinfo=metrics.TZ).timestamp(), 1) > 0
