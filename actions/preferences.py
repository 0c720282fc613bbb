"""What members ask of the campaigns, once per message: no @-mentions, and "too many posts".

`qunzhu.optouts.OptOuts` keeps the choices (the campaign scheduler reads them before it
@-mentions anyone) and each group's "too many posts" count. A message may arrive again
(WeCom retries, the bridge replays a failed turn), so each message's first view — did it
change the choice, which local day it came on — is recorded on the brand's opt-out slot
(for a choice, in one script with the change itself), and every later delivery replays it:
the same answer, nothing changed twice.
One member's complaints count once per group and local day: a marker set only if absent
(SET NX) on the same slot says the day's complaint was counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime

from actions.clock import local_day
from actions.results import parse
from actions.store import IDEMPOTENCY_TTL_S
from qunzhu.optouts import OptOuts, optouts_key
from qunzhu.redisconn import AsyncRedis, script_arg

COMPLAINED_TTL_S = 2 * 24 * 3600  # outlives its day: a retry after midnight still finds it

# KEYS[1] the message's record  KEYS[2] the brand's opt-out set (both on {brand:optout})
# ARGV[1] {user, out (true: opt out, false: back in), ttl (the record's, s)}
# returns the record as JSON {changed, done}: made by the first delivery, replayed after
CHOOSE = """
local a = cjson.decode(ARGV[1])
local function apply()
  if a.out then return redis.call('SADD', KEYS[2], a.user) end
  return redis.call('SREM', KEYS[2], a.user)
end
local seen = redis.call('GET', KEYS[1])
local view
if seen then
  view = cjson.decode(seen)
  if view.done then return seen end
  apply()  -- recorded but not applied (an older version died in between): finish it
else
  view = {changed = apply() == 1}
end
view.done = true
local out = cjson.encode(view)
redis.call('SET', KEYS[1], out, 'EX', a.ttl)
return out
"""


@dataclass(frozen=True)
class Choice:
    """An opt-out (or opt-in) message as its first delivery saw it."""

    changed: bool  # the message changed the member's choice (False: it already was so)
    done: bool = False  # the choice is stored; later deliveries only replay


@dataclass(frozen=True)
class Complaint:
    """A "too many posts" message as its first delivery saw it."""

    day: str  # the Asia/Shanghai day it came on: the day it counts for, however late retried
    at: float  # when it came (unix seconds), for its analytics event
    out: bool  # the member had already opted out of @-mentions
    done: bool = False  # counted (or found counted today); later deliveries only replay


class Preferences:
    """One brand's opt-outs and "too many posts" signals, each applied once per message."""

    def __init__(self, client: AsyncRedis, brand: str) -> None:
        self._r = client
        self._brand = brand
        self.optouts = OptOuts(client, brand)
        self._choose = client.register_script(CHOOSE)

    def said(self, op: str, user: str, msgid: str) -> str:
        """A message's first view (per member: message ids are unique per bot, not channel)."""
        return f"qz:{{{self._brand}:optout}}:said:{op}:{user}:{msgid}"

    def complained(self, day: str, group: str, user: str) -> str:
        """Present once a member's "too many posts" in a group was counted that day."""
        return f"qz:{{{self._brand}:optout}}:complained:{day}:{group}:{user}"

    async def choose(self, user: str, msgid: str, out: bool) -> Choice:
        """Opt a member out of campaign @-mentions (or back in), once for this message: the
        record and the choice are one script, so two messages at once (in two groups) cannot
        both find the choice unchanged-before and both count as the change."""
        raw = await self._choose(keys=[self.said("out" if out else "in", user, msgid),
                                       optouts_key(self._brand)],
                                 args=[script_arg({"user": user, "out": out,
                                                   "ttl": IDEMPOTENCY_TTL_S})])
        return parse(Choice, raw)

    async def too_many(self, group: str, user: str, msgid: str, now: datetime) -> Complaint:
        """Count a member's "too many posts" in a group, at most once per local day.

        Outside a group there is nothing to count. A crash between the day's marker and the
        count loses that one signal rather than counting it twice; the day's analytics event
        (named by group, member and day) counts it exactly once either way.
        """
        key = self.said("too_many", user, msgid)
        fresh = Complaint(day=local_day(now).isoformat(), at=now.timestamp(),
                          out=await self.optouts.is_out(user))
        view = await self._first(key, fresh)
        if not view.done:
            marker = self.complained(view.day, group, user)
            if group and await self._r.set(marker, msgid, nx=True, ex=COMPLAINED_TTL_S):
                await self.optouts.too_many(group)
            await self._finish(key, view)
        return view

    async def _first(self, key: str, fresh: Complaint) -> Complaint:
        """The view the message's first delivery recorded; `fresh` if this is the first.

        `fresh` is read before the record is set and every effect follows the record, so
        the first record of a message (even of four deliveries at once) saw the state
        before any of them changed it.
        """
        if await self._r.set(key, script_arg(asdict(fresh)), nx=True, ex=IDEMPOTENCY_TTL_S):
            return fresh
        raw = await self._r.get(key)
        return fresh if raw is None else parse(Complaint, raw)

    async def _finish(self, key: str, view: Complaint) -> None:
        """Mark the message's effect as in place: later deliveries only replay it."""
        await self._r.set(key, script_arg(asdict(replace(view, done=True))),
                          ex=IDEMPOTENCY_TTL_S)
