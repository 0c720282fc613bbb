"""One way to consume a Redis stream: a consumer group member that never strands an entry.

Every stream the bridge reads (the inbox of turns, the outbox of posts, the handoff
requests) and every one that comes later is read through `StreamConsumer`, so there is one
recovery rule, tested once for all:

- a consumer has a stable name (the same after a restart of the same role on the same
  host), so on start it first re-reads its own pending entries (cursor "0");
- entries a dead consumer read and never acknowledged are taken over by idle time
  (XAUTOCLAIM after `reclaim_idle_ms`), by whichever consumer looks first;
- the entries this process is working on (`held`) are re-claimed every heartbeat, so a
  slow turn or a post waiting for its rate-limit slot never looks idle and is never
  taken from a live consumer;
- an entry deleted while pending comes back empty from a reclaim and is just acknowledged;
- a consumer group Redis lost (restarted empty, stream deleted) is created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from bot.common.coalesce import Coalescer
from bot.common.outage import OutageLog
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, text_of

log = logging.getLogger(__name__)

Handle = Callable[[list["Entry"]], Awaitable[None]]

# Each script takes one JSON argument (ARGV[1]).

# KEYS[1] stream  ARGV[1] {group, delete (bool: XDEL too), ids [...]}
ACK = """
local a = cjson.decode(ARGV[1])
redis.call('XACK', KEYS[1], a.group, unpack(a.ids))
if a.delete then redis.call('XDEL', KEYS[1], unpack(a.ids)) end
return #a.ids
"""

# KEYS[1] stream  ARGV[1] {group, consumer, ids [...]}
# touches (XCLAIM, idle 0) each entry this consumer owns; returns the ids it does not own
KEEP = """
local a = cjson.decode(ARGV[1])
local lost = {}
for _, id in ipairs(a.ids) do
  local p = redis.call('XPENDING', KEYS[1], a.group, id, id, 1)
  if p[1] and p[1][2] == a.consumer then
    redis.call('XCLAIM', KEYS[1], a.group, a.consumer, 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
"""

# KEYS[1] stream  KEYS[2] dead-letter stream  [KEYS[3] a status hash  KEYS[4] a counter hash]
# ARGV[1] {group, id (entry), maxlen (dead letters), entry {field: text},
#          status {field: text}, counter (field)}
# all in one slot: the dead-letter stream (and any status) share the stream's hash tag
DEAD_LETTER = """
local a = cjson.decode(ARGV[1])
local fields = {}
for k, v in pairs(a.entry) do fields[#fields + 1] = k; fields[#fields + 1] = v end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', a.maxlen, '*', unpack(fields))
redis.call('XACK', KEYS[1], a.group, a.id)
redis.call('XDEL', KEYS[1], a.id)
if KEYS[3] then
  for k, v in pairs(a.status) do redis.call('HSET', KEYS[3], k, v) end
end
if KEYS[4] then redis.call('HINCRBY', KEYS[4], a.counter, 1) end
return 1
"""


@dataclass(frozen=True)
class Entry:
    """One stream entry: id and decoded fields (empty when it was deleted while pending)."""

    id: str
    fields: dict[str, str]


def entries(rows: Any) -> list[Entry]:
    """Decode XRANGE/XREADGROUP/XAUTOCLAIM rows (deleted entries come back as None)."""
    out: list[Entry] = []
    for entry_id, fields in rows or []:
        if fields is None:  # Redis 6.2's XAUTOCLAIM even loses the id: ""
            out.append(Entry("" if entry_id is None else text_of(entry_id), {}))
            continue
        out.append(Entry(text_of(entry_id), {text_of(k): text_of(v) for k, v in fields.items()}))
    return out


class StreamConsumer:
    """This process's member of one stream's consumer group."""

    def __init__(
        self, client: AsyncRedis, stream: str, group: str, consumer: str, *,
        reclaim_idle_ms: int = 60_000, read_count: int = 64, block_ms: int = 1000,
        heartbeat_s: float | None = None, dead_stream: str = "", dead_maxlen: int = 100_000,
    ) -> None:
        self.r = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.reclaim_idle_ms = reclaim_idle_ms
        self.read_count = read_count
        self.block_ms = block_ms
        # Often enough that a held entry is re-claimed well before it looks idle.
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else reclaim_idle_ms / 4000
        self.dead_stream = dead_stream
        self.dead_maxlen = dead_maxlen
        self.held: set[str] = set()  # entry ids this process is working on
        self._ack = client.register_script(ACK)
        self._keep = client.register_script(KEEP)
        self.lost: set[str] = set()  # entries another consumer took from us
        self._ownership: Coalescer[str, set[str]] = Coalescer(self._keep_many)
        self._dead_letter = client.register_script(DEAD_LETTER)
        self._cursor = "0"  # own pending entries first (a restart under the same name)

    # ------------------------------------------------------------------ group
    async def ensure_group(self) -> None:
        """XGROUP CREATE … MKSTREAM, ignoring 'already exists'."""
        try:
            await self.r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def ensure_group_patiently(self, stopping: asyncio.Event | None = None) -> None:
        """ensure_group, retrying every second while Redis is unreachable (start-up order)."""
        while stopping is None or not stopping.is_set():
            try:
                await self.ensure_group()
                return
            except REDIS_DOWN:
                await asyncio.sleep(1)

    async def recover(self, exc: BaseException) -> None:
        """After a failed call: re-create the group if Redis lost it, so we never loop on
        NOGROUP forever."""
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            log.warning("consumer group %s of %s was gone; created it again",
                        self.group, self.stream)
            self._cursor = "0"
            with contextlib.suppress(*REDIS_DOWN):
                await self.ensure_group()

    # ------------------------------------------------------------------ reading
    async def read(self) -> list[Entry]:
        """The next entries for this consumer: its own pending ones first, then new ones."""
        while self._cursor != ">":
            rows = await self.r.xreadgroup(self.group, self.consumer,
                                           {self.stream: self._cursor}, count=self.read_count)
            page = [e for _s, r in rows or [] for e in entries(r)]
            # page through our own backlog; a short page is its end
            self._cursor = page[-1].id if len(page) >= self.read_count else ">"
            mine = [e for e in page if e.id not in self.held]
            gone = [e.id for e in mine if not e.fields]  # deleted while pending: just ack
            if gone:
                await self.r.xack(self.stream, self.group, *gone)
            batch = [e for e in mine if e.fields]
            if batch:
                self.held.update(e.id for e in batch)
                return batch
        rows = await self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                       count=self.read_count, block=self.block_ms)
        batch = [e for _s, r in rows or [] for e in entries(r)]
        self.held.update(e.id for e in batch)
        return batch

    async def reclaim(self) -> list[Entry]:
        """Entries idle longer than reclaim_idle_ms (their consumer died), now ours."""
        claimed: list[Entry] = []
        start = "0-0"
        while True:
            reply = await self.r.xautoclaim(self.stream, self.group, self.consumer,
                                            self.reclaim_idle_ms, start_id=start,
                                            count=max(self.read_count, 100))
            start = text_of(reply[0])
            rows = [e for e in entries(reply[1]) if e.id not in self.held]
            gone = [e.id for e in rows if not e.fields and e.id]  # deleted while pending
            if gone:
                await self.r.xack(self.stream, self.group, *gone)
            if any(not e.id for e in rows):
                await self._ack_deleted_pending()
            claimed += [e for e in rows if e.fields]
            if start == "0-0":
                # Held only once every page came back: after a failure half-way the pages
                # already claimed look idle again later and are reclaimed then.
                self.held.update(e.id for e in claimed)
                return claimed

    async def _ack_deleted_pending(self, pages: int = 10) -> None:
        """Acknowledge pending entries that no longer exist (Redis 6.2 keeps them in the
        pending list and returns them from XAUTOCLAIM without their id)."""
        start = "-"
        for _ in range(pages):
            pending = await self.r.xpending_range(self.stream, self.group, min=start, max="+",
                                                  count=100)
            for item in pending:
                entry_id = text_of(item["message_id"])
                if not await self.r.xrange(self.stream, entry_id, entry_id):
                    await self.r.xack(self.stream, self.group, entry_id)
            if len(pending) < 100:
                return
            start = "(" + text_of(pending[-1]["message_id"])

    async def heartbeat(self) -> set[str]:
        """Re-claim every held entry that is still ours, so no other consumer takes it while
        we work on it; the ones another consumer took meanwhile (after an outage longer than
        the idle time) are let go and returned, never taken back."""
        lost = await self.keep(list(self.held))
        # An entry acknowledged while the check ran is not pending any more, so it looks
        # taken; it was released by its ack meanwhile: only what we still hold was lost.
        lost &= self.held
        self.lost |= lost
        self.release(*lost)
        return lost

    async def keep(self, ids: list[str]) -> set[str]:
        """Touch these entries if this consumer still owns them; the ids it does not."""
        lost: set[str] = set()
        for i in range(0, len(ids), 1000):
            lost.update(text_of(x) for x in await self._keep(
                keys=[self.stream], args=[json.dumps(
                    {"group": self.group, "consumer": self.consumer, "ids": ids[i:i + 1000]})]))
        return lost

    async def still_mine(self, entry_id: str) -> bool:
        """Whether this consumer still owns an entry (touching it), checked just before a
        side effect that must not happen twice; lanes asking together share a round trip."""
        return entry_id not in await self._ownership.submit(entry_id)

    # ------------------------------------------------------------------ finishing
    async def ack(self, *ids: str, delete: bool = True) -> None:
        """Done with these entries: acknowledge (and delete, unless the stream is a log)."""
        if not ids:
            return
        await self._ack(keys=[self.stream],
                        args=[json.dumps({"group": self.group, "delete": delete, "ids": ids})])
        self.release(*ids)

    def release(self, *ids: str) -> None:
        """Stop holding entries (acknowledged elsewhere, or left pending for a reclaim)."""
        self.held.difference_update(ids)

    async def dead_letter(self, entry: Entry, reason: dict[str, str], *,
                          status: tuple[str, dict[str, str]] | None = None,
                          counter: tuple[str, str] | None = None) -> None:
        """Move an entry that can never succeed to the dead-letter stream, atomically with
        its acknowledgement — and with a status hash update and a counter, if given (keys
        in the stream's slot)."""
        if not self.dead_stream:
            raise RuntimeError(f"no dead-letter stream for {self.stream}")
        keys = [self.stream, self.dead_stream]
        if status is not None:
            keys.append(status[0])
            if counter is not None:
                keys.append(counter[0])
        await self._dead_letter(keys=keys, args=[json.dumps({
            "group": self.group, "id": entry.id, "maxlen": self.dead_maxlen,
            "entry": {**entry.fields, **reason}, "status": status[1] if status else {},
            "counter": counter[1] if counter else ""}, ensure_ascii=False)])
        self.release(entry.id)

    # ------------------------------------------------------------------ the loop
    async def run(self, handle: Handle, stopping: asyncio.Event,
                  paused: Callable[[], bool] = lambda: False) -> None:
        """Read, reclaim and heartbeat until stopped, handing every batch to `handle`.

        `handle` owns the entries it is given: it acknowledges them (ack, dead_letter, or
        its own atomic script then release) or releases them to be reclaimed later.
        `paused()` is back-pressure: no new reads while it is true.
        """
        await self.ensure_group_patiently(stopping)
        beat = asyncio.create_task(self._beat(stopping))
        reclaim_every = max(1.0, self.reclaim_idle_ms / 3000)
        loop = asyncio.get_running_loop()
        last_reclaim = -1e9
        outage = OutageLog(f"reading {self.stream}", log)
        try:
            while not stopping.is_set():
                try:
                    if loop.time() - last_reclaim >= reclaim_every:
                        last_reclaim = loop.time()
                        await self._hand(handle, await self.reclaim())
                    if paused():
                        await asyncio.sleep(0.05)
                        continue
                    batch = await self.read()
                    outage.ok()
                    await self._hand(handle, batch)
                except REDIS_DOWN as exc:
                    outage.failed(exc)
                    await self.recover(exc)
                    await asyncio.sleep(1)
        finally:
            beat.cancel()  # gather, not suppress: a cancellation of run() itself goes on
            await asyncio.gather(beat, return_exceptions=True)

    async def _keep_many(self, ids: list[str]) -> list[set[str]]:
        lost = await self.keep(sorted(set(ids)))
        return [lost] * len(ids)

    async def _hand(self, handle: Handle, batch: list[Entry]) -> None:
        """Give a batch to `handle`; if it fails, the entries are let go (a reclaim retries
        them after the idle time) — never held forever, and a bug never stops the loop."""
        if not batch:
            return
        try:
            await handle(batch)
        except REDIS_DOWN:
            self.release(*(e.id for e in batch))
            raise
        except Exception:
            log.exception("handling entries of %s failed; they will be retried", self.stream)
            self.release(*(e.id for e in batch))

    async def _beat(self, stopping: asyncio.Event) -> None:
        outage = OutageLog(f"heartbeat on {self.stream}", log)
        while not stopping.is_set():
            await asyncio.sleep(self.heartbeat_s)
            if not self.held:
                continue
            try:
                lost = await self.heartbeat()
                outage.ok()
                if lost:
                    log.warning("%d entries of %s were taken over by another consumer while "
                                "Redis was out of reach; let go", len(lost), self.stream)
            except REDIS_DOWN as exc:
                outage.failed(exc)

