"""Drain the outbox to group robots: ≤ 20 posts per robot in any 60 s, retried, never lost.

Posts are read through the one StreamConsumer, held in one lane per group, and acknowledged
only after WeCom answers errcode 0 or a permanent error (then dead-lettered). A sender that
dies leaves its posts pending; any sender reclaims them by idle time. The limiter lives
in Redis so every sender process shares each robot's budget. When a group's backlog
cannot drain within a minute, its text posts are merged into digests (≤ 4096 bytes).
Each post acknowledged as sent or digested is recorded as an analytics event (POST_SENT).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.common.clock import Clock
from bot.common.coalesce import Coalescer
from bot.common.groups import Directory, Robot
from bot.common.posts import Post
from bot.common.store import (
    DEAD,
    DEAD_MAXLEN,
    OUTBOX,
    OUTBOX_METRICS,
    SENDERS,
    BridgeStore,
    post_key,
)
from bot.common.streams import Entry
from bot.common.texts import Texts
from bot.outbound import digest
from bot.outbound.limiter import RobotLimiter
from bot.wecom.webhook import Outcome, PayloadError, WebhookClient
from qunzhu.events import Event, Kind
from qunzhu.redisconn import REDIS_DOWN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderConfig:
    """Limits and timings; the defaults are WeCom's documented numbers plus safety margins."""

    limit: int = 20  # posts per robot per window (WeCom: 20/min)
    window_s: float = 61.0  # 60 s plus a margin for network latency between us and WeCom
    rate_limited_backoff_s: float = 61.0  # 45009: wait at least 60 s
    max_transient_attempts: int = 8  # -1, timeouts, resets: then dead-letter
    transient_backoff_s: float = 2.0  # doubled per attempt, capped at 60 s
    concurrency: int = 64  # posts in flight per process
    read_count: int = 500
    max_held: int = 50_000  # pause reading when this many posts wait in lanes
    reclaim_idle_ms: int = 60_000  # a pending post idle this long belongs to a dead sender
    heartbeat_s: float = 15.0  # re-claim held posts so live senders are never robbed
    digest: bool = True


