"""Move what an older bridge left in Redis under the key names it used, once, at start.

Before the keys were split over hash tags (for Redis Cluster) every bridge key shared
`qz:{bridge}:`, and the actions wrote handoff requests to `qz:{<brand>}:handoff`. A message
accepted, a post queued or a handoff requested just before an upgrade is still there; this
moves each into today's streams through the same idempotent scripts (the inbox's dedupe
mark, the post's own id, the handoff's entry id), so running it twice, or crashing half-way,
moves nothing twice. A turn's saved replies come along, so Rasa is not asked again. Rate
windows, dedupe marks of finished messages and old post statuses expire on their own.
"""

from __future__ import annotations

import logging

from bot.common.store import BridgeStore, turn_key
from bot.common.streams import entries

log = logging.getLogger(__name__)

OLD = "qz:{bridge}:"
OLD_INBOX, OLD_OUTBOX = OLD + "inbox", OLD + "outbox"
PAGE = 500


def old_handoffs(brand_id: str) -> str:
    """Where the actions used to write handoff requests."""
    return f"qz:{{{brand_id}}}:handoff"


async def _pages(store: BridgeStore, stream: str) -> list[list[tuple[str, dict[str, str]]]]:
    pages: list[list[tuple[str, dict[str, str]]]] = []
    start = "-"
    while True:
        rows = entries(await store.r.xrange(stream, min=start, max="+", count=PAGE))
        if not rows:
            return pages
        pages.append([(e.id, e.fields) for e in rows])
        if len(rows) < PAGE:
            return pages
        start = "(" + rows[-1].id


async def migrate(store: BridgeStore, brand_id: str, dedupe_ttl_s: int) -> dict[str, int]:
    """Move legacy inbox, outbox and handoff entries into today's streams; counts moved."""
    moved = {"inbox": 0, "outbox": 0, "handoffs": 0}
    r = store.r
    if await r.exists(OLD_INBOX):
        for page in await _pages(store, OLD_INBOX):
            for _id, fields in page:
                dedupe = fields.get("dedupe", "")
                old_turn = await r.hgetall(OLD + "turn:" + dedupe)
                if old_turn:
                    await r.hset(turn_key(dedupe), mapping=old_turn)
                    await r.expire(turn_key(dedupe), dedupe_ttl_s)
                if dedupe and await store.accept(dedupe, fields, dedupe_ttl_s):
                    moved["inbox"] += 1
        await r.delete(OLD_INBOX)
    if await r.exists(OLD_OUTBOX):
        for page in await _pages(store, OLD_OUTBOX):
            for _id, fields in page:
                post_id, group = fields.get("id", ""), fields.get("group", "")
                rest = {k: v for k, v in fields.items() if k not in ("id", "group")}
                if post_id and group:
                    _got, new = await store.enqueue(group, rest, "", 0.0, post_id=post_id)
                    moved["outbox"] += int(new)
        await r.delete(OLD_OUTBOX)
    handoffs = old_handoffs(brand_id)
    if await r.exists(handoffs):
        for page in await _pages(store, handoffs):
            for entry_id, fields in page:
                _id, new = await store.add_handoff(f"legacy:{entry_id}", fields)
                moved["handoffs"] += int(new)
        await r.delete(handoffs)
    if any(moved.values()):
        log.warning("moved what an older version left in Redis: %d message(s), %d post(s), "
                    "%d handoff request(s)", moved["inbox"], moved["outbox"], moved["handoffs"])
    return moved
