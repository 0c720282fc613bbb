"""The console's numbers: events folded into per-day counters, read back over date ranges.

Layout (one brand; days are Asia/Shanghai calendar days):

- `qz:{<brand>:d:<day>}:b` / `:g:<group>` — hashes of counters for the brand and for each group
  on that day (`turns`, `checkins`, …, plus distributions as prefixed fields: `i:<intent>`,
  `s:<streak bucket>`, `p:<prize>`, `c:<campaign>` claims, `r:<campaign>` redemptions,
  `h:checkins:<HH>` and `h:claims:<HH>` by local hour, for what followed a campaign post);
- `qz:{<brand>:d:<day>}:gsum` — every group's health counters of the day in one hash
  (`<group>|checkins` …), so the group list reads two hashes a day, not two per group;
- `qz:{<brand>:d:<day>}:seen` — event ids already counted (kept 3 days): one event, once;
- `qz:{<brand>:d:<day>}:top:<group>` — the day's check-ins in a group, ranked by streak (ties:
  who checked in first), for "yesterday's top 3" in a campaign post;
- `qz:{<brand>:hll}:a:<day>[:<group>]` — HyperLogLogs of members active with the bot. They
  share one slot so a date range's distinct members is one PFCOUNT over many days;
  `qz:{<brand>:hll}:ga:<day>` counts each group's active members of the day as they come.

An event costs two scripts (its day's slot, the HLL slot) whatever the history's length, and
every key expires after RETAIN_DAYS. Reading a range costs one hash per day (and group).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis, batch, script_arg, text_of

TZ = ZoneInfo("Asia/Shanghai")
RETAIN_DAYS = 430  # ≥ 400 days, as operators compare this year with last year's season
SEEN_S = 3 * 86400  # an event re-emitted later than this is a new one
MIDNIGHT_MARGIN_S = 3600  # a retry comes within minutes; an hour either side is checked
DAY_MS = 86_400_000  # a check-in's rank: streak days first, then time of day (ms)
LOW_CONFIDENCE = 0.6  # a turn answered with less confidence than this needs a look

# Counter names the console shows, in its order.
COUNTERS = (
    "turns", "fallbacks", "low_confidence", "checkins", "claims", "redeemed", "draws", "prizes",
    "points_earned", "points_spent", "shop", "handoffs_opened", "handoffs_taken",
    "handoff_wait_s", "handoffs_closed", "posts_sent", "joins", "leaves", "optouts",
    "too_many",
)
STREAK_BUCKETS = ((1, "1"), (3, "2-3"), (7, "4-7"), (14, "8-14"), (30, "15-30"))
ACTIVE_KINDS = {Kind.TURN, Kind.CHECKIN, Kind.CLAIM, Kind.DRAW, Kind.SHOP, Kind.HANDOFF_OPENED}

# KEYS[1] seen  KEYS[2] brand hash  KEYS[3] group hash  KEYS[4] the groups' health hash
# KEYS[5] the group's check-in ranking of the day (all of the day's slot)
# ARGV[1] {eid, group, incr {field: n}, health {field: n}, ttl, seen_ttl, rank (0: none), user}
# 0 = counted before (nothing changes), 1 = counted now
APPLY = """
local a = cjson.decode(ARGV[1])
if redis.call('SADD', KEYS[1], a.eid) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], a.seen_ttl)
if a.rank > 0 and a.group ~= '' then
  redis.call('ZADD', KEYS[5], 'GT', a.rank, a.user)
  redis.call('EXPIRE', KEYS[5], a.ttl)
end
for f, n in pairs(a.incr) do
  redis.call('HINCRBY', KEYS[2], f, n)
  if a.group ~= '' then redis.call('HINCRBY', KEYS[3], f, n) end
end
redis.call('EXPIRE', KEYS[2], a.ttl)
if a.group ~= '' then
  for f, n in pairs(a.health) do redis.call('HINCRBY', KEYS[4], a.group .. '|' .. f, n) end
  redis.call('EXPIRE', KEYS[3], a.ttl)
  redis.call('EXPIRE', KEYS[4], a.ttl)
end
return 1
"""

# KEYS[1] the day's HLL  [KEYS[2] the group's HLL of the day  KEYS[3] the day's group counts]
# ARGV[1] {user, group, ttl}; adding a member twice changes nothing, so no dedupe is needed
ACTIVE = """
local a = cjson.decode(ARGV[1])
redis.call('PFADD', KEYS[1], a.user)
redis.call('EXPIRE', KEYS[1], a.ttl)
if KEYS[2] then
  if redis.call('PFADD', KEYS[2], a.user) == 1 then
    redis.call('HINCRBY', KEYS[3], a.group, 1)
    redis.call('EXPIRE', KEYS[3], a.ttl)
  end
  redis.call('EXPIRE', KEYS[2], a.ttl)
