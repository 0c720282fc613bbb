"""The campaign scheduler: every occurrence posted exactly once, from any number of bridges.

Each bridge process with the `campaigns` role runs a Scheduler; one at a time leads (a
lease in Redis, renewed every tick, taken over when it lapses) and works through time in
windows from a cursor kept in Redis:

1. the occurrences due in (cursor, window end] (`occurrences.due_between`) are each
   rendered for their group, decided by the budget and queued in the outbox;
2. only when every one of them has an outcome does the cursor move past the window.

Deciding (the budget's script records the occurrence) and queueing (the outbox's script,
idempotent on the occurrence id) are two idempotent scripts — they live on different slots
of a cluster — so a leader killed between them, or anywhere in a window, leaves the
cursor behind; the next leader does the window again and every step answers as before:
nothing lost, nothing doubled, even when two processes briefly both think they lead.

A post the budget holds back is deferred (a sorted set by time) if still timely, else
dropped; an occurrence missed by more than its grace window (the bridge was down) is
skipped. Every outcome is recorded with its reason (`qunzhu.campaign_status.StatusBook`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.campaigns.occurrences import Occurrence, SpreadCache, due_between
from bot.campaigns.render import LiveData, Rendered, Skipped
from bot.common.budget import Budget, Kind, Verdict, plan
from bot.common.clock import Clock
from bot.common.groups import Directory
from bot.common.posts import Post
from qunzhu.campaign_status import State, StatusBook
from qunzhu.campaigns import Campaign, CampaignsFile, Limits, jitter
from qunzhu.config import SHANGHAI
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, script_arg, text_of

log = logging.getLogger(__name__)

EnqueueFn = Callable[[Post, str], Awaitable[str]]  # (post, idempotency key) → post id
WINDOW_S = 60  # the most one step moves the cursor (catching up goes window by window)
LOOKBACK = timedelta(hours=24)  # after a longer outage, older occurrences are not listed
LEASE_MS = 15_000
CONCURRENCY = 64
DEFERRED_BATCH = 500

# KEYS[1] lease  ARGV[1] {owner, ms}: take the lease if free or ours; 1 if we hold it now
LEASE = """
local a = cjson.decode(ARGV[1])
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= a.owner then return 0 end
redis.call('SET', KEYS[1], a.owner, 'PX', a.ms)
return 1
"""

# KEYS[1] lease  KEYS[2] cursor  ARGV[1] {owner, to (ms)}
# the cursor moves forward only, and only for the lease's holder; returns the cursor
ADVANCE = """
local a = cjson.decode(ARGV[1])
local cursor = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('GET', KEYS[1]) ~= a.owner then return cursor end
if a.to > cursor then
  redis.call('SET', KEYS[2], string.format('%d', a.to))
  return a.to
end
return cursor
"""


def scheduler_keys(brand: str) -> tuple[str, str, str]:
    """The lease, the cursor (ms) and the deferred posts (one slot: the brand's scheduler)."""
    tag = f"qz:{{{brand}:sched}}:"
    return tag + "lease", tag + "cursor", tag + "deferred"


@dataclass
class Tally:
    """What this process did (for logs, tests and the benchmark)."""

    sent: int = 0
    deferred: int = 0
    dropped: int = 0
    skipped: int = 0
    windows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, state: str, reason: str) -> None:
        """Count one outcome."""
        setattr(self, state, getattr(self, state) + 1)
        self.reasons[f"{state}:{reason}"] = self.reasons.get(f"{state}:{reason}", 0) + 1