@dataclass
class Lane:
    """The posts waiting for one group, oldest first."""

    entries: deque[Entry] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Sender:
    """One sender process's share of the outbox."""

    def __init__(
        self,
        store: BridgeStore,
        client: WebhookClient,
        directory: Callable[[], Directory],
        texts: Texts,
        clock: Clock,
        *,
        consumer: str,
        config: SenderConfig | None = None,
        brand: str = "",
    ) -> None:
        """`brand` names the analytics streams; "" records no events (tests, tools)."""
        self._store = store
        self._brand = brand
        self._client = client
        self._directory = directory
        self._texts = texts
        self._clock = clock
        self.config = config or SenderConfig()
        self._outbox = store.consumer(
            OUTBOX, SENDERS, consumer,
            reclaim_idle_ms=self.config.reclaim_idle_ms, read_count=self.config.read_count,
            heartbeat_s=self.config.heartbeat_s, dead_stream=DEAD, dead_maxlen=DEAD_MAXLEN,
        )
        self._lanes: dict[str, Lane] = {}
        self._sem = asyncio.Semaphore(self.config.concurrency)
        self._limiter = RobotLimiter(store, clock, limit=self.config.limit,
                                     window_s=self.config.window_s,
                                     rate_limited_backoff_s=self.config.rate_limited_backoff_s)
        self._acks: Coalescer[tuple[list[Entry], str], None] = Coalescer(self._ack_rounds)
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------ the loops
    async def run(self) -> None:
        """Own pending posts first (a restart), dead senders' by idle time, then new ones."""
        try:
            await self._outbox.run(self._take, self._stopping,
                                   paused=lambda: len(self._outbox.held) >= self.config.max_held)
        finally:
            for lane in list(self._lanes.values()):
                if lane.task is not None:
                    lane.task.cancel()

    def stop(self) -> None:
        """Ask run() to return; unacknowledged posts stay pending for whoever comes next."""
        self._stopping.set()

    async def _take(self, new: list[Entry]) -> None:
        """Put posts (now held by the consumer) into their group's lane, and drain it."""
        for entry in new:
            group = entry.fields.get("group", "")
            lane = self._lanes.setdefault(group, Lane())
            if any(queued.id == entry.id for queued in lane.entries):
                # Taken back after another sender had it (it died): the copy still queued
                # here is the same post, and two copies would go out twice (in one digest).
                continue
            lane.entries.append(entry)
            if lane.task is None or lane.task.done():
                lane.task = asyncio.create_task(self._drain(group))

    # ------------------------------------------------------------------ one lane
    async def _drain(self, group: str) -> None:
        lane = self._lanes[group]
        robot = self._directory().robot(group)
        try:
            while lane.entries and not self._stopping.is_set():
                # A work permit bounds the Redis and HTTP calls in flight, however many
                # lanes (groups) are active: 30,000 groups must not mean 30,000 callers.
                async with self._sem:
                    await self._step(robot, lane)
        except REDIS_DOWN as exc:
            # Posts stay pending in Redis; drop our hold so a reclaim can retry them.
            log.warning("lane %s paused: Redis %s", group, type(exc).__name__)
            self._outbox.release(*(entry.id for entry in lane.entries))
            lane.entries.clear()
        except Exception:  # a bug or an odd answer must not strand the lane's posts
            log.exception("lane %s stopped; its posts will be retried", group)
            self._outbox.release(*(entry.id for entry in lane.entries))
            lane.entries.clear()
        finally:
            if not lane.entries:
                self._lanes.pop(group, None)

    async def _step(self, robot: Robot | None, lane: Lane) -> None:
        """Deliver (or dead-letter, or digest) the lane's oldest post."""
        if robot is None:
            entry = lane.entries.popleft()
            await self._dead(entry, 93000, "no robot webhook key for this group")
            return
        if self.config.digest and len(lane.entries) > self.config.limit:
            await self._send_digests(robot, lane)
            return
        await self._deliver(robot, lane.entries[0])
        lane.entries.popleft()

    async def _deliver(self, robot: Robot, entry: Entry) -> None:
        """Send every part of one post, resuming after the parts already delivered."""
        if not await self._outbox.still_mine(entry.id):  # another sender took it over
            self._outbox.release(entry.id)
            return
        post = Post.from_fields(entry.fields)
        try:
            parts = post.payloads()
        except (PayloadError, ValueError, KeyError) as exc:
            await self._dead(entry, 40008, f"payload refused: {exc}")
            return
        post_id = entry.fields.get("id", "")
        done = 0
        if len(parts) > 1:  # a long text: resume after the parts a dead sender delivered
            done = int((await self._store.status(post_id)).get("parts_sent", "0") or 0)
        for index in range(done, len(parts)):
            if not await self._send_part(robot, [entry], parts[index]):
                return
            if len(parts) > 1:
                await self._store.record_parts_sent(post_id, index + 1)
        await self._ack([entry], state="sent")

    async def _send_part(self, robot: Robot, carried: list[Entry],
                         payload: dict[str, object]) -> bool:
        """One webhook call under the limiter for the posts it carries; False when it was not
        sent (dead-lettered, or another sender took a post over while this one waited)."""
        entry = carried[0]
        attempts = 0
        while True:
            await self._wait_for_slot(robot)
            if len(carried) == 1 and await self._lost_while_waiting(entry):
                return False
            result = await self._client.send(robot.key, payload)
            if result.outcome is Outcome.OK:
                return True  # counted as posts_sent when acknowledged
            if result.outcome is Outcome.RATE_LIMITED:
                await self._store.incr("webhook_45009")
                await self._limiter.rate_limited(robot.robot_id)
                log.warning("robot %s rate limited by WeCom; backing off", robot.robot_id)
                continue
            if result.outcome is Outcome.TRANSIENT:
                attempts += 1
                await self._store.incr("webhook_transient")
                if attempts >= self.config.max_transient_attempts:
                    await self._dead(entry, result.errcode, f"gave up: {result.errmsg}")
                    return False
                await self._idle(min(60.0, self.config.transient_backoff_s * 2 ** (attempts - 1)))
                continue
            await self._dead(entry, result.errcode, result.errmsg or "permanent error")
            return False

    async def _lost_while_waiting(self, entry: Entry) -> bool:
        """Checked after the wait for a slot, just before the call: the wait can outlast an
        outage in which another sender took the post over (our heartbeat could not reach
        Redis); then it is theirs and this sender lets go. Digests are checked when packed."""
        if await self._outbox.still_mine(entry.id):
            return False
        self._outbox.release(entry.id)
        return True

    async def _wait_for_slot(self, robot: Robot) -> None:
        """Take a slot in the robot's sliding window, idling until one frees."""
        await self._limiter.wait_for_slot(robot.robot_id, self._idle)

    async def _idle(self, seconds: float) -> None:
        """Sleep without holding a work permit, so waiting lanes never starve working ones."""
        self._sem.release()
        try:
            await self._clock.sleep(seconds)
        finally:
            # Shielded: cancelled here, the permit is still taken back before the caller's
            # `async with` gives it up, so the count never grows.
            await asyncio.shield(self._sem.acquire())

    # ------------------------------------------------------------------ digests
    async def _send_digests(self, robot: Robot, lane: Lane) -> None:
        """Merge the lane's text posts into digests of ≤ 4096 bytes and send them."""
        candidates = digest.mergeable(list(lane.entries))
        if len(candidates) < 2:  # nothing to merge: send the oldest post as it is
            await self._deliver(robot, lane.entries[0])
            lane.entries.popleft()
            return
        wording = self._texts.wording("utter_bridge_digest_title")
        batch, content = digest.pack(candidates, lambda n: wording(count=n))
        taken = [e for e in batch if not await self._outbox.still_mine(e.id)]
        if taken:  # another sender took these over: theirs to send; pack again next step
            for entry in taken:
                lane.entries.remove(entry)
                self._outbox.release(entry.id)
            return
        for entry in batch:
            lane.entries.remove(entry)
        ok = await self._send_part(robot, batch, {"msgtype": "markdown",
                                                  "markdown": {"content": content}})
        if ok:
            await self._store.incr("digests")
            await self._ack(batch, state="digested")
        else:  # the first post was dead-lettered with the digest's error: the rest too
            for entry in batch[1:]:
                await self._dead(entry, 0, "digest refused")

    # ------------------------------------------------------------------ outcomes
    async def _ack(self, batch: list[Entry], *, state: str) -> None:
        """Acknowledge delivered posts; concurrent lanes share one round trip.

        WeCom has them already, so a failed acknowledgement is retried while we still hold
        them (the heartbeat keeps them ours) rather than let go to be sent again.
        """
        pause = 1.0
        while True:
            try:
                await self._acks.submit((batch, state))
                break
            except REDIS_DOWN:
                if self._stopping.is_set():
                    raise
                await self._idle(pause)
                pause = min(pause * 2, 30.0)
        self._outbox.release(*(entry.id for entry in batch))
        await asyncio.gather(*(self._record_sent(entry) for entry in batch))

    async def _record_sent(self, entry: Entry) -> None:
        """One POST_SENT per post, named by its id: a post sent again is still counted once.

        `source` is the campaign that queued it (empty for replies, welcomes, announcements).
        """
        if not self._brand:
            return
        post_id = entry.fields.get("id", "")
        await self._store.emit(self._brand,
                   Event(Kind.POST_SENT, f"post_sent:{post_id or entry.id}",
                         entry.fields.get("group", ""), "", self._clock.now(),
                         {"post": post_id, "source": entry.fields.get("source", "")}))

    async def _ack_rounds(self, rounds: list[tuple[list[Entry], str]]) -> list[None]:
        items = [(entry.id, entry.fields.get("id", ""), state)
                 for batch, state in rounds for entry in batch]
        await self._store.ack_posts(items, self._clock.now())  # an error pauses each lane
        return [None] * len(rounds)

    async def _dead(self, entry: Entry, errcode: int, reason: str) -> None:
        """Dead-letter a post (kept with its reason), count it, and acknowledge it."""
        log.error("post %s to %s dead-lettered: errcode %s",
                  entry.fields.get("id"), entry.fields.get("group"), errcode)
        await self._outbox.dead_letter(
            entry, {"errcode": str(errcode), "reason": reason[:200]},
            status=(post_key(entry.fields.get("id", "")),
                    {"state": "dead", "errcode": str(errcode)}),
            counter=(OUTBOX_METRICS, "posts_dead"))