end
return 1
"""
HEALTH = ("turns", "fallbacks", "checkins", "handoffs_opened", "joins", "leaves", "too_many")


# KEYS: HLLs of one slot. PFCOUNT as a script, as redis-py's cluster batches refuse PFCOUNT.
COUNT_DISTINCT = "return redis.call('PFCOUNT', unpack(KEYS))"


def _pfcount(pipe: Any, keys: Sequence[str]) -> None:
    """Queue a distinct count of HLLs (one slot) in a batch."""
    pipe.eval(COUNT_DISTINCT, len(keys), *keys)


def day_of(at: float) -> date:
    """The brand's calendar day of a moment."""
    return datetime.fromtimestamp(at, TZ).date()


def today() -> date:
    """Today in the brand's time zone."""
    return datetime.now(TZ).date()


def days_between(first: date, last: date) -> list[date]:
    """Every day of an inclusive range."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass(frozen=True)
class MetricKeys:
    """Where one brand's counters live."""

    brand: str

    def day(self, day: date) -> str:
        return f"qz:{{{self.brand}:d:{day.isoformat()}}}"

    def brand_counts(self, day: date) -> str:
        return f"{self.day(day)}:b"

    def group_counts(self, day: date, group: str) -> str:
        return f"{self.day(day)}:g:{group}"

    def health(self, day: date) -> str:
        return f"{self.day(day)}:gsum"

    def group_active(self, day: date) -> str:
        return f"qz:{{{self.brand}:hll}}:ga:{day.isoformat()}"

    def seen(self, day: date) -> str:
        return f"{self.day(day)}:seen"

    def top(self, day: date, group: str) -> str:
        return f"{self.day(day)}:top:{group}"

    def active(self, day: date, group: str = "") -> str:
        base = f"qz:{{{self.brand}:hll}}:a:{day.isoformat()}"
        return f"{base}:{group}" if group else base


def hour_of(at: float) -> int:
    """The local hour of the day (0–23) a moment falls in."""
    return datetime.fromtimestamp(at, TZ).hour


def streak_bucket(streak: int) -> str:
    """Streak lengths grouped the way operators talk about them."""
    for upper, name in STREAK_BUCKETS:
        if streak <= upper:
            return name
    return "31+"


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def increments(event: Event) -> dict[str, int]:
    """What one event adds to its day's counters."""
    d = event.data
    match event.kind:
        case Kind.TURN:
            out = {"turns": 1, f"i:{d.get('intent') or '?'}": 1}
            if d.get("fallback"):
                out["fallbacks"] = 1
            elif float(d.get("confidence", 1.0) or 0.0) < LOW_CONFIDENCE:
                out["low_confidence"] = 1
            return out
        case Kind.CHECKIN:
            return {"checkins": 1, "points_earned": _int(d.get("points")),
                    f"s:{streak_bucket(_int(d.get('streak')) or 1)}": 1,
                    f"h:checkins:{hour_of(event.at):02d}": 1}
        case Kind.CLAIM:
            return {"claims": 1, f"c:{d.get('campaign', '')}": 1,
                    f"h:claims:{hour_of(event.at):02d}": 1}
        case Kind.REDEEMED:
            return {"redeemed": 1, f"r:{d.get('campaign', '')}": 1}
        case Kind.DRAW:
            prize = str(d.get("prize") or "")
            out = {"draws": 1, "points_spent": _int(d.get("cost")), f"p:{prize or '-'}": 1}
            if prize:
                out["prizes"] = 1
            return out
        case Kind.SHOP:
            return {"shop": 1, "points_spent": _int(d.get("cost"))}
        case Kind.HANDOFF_OPENED:
            return {"handoffs_opened": 1}
        case Kind.HANDOFF_TAKEN:
            return {"handoffs_taken": 1, "handoff_wait_s": _int(d.get("wait_s"))}
        case Kind.HANDOFF_CLOSED:
            return {"handoffs_closed": 1}
        case Kind.POST_SENT:
            return {"posts_sent": 1}
        case Kind.JOINED:
            return {"joins": 1}
        case Kind.LEFT:
            return {"leaves": 1}
        case Kind.OPTOUT:
            # the net number of members opted out, and how many asked to be (effects)
            return ({"optouts": 1, "optout_asks": 1} if d.get("on", True)
                    else {"optouts": -1})
        case Kind.TOO_MANY:
            return {"too_many": 1}  # once per member, group and day: the eid names all three
    return {}  # pragma: no cover - every kind is matched above