class Scheduler:
    """Turns the campaigns file into queued posts, leading or standing by."""

    def __init__(self, client: AsyncRedis, brand: str, campaigns: Callable[[], CampaignsFile],
                 groups: Callable[[], Directory], live: LiveData, enqueue: EnqueueFn,
                 clock: Clock, *, owner: str = "", tick_s: float = 1.0,
                 concurrency: int = CONCURRENCY, lease_ms: int = LEASE_MS) -> None:
        self._r = client
        self._campaigns = campaigns
        self._groups = groups
        self._live = live
        self._enqueue = enqueue
        self._clock = clock
        self.owner = owner or f"sched-{secrets.token_hex(4)}"
        self._tick_s = tick_s
        self._lease_ms = lease_ms
        self._limit = asyncio.Semaphore(concurrency)
        self._budget = Budget(client)
        self.status = StatusBook(client, brand)
        self._lease_key, self._cursor_key, self._deferred_key = scheduler_keys(brand)
        self._lease = client.register_script(LEASE)
        self._advance = client.register_script(ADVANCE)
        self._stopping = asyncio.Event()
        self.tally = Tally()
        self._spreads: SpreadCache = {}

    # ------------------------------------------------------------------ the loop
    def stop(self) -> None:
        """Finish the current step and return from run()."""
        self._stopping.set()

    async def run(self) -> None:
        """Tick until stopped; Redis trouble pauses, a bug is logged and the loop goes on."""
        while not self._stopping.is_set():
            try:
                await self.tick()
            except REDIS_DOWN as exc:
                log.warning("campaigns paused: Redis %s", type(exc).__name__)
            except Exception:  # the groups' rhythm must survive a bug in one step
                log.exception("campaign step failed; trying again")
            await self._clock.sleep(self._tick_s)

    def now(self) -> datetime:
        """The clock's time, in Shanghai."""
        return datetime.fromtimestamp(self._clock.now(), tz=SHANGHAI)

    async def tick(self) -> bool:
        """One step: lead or stand by; when leading, catch up to now. True when it led."""
        if not await self._hold_lease():
            return False
        now = self.now()
        cursor = await self._cursor(now)
        while cursor < now and not self._stopping.is_set():
            until = min(now, cursor + timedelta(seconds=WINDOW_S))
            await self._window(cursor, until, now)
            moved = int(await self._advance(
                keys=[self._lease_key, self._cursor_key],
                args=[script_arg({"owner": self.owner, "to": _ms(until)})]))
            if moved < _ms(until):  # the lease went to another process: let it lead
                return False
            cursor = until
            self.tally.windows += 1
            if not await self._hold_lease():
                return False
        await self._deferred(now)
        return True

    async def _hold_lease(self) -> bool:
        return bool(int(await self._lease(keys=[self._lease_key],
                                          args=[script_arg({"owner": self.owner,
                                                            "ms": self._lease_ms})])))

    async def _cursor(self, now: datetime) -> datetime:
        """Where the last leader stopped (the first leader ever starts now)."""
        raw = await self._r.get(self._cursor_key)
        if raw is None:
            await self._r.set(self._cursor_key, str(_ms(now)), nx=True)
            raw = await self._r.get(self._cursor_key)
        cursor = datetime.fromtimestamp(int(text_of(raw)) / 1000, tz=SHANGHAI)
        if now - cursor > LOOKBACK:
            log.warning("campaigns were stopped for %s; occurrences before %s are not listed",
                        now - cursor, now - LOOKBACK)
            cursor = now - LOOKBACK
        return cursor

    # ------------------------------------------------------------------ a window
    async def _window(self, after: datetime, until: datetime, now: datetime) -> None:
        """Give every occurrence due in (after, until] its outcome (raises: do it again)."""
        campaigns = self._campaigns()
        due = due_between(campaigns, self._groups().tags(), after, until, self._spreads)
        await asyncio.gather(*(self._guarded(o, now, deferred=False) for o in due))

    async def _deferred(self, now: datetime) -> None:
        """The held-back posts whose time has come."""
        raw = await self._r.zrangebyscore(self._deferred_key, "-inf", _ms(now), start=0,
                                          num=DEFERRED_BATCH)
        members = [text_of(m) for m in raw]
        await asyncio.gather(*(self._retry(m, now) for m in members))

    async def _retry(self, member: str, now: datetime) -> None:
        try:
            occurrence = _from_json(member)
        except (ValueError, KeyError, TypeError):
            log.error("a deferred campaign post is unreadable; dropped")
            await self._r.zrem(self._deferred_key, member)
            return
        if await self._guarded(occurrence, now, deferred=True) != "deferred":
            await self._r.zrem(self._deferred_key, member)  # deferred again: its new time stays

    async def _guarded(self, occurrence: Occurrence, now: datetime, *, deferred: bool) -> State:
        """One occurrence; a bug in it is recorded against it, never blocks the others
        (Redis trouble still raises: the window is done again)."""
        async with self._limit:
            try:
                return await self._one(occurrence, now, deferred=deferred)
            except REDIS_DOWN:
                raise
            except Exception:
                log.exception("campaign %s → %s failed", occurrence.campaign,
                              occurrence.chatid)
                return await self._outcome(occurrence, "skipped", "error", now)

    async def _one(self, occurrence: Occurrence, now: datetime, *, deferred: bool) -> State:
        """Render, decide, queue — or defer, drop or skip; each outcome recorded."""
        campaigns = self._campaigns()
        campaign = next((c for c in campaigns.campaigns if c.id == occurrence.campaign), None)
        robot = self._groups().robot(occurrence.chatid)
        if campaign is None or not campaign.enabled:
            return await self._outcome(occurrence, "skipped", "campaign_off", now)
        if robot is None:
            return await self._outcome(occurrence, "skipped", "no_group", now)
        limits = campaigns.limits(occurrence.chatid, list(robot.tags))
        late = (now > occurrence.deadline if deferred
                else occurrence.missed(now, timedelta(minutes=campaign.grace_minutes)))
        kind: Kind = "promotional" if campaign.promotional else "service"
        if late:  # only one let through before (then a crash) still goes
            verdict = await self._budget.decide(occurrence.chatid, occurrence.id, kind, now,
                                                limits, late=True)
            if not verdict.sent:
                return await self._outcome(occurrence, "dropped" if deferred else "skipped",
                                           "late", now)
            rendered = await self._live.render(campaign, occurrence.chatid, now)
        else:
            rendered = await self._live.render(campaign, occurrence.chatid, now)
            if isinstance(rendered, Skipped):
                return await self._outcome(occurrence, "skipped", rendered.reason, now)
            verdict = await self._budget.decide(occurrence.chatid, occurrence.id, kind, now,
                                                limits)
        if verdict.sent:
            return await self._send(campaign, occurrence, rendered, now)
        return await self._hold(occurrence, verdict, now, limits)

    async def _send(self, campaign: Campaign, occurrence: Occurrence,
                    rendered: Rendered | Skipped, now: datetime) -> State:
        if isinstance(rendered, Skipped):  # let through before a crash; its data went since
            return await self._outcome(occurrence, "skipped", rendered.reason, now)
        post = Post(occurrence.chatid, "text", rendered.text, rendered.mention,
                    source=campaign.id)
        post_id = await self._enqueue(post, f"campaign:{occurrence.id}")
        reason = f"fallback:{rendered.instead_of}" if rendered.instead_of else "ok"
        return await self._outcome(occurrence, "sent", reason, now, post=post_id)

    async def _hold(self, occurrence: Occurrence, verdict: Verdict, now: datetime,
                    limits: Limits) -> State:
        decision = plan(verdict, now, occurrence.deadline, limits)
        if decision.action == "drop" or decision.at is None:
            return await self._outcome(occurrence, "dropped", decision.reason, now)
        # Held-back posts keep their spread: 30,000 deferrals to 08:00 must not all go at
        # 08:00:00 (the jitter's size, forward only, from the occurrence's own hash).
        at = decision.at + abs(jitter(occurrence.id, self._jitter_of(occurrence)))
        if at > occurrence.deadline:
            at = decision.at
        await self._r.zadd(self._deferred_key, {_to_json(occurrence): _ms(at)})
        return await self._outcome(occurrence, "deferred", decision.reason, now, retry=at)

    def _jitter_of(self, occurrence: Occurrence) -> int:
        campaign = next((c for c in self._campaigns().campaigns
                         if c.id == occurrence.campaign), None)
        return campaign.jitter_minutes if campaign else 0

    async def _outcome(self, occurrence: Occurrence, state: State, reason: str, now: datetime,
                       *, post: str = "", retry: datetime | None = None) -> State:
        moved = await self.status.record(occurrence.campaign, occurrence.chatid,
                                         occurrence.scheduled, state, reason, now, post=post,
                                         due=occurrence.due, retry=retry)
        if moved:
            self.tally.add(state, reason)
            if state != "sent":
                log.info("campaign %s → %s: %s (%s)", occurrence.campaign,
                         occurrence.chatid, state, reason)
        return state


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _to_json(occurrence: Occurrence) -> str:
    return json.dumps({"c": occurrence.campaign, "g": occurrence.chatid,
                       "s": occurrence.scheduled.isoformat(), "d": occurrence.due.isoformat(),
                       "e": occurrence.deadline.isoformat(), "p": occurrence.promotional},
                      ensure_ascii=False, sort_keys=True)


def _from_json(text: str) -> Occurrence:
    doc = json.loads(text)
    return Occurrence(doc["c"], doc["g"], datetime.fromisoformat(doc["s"]),
                      datetime.fromisoformat(doc["d"]), datetime.fromisoformat(doc["e"]),
                      bool(doc["p"]))


__all__ = ["Scheduler", "Tally", "scheduler_keys"]
