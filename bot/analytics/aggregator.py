"""Fold the brand's event streams into the console's per-day counters, as they arrive.

One `StreamConsumer` per event stream (shard), in the consumer group `aggregators`, so any
number of bridge processes share the work and a dead one's entries are reclaimed by idle
time. A batch is counted in one round trip (`qunzhu.metrics.record`, which skips events it
counted before), the turns the bot did not handle well are filed in the operators' inbox
(`qunzhu.inbox`, once per event too), handoff requests become staff tickets
(`qunzhu.tickets`), and the batch is acknowledged; a crash in between
counts nothing twice. The raw
streams are kept (trimmed by length) so the counters can be checked against them.
"""

from __future__ import annotations

import asyncio
import logging

from bot.common.streams import Entry, Handle, StreamConsumer
from qunzhu import events, inbox, metrics, tickets
from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis

log = logging.getLogger(__name__)

AGGREGATORS = "aggregators"
DEAD_MAXLEN = 10_000


class Aggregator:
    """This process's share of counting a brand's events."""

    def __init__(self, client: AsyncRedis, brand: str, *, consumer: str,
                 reclaim_idle_ms: int = 60_000, read_count: int = 500) -> None:
        self._r = client
        self._brand = brand
        self.consumers = [
            StreamConsumer(client, key, AGGREGATORS, consumer, reclaim_idle_ms=reclaim_idle_ms,
                           read_count=read_count, dead_stream=f"{key}:dead",
                           dead_maxlen=DEAD_MAXLEN)
            for key in events.stream_keys(brand)]
        self._stopping = asyncio.Event()
        self.counted = 0  # events counted by this process (new ones, not repeats)

    async def run(self) -> None:
        """Count every shard until stopped."""
        await asyncio.gather(*(c.run(self._handler(c), self._stopping) for c in self.consumers))

    def stop(self) -> None:
        """Ask run() to return; what was read and not acknowledged is counted by whoever is next."""
        self._stopping.set()

    def _handler(self, consumer: StreamConsumer) -> Handle:
        async def handle(batch: list[Entry]) -> None:
            await self._count(consumer, batch)
        return handle

    async def _count(self, consumer: StreamConsumer, batch: list[Entry]) -> None:
        """Count a batch, then acknowledge it (kept in the stream as the raw record)."""
        good: list[Event] = []
        for entry in batch:
            try:
                good.append(Event.from_fields(entry.fields))
            except ValueError as exc:
                log.error("event %s of %s is not readable; dead-lettered", entry.id,
                          consumer.stream)
                await consumer.dead_letter(entry, {"reason": str(exc)[:200]})
        readable = [e for e in batch if e.id in consumer.held]
        if good:
            new = await metrics.record(self._r, self._brand, good)
            self.counted += new  # after the await: shards count concurrently
            await inbox.collect(self._r, self._brand, good)
            for opened in (e for e in good if e.kind is Kind.HANDOFF_OPENED):
                await tickets.file(self._r, self._brand, opened)  # once: filed by its id
        await consumer.ack(*(e.id for e in readable), delete=False)
