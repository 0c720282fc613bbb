"""Handoff tickets for staff: a member asked for a person; who took it, how long it waited.

The bridge relays every handoff request to the staff group at once; this is the console's
side of it. The aggregator files a ticket from each HANDOFF_OPENED event (once), and staff
claim, annotate and close tickets in the console. Claiming is one Lua script, so two staff
members clicking at once get one winner; the wait until the first claim is the "time to first
response" on the dashboard. One slot per brand (`qz:{<brand>:tickets}`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from qunzhu.events import Event
from qunzhu.redisconn import AsyncRedis, script_arg, text_of

KEEP_S = 90 * 86400  # a ticket is kept this long after it was opened
CLOSED_KEPT = 500  # closed tickets listed

# KEYS[1] ticket hash  KEYS[2] open set   ARGV[1] {ticket, fields {…}, at, ttl}
FILE = """
local a = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = {}
for k, v in pairs(a.fields) do f[#f + 1] = k; f[#f + 1] = v end
redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', a.at, unpack(f))
redis.call('EXPIRE', KEYS[1], a.ttl)
redis.call('ZADD', KEYS[2], a.at, a.ticket)
return 1
"""

# KEYS[1] ticket hash   ARGV[1] {who, at}
# {status: taken|already|closed|unknown, by, wait_s}
CLAIM = """
local a = cjson.decode(ARGV[1])
local t = redis.call('HMGET', KEYS[1], 'state', 'taken_by', 'opened_at')
if not t[1] then return cjson.encode({status = 'unknown'}) end
if t[1] == 'closed' then return cjson.encode({status = 'closed'}) end
if t[1] == 'taken' then return cjson.encode({status = 'already', by = t[2]}) end
redis.call('HSET', KEYS[1], 'state', 'taken', 'taken_by', a.who, 'taken_at', a.at)
return cjson.encode({status = 'taken', by = a.who, wait_s = a.at - tonumber(t[3])})
"""

# KEYS[1] ticket hash  KEYS[2] open set  KEYS[3] closed set   ARGV[1] {ticket, who, at, keep}
CLOSE = """
local a = cjson.decode(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'unknown' end
if state == 'closed' then return 'already' end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_by', a.who, 'closed_at', a.at)
redis.call('ZREM', KEYS[2], a.ticket)
redis.call('ZADD', KEYS[3], a.at, a.ticket)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -a.keep - 1)
return 'closed'
"""


@dataclass(frozen=True)
class TicketKeys:
    """Where a brand's tickets live."""

    brand: str

    def ticket(self, ticket: str) -> str:
        return f"qz:{{{self.brand}:tickets}}:t:{ticket}"

    @property
    def open(self) -> str:
        return f"qz:{{{self.brand}:tickets}}:open"

    @property
    def closed(self) -> str:
        return f"qz:{{{self.brand}:tickets}}:closed"


@dataclass(frozen=True)
class Ticket:
    """One request for a person."""

    id: str
    state: str  # open | taken | closed
    group: str
    user: str
    text: str
    history: list[dict[str, str]]
    opened_at: float
    taken_by: str = ""
    taken_at: float = 0.0
    note: str = ""
    closed_at: float = 0.0

    @classmethod
    def from_hash(cls, ticket: str, raw: dict[Any, Any]) -> Ticket:
        f = {text_of(k): text_of(v) for k, v in raw.items()}
        try:
            history = json.loads(f.get("history") or "[]")
        except json.JSONDecodeError:
            history = []
        return cls(ticket, f.get("state", "open"), f.get("group", ""), f.get("user", ""),
                   f.get("text", ""), history if isinstance(history, list) else [],
                   float(f.get("opened_at") or 0), f.get("taken_by", ""),
                   float(f.get("taken_at") or 0), f.get("note", ""),
                   float(f.get("closed_at") or 0))


async def file(r: AsyncRedis, brand: str, opened: Event) -> bool:
    """A ticket from a HANDOFF_OPENED event; False when it was filed before."""
    keys = TicketKeys(brand)
    ticket = str(opened.data.get("ticket") or opened.eid)
    fields = {"group": opened.group, "user": opened.user,
              "text": str(opened.data.get("text", "")),
              "history": str(opened.data.get("history", "[]"))}
    return bool(await r.eval(FILE, 2, keys.ticket(ticket), keys.open, script_arg(
        {"ticket": ticket, "fields": fields, "at": opened.at, "ttl": KEEP_S})))


async def claim(r: AsyncRedis, brand: str, ticket: str, who: str, now: float) -> dict[str, Any]:
    """Take a ticket: {status: taken|already|closed|unknown, by, wait_s}."""
    reply = await r.eval(CLAIM, 1, TicketKeys(brand).ticket(ticket),
                         script_arg({"who": who, "at": now}))
    doc: dict[str, Any] = json.loads(text_of(reply))
    return doc


async def note(r: AsyncRedis, brand: str, ticket: str, who: str, text: str) -> bool:
    """Keep a staff note on a ticket (the reply given, a follow-up)."""
    key = TicketKeys(brand).ticket(ticket)
    if not await r.exists(key):
        return False
    await r.hset(key, mapping={"note": text[:1000], "note_by": who})
    return True


async def close(r: AsyncRedis, brand: str, ticket: str, who: str, now: float) -> str:
    """Close a ticket: closed | already | unknown."""
    keys = TicketKeys(brand)
    return text_of(await r.eval(CLOSE, 3, keys.ticket(ticket), keys.open, keys.closed,
                                script_arg({"ticket": ticket, "who": who, "at": now,
                                            "keep": CLOSED_KEPT})))


async def get(r: AsyncRedis, brand: str, ticket: str) -> Ticket | None:
    """One ticket, if it exists."""
    raw = await r.hgetall(TicketKeys(brand).ticket(ticket))
    return Ticket.from_hash(ticket, raw) if raw else None


async def listed(r: AsyncRedis, brand: str, *, closed: bool = False,
                 limit: int = 200) -> list[Ticket]:
    """Open (and taken) tickets oldest first, or the latest closed ones."""
    keys = TicketKeys(brand)
    ids = [text_of(t) for t in (
        await r.zrevrange(keys.closed, 0, limit - 1) if closed
        else await r.zrange(keys.open, 0, limit - 1))]
    found = [await get(r, brand, ticket) for ticket in ids]
    return [t for t in found if t is not None]
