"""What the bridge spools while Redis is down, and how each record is moved into Redis.

Three kinds of record, all applied idempotently so a drain may safely repeat:
- a callback: its inbox fields and dedupe key — applied through the same accept script as a
  live callback, so a WeCom retry (spooled or live) of the same message is still one turn;
- an API post: its group, fields, idempotency key and the post id the API answered with —
  applied with that id, so the id the caller holds becomes the post's id;
- a handoff request: its fields and idempotency key (the member's message) — appended once.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.common.spool import Record
from bot.common.store import BridgeStore

log = logging.getLogger(__name__)


def callback_record(dedupe: str, fields: dict[str, str], ttl_s: int) -> Record:
    """A callback the inbox could not take."""
    return {"t": "callback", "dedupe": dedupe, "fields": fields, "ttl": ttl_s}


def post_record(post_id: str, group: str, fields: dict[str, str], idem: str,
                now: float) -> Record:
    """A post accepted by the API while the outbox could not take it."""
    keys = [f"post:{post_id}"] + ([f"idem:{idem}"] if idem else [])
    return {"t": "post", "id": post_id, "group": group, "fields": fields, "idem": idem,
            "now": now, "keys": keys}


def handoff_record(idem: str, fields: dict[str, str]) -> Record:
    """A member's request for a person, accepted while Redis could not take it."""
    return {"t": "handoff", "idem": idem, "fields": fields, "keys": [f"handoff:{idem}"]}


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


async def apply(store: BridgeStore, records: list[Record]) -> None:
    """Move records into Redis in order; a Redis error stops the drain (it is retried)."""
    callbacks = posts = 0
    for record in records:
        kind = record.get("t")
        if kind == "callback":
            await store.accept(str(record["dedupe"]), _strings(record.get("fields")),
                               int(record.get("ttl") or 0) or 1)
            callbacks += 1
        elif kind == "post":
            post_id = str(record["id"])
            got, _new = await store.enqueue(str(record["group"]), _strings(record.get("fields")),
                                            str(record.get("idem", "")),
                                            float(record.get("now") or 0), post_id=post_id)
            if got != post_id:
                await store.alias_post(post_id, got)
            posts += 1
        elif kind == "handoff":
            await store.add_handoff(str(record["idem"]), _strings(record.get("fields")))
        else:
            log.error("skipped a spool record of unknown kind %r", kind)
    if callbacks:
        await store.incr("callbacks_spooled", callbacks)
    if posts:
        await store.incr("posts_spooled", posts)
