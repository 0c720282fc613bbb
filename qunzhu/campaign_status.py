"""What became of each occurrence: sent, deferred, dropped or skipped, and why.

One hash per campaign and local day holds each group's occurrence (field
`<scheduled>|<chatid>`), and a counter hash beside it the current number in each state and
state:reason. One Lua script moves an occurrence: a final state (sent, dropped, skipped)
never changes again, a deferral may be deferred again or end in one, and the counters move
with it — so recording the same outcome twice (a scheduler redoing a window after a crash)
counts once. A campaign's keys share its hash tag; campaigns spread over a cluster.
`GET /api/campaigns/{id}` reads them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from qunzhu.config import SHANGHAI
from qunzhu.redisconn import AsyncRedis, script_arg, text_of

State = Literal["sent", "deferred", "dropped", "skipped"]
STATES: tuple[State, ...] = ("sent", "deferred", "dropped", "skipped")
KEEP_DAYS = 35

# KEYS[1] the day's occurrences  KEYS[2] the day's counters
# ARGV[1] {field, state, reason, at (s), post, due (s), retry (s, 0: none), ttl}
# 1 when the occurrence moved, 0 when it was already final (or already in this state)
RECORD = """
local a = cjson.decode(ARGV[1])
local old = redis.call('HGET', KEYS[1], a.field)
if old then
  local prev = cjson.decode(old)
  -- a deferral may end any way; a skip for lateness may still turn out sent (the deferred
  -- copy of an occurrence a restarted leader found late); other outcomes are final
  local late_then_sent = prev.state == 'skipped' and prev.reason == 'late' and a.state == 'sent'
  if prev.state ~= 'deferred' and not late_then_sent then return 0 end
  if a.state == 'deferred' and prev.reason == a.reason and prev.retry == a.retry then
    return 0
  end
  redis.call('HINCRBY', KEYS[2], prev.state, -1)
  redis.call('HINCRBY', KEYS[2], prev.state .. ':' .. prev.reason, -1)
end
redis.call('HINCRBY', KEYS[2], a.state, 1)
redis.call('HINCRBY', KEYS[2], a.state .. ':' .. a.reason, 1)
redis.call('HSET', KEYS[1], a.field, cjson.encode({state = a.state, reason = a.reason,
           at = a.at, post = a.post, due = a.due, retry = a.retry}))
redis.call('EXPIRE', KEYS[1], a.ttl)
redis.call('EXPIRE', KEYS[2], a.ttl)
return 1
"""


def _tag(brand: str, campaign: str) -> str:
    return f"qz:{{{brand}:camp:{campaign}}}"


def day_keys(brand: str, campaign: str, day: date) -> list[str]:
    """The day's occurrences hash and counters hash (one slot: the campaign)."""
    base = f"{_tag(brand, campaign)}:{day:%Y%m%d}"
    return [f"{base}:occ", f"{base}:n"]


@dataclass(frozen=True)
class Outcome:
    """One group's occurrence as last recorded."""

    chatid: str
    scheduled: str  # local "YYYY-MM-DD HH:MM"
    state: State
    reason: str
    at: float
    post: str = ""
    retry: float = 0.0  # a deferral's next attempt (unix s)


class StatusBook:
    """Records and reads campaign outcomes."""

    def __init__(self, client: AsyncRedis, brand: str) -> None:
        self._r = client
        self._brand = brand
        self._record = client.register_script(RECORD)

    async def record(self, campaign: str, chatid: str, scheduled: datetime, state: State,
                     reason: str, now: datetime, *, post: str = "", due: datetime | None = None,
                     retry: datetime | None = None) -> bool:
        """Move an occurrence to `state` (a final state sticks); True when it moved."""
        local = scheduled.astimezone(SHANGHAI)
        moved = await self._record(keys=day_keys(self._brand, campaign, local.date()),
                                   args=[script_arg({
                                       "field": f"{local:%Y%m%dT%H%M}|{chatid}",
                                       "state": state, "reason": reason,
                                       "at": round(now.timestamp(), 3), "post": post,
                                       "due": round((due or scheduled).timestamp(), 3),
                                       "retry": round(retry.timestamp(), 3) if retry else 0,
                                       "ttl": KEEP_DAYS * 86400})])
        return bool(int(moved))

    async def counts(self, campaign: str, day: date) -> Counter[str]:
        """One local day's counters only (state and state:reason): one small hash."""
        _occ_key, count_key = day_keys(self._brand, campaign, day)
        raw = await self._r.hgetall(count_key)
        return Counter({text_of(k): int(v) for k, v in raw.items() if int(v)})

    async def day(self, campaign: str, day: date) -> tuple[Counter[str], list[Outcome]]:
        """One local day of a campaign: counters (state and state:reason) and each outcome."""
        occ_key, count_key = day_keys(self._brand, campaign, day)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(count_key)
            pipe.hgetall(occ_key)
            counts_raw, occ_raw = await pipe.execute()
        counts: Counter[str] = Counter({text_of(k): int(v) for k, v in counts_raw.items()
                                        if int(v)})
        outcomes = [_outcome(text_of(k), text_of(v)) for k, v in occ_raw.items()]
        outcomes.sort(key=lambda o: (o.scheduled, o.chatid))
        return counts, outcomes

    async def summary(self, campaign: str, last: date, days: int) -> dict[str, Any]:
        """The API's view: totals, reasons, and each group's tally over `days` days to `last`."""
        totals: Counter[str] = Counter()
        groups: dict[str, dict[str, Any]] = {}
        for n in range(days):
            counts, outcomes = await self.day(campaign, last - timedelta(days=n))
            totals.update(counts)
            for outcome in outcomes:
                row = groups.setdefault(outcome.chatid, {s: 0 for s in STATES} | {"last": None})
                row[outcome.state] += 1
                if row["last"] is None or outcome.scheduled > row["last"]["scheduled"]:
                    row["last"] = outcome.__dict__ | {}
        reasons = {k: v for k, v in sorted(totals.items()) if ":" in k}
        return {"totals": {s: totals.get(s, 0) for s in STATES}, "reasons": reasons,
                "groups": groups}


def _outcome(field: str, raw: str) -> Outcome:
    scheduled, _, chatid = field.partition("|")
    doc = json.loads(raw)
    when = datetime.strptime(scheduled, "%Y%m%dT%H%M")
    return Outcome(chatid, f"{when:%Y-%m-%d %H:%M}", doc["state"], doc["reason"],
                   float(doc["at"]), str(doc.get("post") or ""), float(doc.get("retry") or 0))