def checkin_rank(event: Event) -> int:
    """A check-in's place in its group's day: longer streaks first, then earlier (0: none)."""
    if event.kind is not Kind.CHECKIN or not event.user:
        return 0
    moment = datetime.fromtimestamp(event.at, TZ)
    # to the millisecond: members who check in within one second still rank in their order
    since_midnight_ms = ((moment.hour * 3600 + moment.minute * 60 + moment.second) * 1000
                         + moment.microsecond // 1000)
    return max(1, _int(event.data.get("streak"))) * DAY_MS + (DAY_MS - since_midnight_ms)


async def top_checkins(r: AsyncRedis, brand: str, day: date, group: str, n: int) -> list[str]:
    """The members with the longest streaks among those who checked in that day (ids)."""
    raw = await r.zrevrange(MetricKeys(brand).top(day, group), 0, n - 1)
    return [text_of(user) for user in raw]


async def group_day_counts(r: AsyncRedis, brand: str, day: date, group: str) -> Counter[str]:
    """One group's counters of one day."""
    return _counter(await r.hgetall(MetricKeys(brand).group_counts(day, group)))


def neighbour_day(at: float) -> date | None:
    """The day a copy of an event emitted near midnight may have been counted on instead.

    Emitters stamp an event when they emit it, so a retry across midnight lands on the
    other day's slot; its `seen` set is checked too (only for events this close to it).
    """
    moment = datetime.fromtimestamp(at, TZ)
    since_midnight = moment.hour * 3600 + moment.minute * 60 + moment.second
    if since_midnight < MIDNIGHT_MARGIN_S:
        return moment.date() - timedelta(days=1)
    if 86400 - since_midnight <= MIDNIGHT_MARGIN_S:
        return moment.date() + timedelta(days=1)
    return None


async def _counted_next_door(r: AsyncRedis, keys: MetricKeys,
                             events: Sequence[Event]) -> set[str]:
    """Ids of events near midnight that were already counted on the neighbouring day."""
    near = [(e, d) for e in events if (d := neighbour_day(e.at)) is not None]
    if not near:
        return set()
    pipe = batch(r)
    for event, day in near:
        pipe.sismember(keys.seen(day), event.eid)
    return {e.eid for (e, _d), hit in zip(near, await pipe.execute(), strict=True) if hit}


async def record(r: AsyncRedis, brand: str, events: Sequence[Event]) -> int:
    """Fold events into the counters in one round trip; how many were new."""
    keys = MetricKeys(brand)
    first: dict[str, Event] = {}
    for event in events:  # one copy per eid, the earliest: its day is the one counted
        if event.eid not in first or event.at < first[event.eid].at:
            first[event.eid] = event
    events = list(first.values())
    skip = await _counted_next_door(r, keys, events)
    pipe = batch(r)
    counted = []
    for event in events:
        if event.eid in skip:
            continue
        day = day_of(event.at)
        group = event.group
        incr = increments(event)
        args = {"eid": event.eid, "group": group, "incr": incr,
                "health": {f: n for f, n in incr.items() if f in HEALTH},
                "ttl": RETAIN_DAYS * 86400, "seen_ttl": SEEN_S,
                "rank": checkin_rank(event), "user": event.user}
        group_key = keys.group_counts(day, group) if group else keys.brand_counts(day)
        pipe.eval(APPLY, 5, keys.seen(day), keys.brand_counts(day), group_key,
                  keys.health(day), keys.top(day, group), script_arg(args))
        counted.append(True)
        if event.user and event.kind in ACTIVE_KINDS:
            hll = [keys.active(day)] + (
                [keys.active(day, group), keys.group_active(day)] if group else [])
            pipe.eval(ACTIVE, len(hll), *hll, script_arg(
                {"user": event.user, "group": group, "ttl": RETAIN_DAYS * 86400}))
            counted.append(False)
    replies = await pipe.execute()
    return sum(1 for is_apply, reply in zip(counted, replies, strict=True)
               if is_apply and int(reply) == 1)


# ---------------------------------------------------------------------- reading
@dataclass
class DayStats:
    """One day's counters (brand-wide or one group's) and its distinct active members."""

    day: date
    counts: Counter[str] = field(default_factory=Counter)
    active: int = 0

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)


