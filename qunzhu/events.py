"""What happened in the groups, as events: the one record the console's numbers are built from.

The actions, the bridge and Rasa (through its event broker) append events to a few Redis
streams per brand; the bridge's aggregator folds them into per-day counters
(`qunzhu.metrics`). Nothing reads trackers to count.

Every event carries an idempotency id (`eid`), derived from what caused it (usually the
WeCom message id), so an event emitted twice — a retried turn, a replayed saga — is counted
once. Emitting never fails the caller's work: analytics must not cost a member a reply.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from qunzhu import settings
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, SyncRedis, text_of

log = logging.getLogger(__name__)

RAW_MAXLEN = 1_000_000  # raw events kept per shard (approximate); the counters keep 430 days
TEXT_LIMIT = 200  # characters of a member's message kept in a turn event


class Kind(str, Enum):
    """The kinds of event, and what each one's `data` holds."""

    TURN = "turn"  # intent, confidence, fallback (bool), text, answer (the bot's first reply)
    CHECKIN = "checkin"  # streak, points (earned by this check-in)
    CLAIM = "claim"  # campaign, code
    REDEEMED = "redeemed"  # code, campaign, store (a clerk or POS took the coupon: 核销)
    DRAW = "draw"  # prize (id, "" = consolation), cost (points spent)
    SHOP = "shop"  # reward, cost (points spent in the points shop)
    HANDOFF_OPENED = "handoff_opened"  # ticket
    HANDOFF_TAKEN = "handoff_taken"  # ticket, wait_s (request → first staff response)
    HANDOFF_CLOSED = "handoff_closed"  # ticket
    POST_SENT = "post_sent"  # post, source (campaign id, "announce", "welcome", …)
    JOINED = "joined"  # (group, user)
    LEFT = "left"  # (group, user)
    OPTOUT = "optout"  # on (bool): a member asked not to be @-mentioned by campaigns
    # (group, user): a member said the group gets too many posts; the eid names the group,
    # the member and the local day, so one member's complaints count once a day
    TOO_MANY = "too_many"


Value = str | int | float | bool


@dataclass(frozen=True)
class Event:
    """One thing that happened, in one group (or "" for a direct chat), to one member."""

    kind: Kind
    eid: str  # the same cause gives the same eid: counted once however often emitted
    group: str = ""
    user: str = ""
    at: float = field(default_factory=time.time)  # unix seconds
    data: dict[str, Value] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {"k": self.kind.value, "eid": self.eid, "g": self.group, "u": self.user,
                "at": f"{self.at:.3f}", "d": json.dumps(self.data, ensure_ascii=False)}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Event:
        """Read a stream entry back; ValueError when it is not an event."""
        f = {text_of(k): text_of(v) for k, v in fields.items()}
        try:
            data = json.loads(f.get("d") or "{}")
            if not isinstance(data, dict):
                raise ValueError("data is not an object")
            return cls(Kind(f["k"]), f["eid"], f.get("g", ""), f.get("u", ""),
                       float(f["at"]), data)
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an event: {exc}") from exc


def shards() -> int:
    """How many streams a brand's events are spread over (a cluster spreads their slots)."""
    return max(1, int(settings.get("QZ_EVENT_SHARDS")))


def stream_key(brand: str, shard: int) -> str:
    """One of the brand's event streams; each is its own slot."""
    return f"qz:{{{brand}:ev:{shard}}}"


def stream_keys(brand: str) -> list[str]:
    """Every event stream of the brand."""
    return [stream_key(brand, n) for n in range(shards())]


def shard_of(event: Event) -> int:
    """A group's events stay in one stream (in order); direct chats spread by member."""
    return zlib.crc32((event.group or event.user).encode()) % shards()


def clip(text: str) -> str:
    """A member's or the bot's text as kept in an event."""
    return text[:TEXT_LIMIT]


async def emit(r: AsyncRedis, brand: str, event: Event) -> bool:
    """Append an event; False (and a warning) when Redis did not take it."""
    try:
        await r.xadd(stream_key(brand, shard_of(event)), event.fields(),
                     maxlen=RAW_MAXLEN, approximate=True)
        return True
    except REDIS_DOWN as exc:
        log.warning("event %s not recorded: Redis %s", event.kind.value, type(exc).__name__)
        return False


def emit_sync(r: SyncRedis, brand: str, event: Event) -> bool:
    """The same from synchronous code (Rasa's event broker)."""
    try:
        r.xadd(stream_key(brand, shard_of(event)), event.fields(),
               maxlen=RAW_MAXLEN, approximate=True)
        return True
    except REDIS_DOWN as exc:
        log.warning("event %s not recorded: Redis %s", event.kind.value, type(exc).__name__)
        return False