@dataclass
class RangeStats:
    """A date range: the days, their sum and the distinct members active over all of it."""

    days: list[DayStats]
    total: Counter[str]
    active: int

    def rate(self, part: str, whole: str) -> float | None:
        """A share of two counters over the range (None when there is nothing to share)."""
        denominator = self.total.get(whole, 0)
        return None if denominator == 0 else self.total.get(part, 0) / denominator

    def checkin_rate(self) -> float | None:
        """Check-ins per member-day active with the bot."""
        member_days = sum(d.active for d in self.days)
        return None if member_days == 0 else self.total.get("checkins", 0) / member_days

    def distribution(self, prefix: str) -> list[tuple[str, int]]:
        """A distribution's buckets (e.g. "i:" intents), largest first."""
        items = [(k[len(prefix):], n) for k, n in self.total.items()
                 if k.startswith(prefix) and n]
        return sorted(items, key=lambda kv: (-kv[1], kv[0]))


def _counter(raw: dict[Any, Any]) -> Counter[str]:
    return Counter({text_of(k): int(v) for k, v in raw.items()})


async def range_stats(r: AsyncRedis, brand: str, first: date, last: date,
                      group: str = "") -> RangeStats:
    """A brand's (or a group's) counters for each day of a range, and their sum."""
    keys = MetricKeys(brand)
    days = days_between(first, last)
    pipe = batch(r)
    for day in days:
        pipe.hgetall(keys.group_counts(day, group) if group else keys.brand_counts(day))
        _pfcount(pipe, [keys.active(day, group)])
    replies = await pipe.execute()
    stats = [DayStats(day, _counter(replies[2 * i]), int(replies[2 * i + 1]))
             for i, day in enumerate(days)]
    total: Counter[str] = Counter()
    for s in stats:
        total.update(s.counts)
    active = int(await r.pfcount(*[keys.active(day, group) for day in days])) if days else 0
    return RangeStats(stats, total, active)


@dataclass(frozen=True)
class GroupHealth:
    """One group over two equal windows: now and the one before, to see what is falling."""

    group: str
    active: float  # members active with the bot per day, on average over the recent window
    turns: int
    checkins: int
    checkin_rate: float | None  # recent window
    checkin_rate_before: float | None  # the window before it
    fallback_rate: float | None
    handoffs: int
    joins: int
    leaves: int
    too_many: int = 0  # members who said the group gets too many posts (once a member-day)

    @property
    def checkin_trend(self) -> float | None:
        """Change in check-in rate (points of share); negative = falling."""
        if self.checkin_rate is None or self.checkin_rate_before is None:
            return None
        return self.checkin_rate - self.checkin_rate_before


async def group_health(r: AsyncRedis, brand: str, last: date, window_days: int,
                       groups: Iterable[str] = ()) -> list[GroupHealth]:
    """Every group's health over the last `window_days` against the window before it.

    Two hashes a day (the groups' counters, their active members), whatever the number of
    groups: a brand with thousands of groups gets its list in one round trip.
    """
    keys = MetricKeys(brand)
    days = days_between(last - timedelta(days=2 * window_days - 1), last)
    pipe = batch(r)
    for day in days:
        pipe.hgetall(keys.health(day))
        pipe.hgetall(keys.group_active(day))
    replies = await pipe.execute()
    counts: dict[str, list[Counter[str]]] = {}
    active: dict[str, list[int]] = {}
    for i in range(len(days)):
        for field_, n in replies[2 * i].items():
            group, _, name = text_of(field_).rpartition("|")
            counts.setdefault(group, [Counter() for _ in days])[i][name] += int(n)
        for group_, n in replies[2 * i + 1].items():
            active.setdefault(text_of(group_), [0] * len(days))[i] = int(n)
    out = []
    for group in sorted(set(groups) | set(counts) | set(active)):
        per_day = counts.get(group, [Counter() for _ in days])
        members = active.get(group, [0] * len(days))
        recent: Counter[str] = Counter()
        for c in per_day[window_days:]:
            recent.update(c)
        out.append(GroupHealth(
            group=group, active=sum(members[window_days:]) / window_days,
            turns=recent["turns"], checkins=recent["checkins"],
            checkin_rate=_rate(sum(c["checkins"] for c in per_day[window_days:]),
                               sum(members[window_days:])),
            checkin_rate_before=_rate(sum(c["checkins"] for c in per_day[:window_days]),
                                      sum(members[:window_days])),
            fallback_rate=None if not recent["turns"] else recent["fallbacks"] / recent["turns"],
            handoffs=recent["handoffs_opened"], joins=recent["joins"], leaves=recent["leaves"],
            too_many=recent["too_many"]))
    return out


def _rate(checkins: int, member_days: int) -> float | None:
    return None if member_days == 0 else checkins / member_days
