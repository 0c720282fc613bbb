"""Owner-confirmed 群发 to customer groups (外部群): each asked for once, from any number of
bridges, and followed until every group has its outcome.

A mass send in data/customer_groups.yml runs once, at its `send_at`:

1. **Plan.** The groups are resolved to their owners (groupchat/get; `owners:` expands to
   their groups with groupchat/list) and the plan — text, groups, owners — is stored once
   (HSETNX): every process works from the same one, even if ownership or the file changes.
   A group WeCom does not know, or without an owner, is recorded as failed.
2. **Reserve, then ask.** Per owner (and per 2000 groups: chat_id_list's limit) one Lua
   script first counts each group's 群发 this month (Asia/Shanghai) — a group already at the
   month's days is recorded `skipped: monthly_cap` and never put to WeCom — takes one more
   for every other group, and claims the task for this process. Only the claimant calls
   add_msg_template, and records the msgid it gets.
3. **Follow.** get_groupmsg_send_result is polled (at most every `poll_s`, by one process at
   a time) until each group is final — sent, failed (not_friend, wecom_monthly_cap …) — or
   the owners' time is up (`results_hours`): then the rest are `not_sent: not_confirmed`.

Why at most once: add_msg_template has no idempotency key, and asking twice puts two tasks
before the owner; if they confirm both, the customers get the message twice and the month's
allowance goes twice. So the claim is recorded before the call and a claim is never called
again. A call WeCom answered with an errcode created nothing: a transient one (-1, rate
limits, no connection) gives the claim and the month's counts back for the next tick, a
permanent one fails the groups. A call that may have created the task without saying so (a
timeout, a reset), and a claim whose process died mid-call (older than CLAIM_MS without a
msgid), are `unknown`: the bridge looks for the task among the corp's 群发 of that time
(get_groupmsg_list_v2 → same text, a task for this owner, the same groups) and adopts its
msgid; not found within GIVE_UP_S, the groups are `failed: outcome_unknown` and keep their
month's count. A lost message is reported; a doubled one cannot happen.

Every key of a brand's customer groups shares one hash tag (`qz:{<brand>:cg}:…`), so each
script touches one slot on a cluster; 群发 are rare, so one slot per brand is plenty.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.common.clock import Clock
from bot.wecom.api import WeComApi, WeComApiError
from bot.wecom.customer_api import (
    MAX_CHAT_IDS,
    NOT_FRIEND,
    OTHER_MASS_SEND,
    SENT,
    CustomerContact,
    monthly_cap,
)
from qunzhu.config import SHANGHAI
from qunzhu.customergroups import CustomerGroupsFile, MassSend
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, script_arg, text_of

log = logging.getLogger(__name__)

CLAIM_MS = 60_000  # a claim this old without a msgid: its process died mid-call
SETTLE_S = 20  # an unknown outcome is looked for after this (WeCom's lists catch up)
GIVE_UP_S = 15 * 60  # not found by then: failed(outcome_unknown), never asked again
CAP_TTL_S = 40 * 86400
SEND_TTL_S = 90 * 86400
PLAN_LOCK_MS = 60_000
TRANSIENT = frozenset({-2, -1, 45009, 45033})  # no connection, busy, rate limits
GROUP_STATES = ("asked", "sent", "not_sent", "failed", "skipped")

# Moves one group's record: a final state never changes; counters n:<state> follow.
_MOVE = """
local function move(h, chat, g)
  local f = 'g:' .. chat
  local raw = redis.call('HGET', h, f)
  local rec = {}
  if raw then
    rec = cjson.decode(raw)
    if rec.state ~= 'asked' then return 0 end
    redis.call('HINCRBY', h, 'n:asked', -1)
  end
  for k, v in pairs(g) do rec[k] = v end
  redis.call('HINCRBY', h, 'n:' .. rec.state, 1)
  redis.call('HSET', h, f, cjson.encode(rec))
  return 1
end
"""

# KEYS[1] the send  KEYS[2] active sends  ARGV[1] {send, plan (JSON text), late, ttl}
# stores the first plan only (groups it could not resolve become failed); returns the plan
PLAN = _MOVE + """
local a = cjson.decode(ARGV[1])
if redis.call('HSETNX', KEYS[1], 'plan', a.plan) == 1 then
  local p = cjson.decode(a.plan)
  for _, f in ipairs(p.failed) do
    move(KEYS[1], f[1], {state = 'failed', reason = f[2], name = f[3], owner = f[4]})
  end
  if a.late then redis.call('HSET', KEYS[1], 'done', 'late')
  else redis.call('SADD', KEYS[2], a.send) end
  redis.call('EXPIRE', KEYS[1], a.ttl)
end
return redis.call('HGET', KEYS[1], 'plan')
"""

# KEYS[1] this month's counts (chat → 群发)  KEYS[2] the send
# ARGV[1] {unit, owner, chats [[chat, name]…], cap, token, now (ms), month, skip, cap_ttl}
# counts FIRST: a group at the cap is skipped, never asked; the others take one more; the
# unit is claimed for `token`. A unit that exists is returned as it is (never claimed twice).
# `skip` (late, cancelled: '' for none) skips every group not yet decided instead.
RESERVE = _MOVE + """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[2], a.unit)
if raw then return raw end
local asked = {}
for _, c in ipairs(a.chats) do
  local chat = c[1]
  if redis.call('HEXISTS', KEYS[2], 'g:' .. chat) == 0 then
    local g = {owner = a.owner, name = c[2], unit = a.unit, at = a.now}
    if a.skip ~= '' then
      g.state = 'skipped'
      g.reason = a.skip
    elseif tonumber(redis.call('HGET', KEYS[1], chat) or '0') >= a.cap then
      g.state = 'skipped'
      g.reason = 'monthly_cap'
    else
      redis.call('HINCRBY', KEYS[1], chat, 1)
      g.state = 'asked'
      asked[#asked + 1] = chat
    end
    move(KEYS[2], chat, g)
  end
end
redis.call('EXPIRE', KEYS[1], a.cap_ttl)
local u = {token = a.token, owner = a.owner, claimed_at = a.now, month = a.month,
           state = 'done'}
if #asked > 0 then
  u.state = 'claimed'
  u.chats = asked
end
local enc = cjson.encode(u)
redis.call('HSET', KEYS[2], a.unit, enc)
return enc
"""

# KEYS[1] the send  KEYS[2] msgid → send|unit  ARGV[1] {unit, ref, msgid, fails, now}
# the task exists: 1; 0 when the unit is past asking; -1 when the msgid is another's
ASKED = _MOVE + """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], a.unit)
if not raw then return 0 end
local u = cjson.decode(raw)
if u.state ~= 'claimed' and u.state ~= 'unknown' then return 0 end
local prev = redis.call('HGET', KEYS[2], a.msgid)
if prev and prev ~= a.ref then return -1 end
redis.call('HSET', KEYS[2], a.msgid, a.ref)
local mine = {}
for _, c in ipairs(u.chats) do mine[c] = true end
for _, chat in ipairs(a.fails) do
  if mine[chat] then move(KEYS[1], chat, {state = 'failed', reason = 'refused', at = a.now}) end
end
u.state = 'asked'
u.msgid = a.msgid
u.asked_at = a.now
u.polled_at = 0
redis.call('HSET', KEYS[1], a.unit, cjson.encode(u))
return 1
"""

# KEYS[1] the unit's month counts  KEYS[2] the send  ARGV[1] {unit, token}
# WeCom answered with a transient errcode (nothing created): forget the claim and give the
# month's counts back, so the next tick reserves and asks afresh
RELEASE = """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[2], a.unit)
if not raw then return 0 end
local u = cjson.decode(raw)
if u.state ~= 'claimed' or u.token ~= a.token then return 0 end
for _, chat in ipairs(u.chats) do
  local g = redis.call('HGET', KEYS[2], 'g:' .. chat)
  if g and cjson.decode(g).state == 'asked' then
    redis.call('HDEL', KEYS[2], 'g:' .. chat)
    redis.call('HINCRBY', KEYS[2], 'n:asked', -1)
    redis.call('HINCRBY', KEYS[1], chat, -1)
  end
end
redis.call('HDEL', KEYS[2], a.unit)
return 1
"""

# KEYS[1] the unit's month counts  KEYS[2] the send  ARGV[1] {unit, reason, refund, now}
# the unit's asked groups fail; their month's counts come back only when WeCom created nothing
FAIL = _MOVE + """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[2], a.unit)
if not raw then return 0 end
local u = cjson.decode(raw)
if u.state ~= 'claimed' and u.state ~= 'unknown' then return 0 end
for _, chat in ipairs(u.chats) do
  if move(KEYS[2], chat, {state = 'failed', reason = a.reason, at = a.now}) == 1 and a.refund then
    redis.call('HINCRBY', KEYS[1], chat, -1)
  end
end
u.state = 'failed'
u.reason = a.reason
redis.call('HSET', KEYS[2], a.unit, cjson.encode(u))
return 1
"""

# KEYS[1] the send  ARGV[1] {unit, now, token (or ''), stale_ms}
# the outcome of the call is unknown: ours (token), or a claim older than stale_ms
UNKNOWN = """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], a.unit)
if not raw then return 0 end
local u = cjson.decode(raw)
if u.state ~= 'claimed' then return 0 end
if u.token ~= a.token and a.now - u.claimed_at < a.stale_ms then return 0 end
u.state = 'unknown'
u.unknown_at = a.now
redis.call('HSET', KEYS[1], a.unit, cjson.encode(u))
return 1
"""

# KEYS[1] the send  ARGV[1] {unit, now, every (ms)}: 1 when this process may look now
TURN = """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], a.unit)
if not raw then return 0 end
local u = cjson.decode(raw)
if u.state ~= 'asked' and u.state ~= 'unknown' then return 0 end
if a.now - (u.polled_at or 0) < a.every then return 0 end
u.polled_at = a.now
redis.call('HSET', KEYS[1], a.unit, cjson.encode(u))
return 1
"""

# KEYS[1] the send  ARGV[1] {unit, moves [[chat, state, reason, send_time]…], final, now}
# records results for the unit's groups; `final` makes the rest not_sent; returns moves made
RESULTS = _MOVE + """
local a = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], a.unit)
if not raw then return 0 end
local u = cjson.decode(raw)
if u.state ~= 'asked' then return 0 end
local mine = {}
for _, c in ipairs(u.chats) do mine[c] = true end
local moved = 0
for _, m in ipairs(a.moves) do
  if mine[m[1]] then
    moved = moved + move(KEYS[1], m[1], {state = m[2], reason = m[3], send_time = m[4],
                                         msgid = u.msgid, at = a.now})
  end
end
local open = false
for _, c in ipairs(u.chats) do
  if a.final then
    moved = moved + move(KEYS[1], c, {state = 'not_sent', reason = 'not_confirmed',
                                      msgid = u.msgid, at = a.now})
  else
    local g = redis.call('HGET', KEYS[1], 'g:' .. c)
    if g and cjson.decode(g).state == 'asked' then open = true end
  end
end
if not open then u.state = 'done' end
redis.call('HSET', KEYS[1], a.unit, cjson.encode(u))
return moved
"""

# KEYS[1] the send  KEYS[2] active sends  ARGV[1] {send, ttl}
FINISH = """
local a = cjson.decode(ARGV[1])
redis.call('HSET', KEYS[1], 'done', 'done')
redis.call('SREM', KEYS[2], a.send)
redis.call('EXPIRE', KEYS[1], a.ttl)
return 1
"""


def _tag(brand: str) -> str:
    return f"qz:{{{brand}:cg}}"


def send_key(brand: str, send_id: str) -> str:
    """One mass send: its plan, tasks (u:<owner>:<n>), groups (g:<chat>), counters (n:…)."""
    return f"{_tag(brand)}:send:{send_id}"


def cap_key(brand: str, month: str) -> str:
    """The 群发 each customer group was asked for in a local month (YYYYMM)."""
    return f"{_tag(brand)}:cap:{month}"


def active_key(brand: str) -> str:
    """The sends still being followed."""
    return f"{_tag(brand)}:active"


def msgids_key(brand: str) -> str:
    """Every msgid qunzhu holds → send|unit (so one task is never adopted twice)."""
    return f"{_tag(brand)}:msgids"


@dataclass(frozen=True)
class Unit:
    """One add_msg_template: an owner and up to 2000 of their groups."""

    field: str  # u:<owner>:<n>
    owner: str
    chats: tuple[tuple[str, str], ...]  # (chat id, name)


def units(plan: dict[str, Any]) -> list[Unit]:
    """The plan's tasks, the same in every process: owners sorted, groups sorted, batched."""
    by_owner: dict[str, list[tuple[str, str]]] = {}
    for chat, owner, name, _owner_name in plan.get("groups") or []:
        by_owner.setdefault(owner, []).append((chat, name))
    out = []
    for owner in sorted(by_owner):
        chats = sorted(by_owner[owner])
        for n in range(0, len(chats), MAX_CHAT_IDS):
            out.append(Unit(f"u:{owner}:{n // MAX_CHAT_IDS}", owner,
                            tuple(chats[n:n + MAX_CHAT_IDS])))
    return out


class _Later(Exception):
    """WeCom could not answer now: plan again next tick."""


@dataclass
class SendTally:
    """What this process did (logs, tests)."""

    planned: int = 0
    asked: int = 0  # add_msg_template calls
    adopted: int = 0  # tasks found after an unknown outcome
    released: int = 0
    failed: int = 0
    polls: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class CustomerSends:
    """Runs the mass sends of data/customer_groups.yml: plan, reserve, ask, follow."""

    def __init__(self, client: AsyncRedis, brand: str,
                 customer: Callable[[], CustomerGroupsFile],
                 wecom: WeComApi | CustomerContact, clock: Clock, *, owner: str = "",
                 tick_s: float = 5.0, poll_s: float = 60.0, concurrency: int = 8) -> None:
        self._r = client
        self._brand = brand
        self._customer = customer
        self._wecom = wecom if isinstance(wecom, CustomerContact) else CustomerContact(wecom)
        self._clock = clock
        self.owner = f"{owner or 'sends'}-{secrets.token_hex(4)}"
        self._tick_s = tick_s
        self._poll_ms = int(poll_s * 1000)
        self._limit = asyncio.Semaphore(concurrency)
        self._scripts = {name: client.register_script(body) for name, body in (
            ("plan", PLAN), ("reserve", RESERVE), ("asked", ASKED), ("release", RELEASE),
            ("fail", FAIL), ("unknown", UNKNOWN), ("turn", TURN), ("results", RESULTS),
            ("finish", FINISH))}
        self._stopping = asyncio.Event()
        self.tally = SendTally()

    # ------------------------------------------------------------------ the loop
    def stop(self) -> None:
        """Return from run() after the current step."""
        self._stopping.set()

    async def run(self) -> None:
        """Tick until stopped; Redis trouble pauses, a bug is logged and the loop goes on."""
        while not self._stopping.is_set():
            try:
                await self.tick()
            except REDIS_DOWN as exc:
                log.warning("customer group sends paused: Redis %s", type(exc).__name__)
            except Exception:  # one bad step must not end the loop
                log.exception("customer group send step failed; trying again")
            await self._clock.sleep(self._tick_s)

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    async def _run(self, name: str, keys: list[str], args: dict[str, Any]) -> Any:
        return await self._scripts[name](keys=keys, args=[script_arg(args)])

    async def tick(self) -> SendTally:
        """Plan the sends that are due, then move every active one forward."""
        now = self._clock.now()
        for send in self._customer().mass_sends:
            if (send.enabled and send.send_at.timestamp() <= now
                    and not await self._r.hexists(send_key(self._brand, send.id), "plan")):
                await self._plan(send, now)
        active = sorted(text_of(m) for m in await self._r.smembers(active_key(self._brand)))
        for send_id in active:
            if self._stopping.is_set():
                break
            await self._advance(send_id)
        return self.tally

    # ------------------------------------------------------------------ 1. plan
    async def _plan(self, send: MassSend, now: float) -> None:
        key = send_key(self._brand, send.id)
        late = now > send.send_at.timestamp() + send.grace_minutes * 60
        plan: dict[str, Any] = {"text": send.text, "name": send.name,
                                "send_at": send.send_at.isoformat(),
                                "results_s": send.results_hours * 3600, "late": late,
                                "groups": [], "failed": [], "problems": []}
        if not late:
            if not await self._r.set(f"{key}:planning", self.owner, nx=True, px=PLAN_LOCK_MS):
                return  # another process is resolving the groups
            try:
                plan["groups"], plan["failed"], plan["problems"] = await self._resolve(send)
            except _Later as exc:
                log.warning("mass send %s: groups not resolved yet (%s)", send.id, exc)
                await self._r.delete(f"{key}:planning")
                return
        await self._run("plan", [key, active_key(self._brand)], {
            "send": send.id, "plan": json.dumps(plan, ensure_ascii=False), "late": late,
            "ttl": SEND_TTL_S})
        self.tally.planned += 1
        if late:
            log.warning("mass send %s was due at %s: too late now (grace %s min), not sent",
                        send.id, send.send_at, send.grace_minutes)

    async def _resolve(self, send: MassSend) -> tuple[list[list[str]], list[list[str]],
                                                       list[str]]:
        """(chat, owner, name, owner's name) per group; failed [chat, reason, name, owner]."""
        problems: list[str] = []
        listed: list[str] = []
        if send.owners:
            try:
                listed = await self._wecom.groups_of(list(send.owners))
            except WeComApiError as exc:
                if exc.errcode in TRANSIENT:
                    raise _Later(f"groupchat/list errcode {exc.errcode}") from None
                problems.append(f"owners: WeCom refused the list (errcode {exc.errcode})")
        chats = list(dict.fromkeys([*send.groups, *listed]))

        async def one(chat: str) -> list[str]:
            async with self._limit:
                try:
                    found = await self._wecom.owner_of(chat)
                except WeComApiError as exc:
                    if exc.errcode in TRANSIENT:
                        raise _Later(f"groupchat/get errcode {exc.errcode}") from None
                    return ["", chat, f"wecom_{exc.errcode}"]
            if not found.owner:
                return ["", chat, "no_owner", found.name]
            return [chat, found.owner, found.name, found.owner_name]

        rows = await asyncio.gather(*(one(c) for c in chats))
        groups = sorted(r for r in rows if r[0])
        failed = sorted([r[1], r[2], r[3] if len(r) > 3 else "", ""] for r in rows if not r[0])
        return groups, failed, problems

    # ------------------------------------------------------------------ 2./3. advance
    async def _advance(self, send_id: str) -> None:
        key = send_key(self._brand, send_id)
        raw_plan = await self._r.hget(key, "plan")
        if raw_plan is None:  # expired or removed: nothing left to follow
            await self._r.srem(active_key(self._brand), send_id)
            return
        plan = json.loads(text_of(raw_plan))
        planned = units(plan)
        raws = await self._r.hmget(key, [u.field for u in planned]) if planned else []
        states = await asyncio.gather(*(
            self._guarded(send_id, plan, unit, None if raw is None else json.loads(text_of(raw)))
            for unit, raw in zip(planned, raws, strict=True)))
        if all(s in ("done", "failed") for s in states):
            await self._run("finish", [key, active_key(self._brand)],
                            {"send": send_id, "ttl": SEND_TTL_S})
            log.info("mass send %s: every group has its outcome", send_id)

    async def _guarded(self, send_id: str, plan: dict[str, Any], unit: Unit,
                       record: dict[str, Any] | None) -> str:
        async with self._limit:
            try:
                return await self._unit(send_id, plan, unit, record)
            except WeComApiError as exc:
                code = str(exc.errcode)
                self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
                log.warning("mass send %s, %s: WeCom errcode %s; trying again later",
                            send_id, unit.field, exc.errcode)
                return "open"

    async def _unit(self, send_id: str, plan: dict[str, Any], unit: Unit,
                    record: dict[str, Any] | None) -> str:
        """Move one task forward; its state afterwards."""
        if record is None:
            return await self._ask(send_id, plan, unit)
        state = str(record.get("state"))
        if state == "claimed":
            if await self._unknown(send_id, unit, token=""):  # its process died mid-call
                log.warning("mass send %s, %s: claimed %s s ago and never recorded; looking "
                            "for the task", send_id, unit.field, CLAIM_MS // 1000)
            return "open"
        if state == "unknown":
            return await self._reconcile(send_id, plan, unit, record)
        if state == "asked":
            return await self._poll(send_id, plan, unit, record)
        return state

    async def _ask(self, send_id: str, plan: dict[str, Any], unit: Unit) -> str:
        """Count the month FIRST, claim, then the one add_msg_template."""
        key = send_key(self._brand, send_id)
        local = datetime.fromtimestamp(self._clock.now(), tz=SHANGHAI)
        month, token = f"{local:%Y%m}", secrets.token_hex(8)
        send = self._customer().send(send_id)
        skip = ""
        if send is None or not send.enabled:  # taken out of the file: ask nobody more
            skip = "cancelled"
        elif self._clock.now() > send.send_at.timestamp() + send.grace_minutes * 60:
            skip = "late"
        record = json.loads(text_of(await self._run("reserve", [cap_key(self._brand, month),
                                                                 key], {
            "unit": unit.field, "owner": unit.owner, "chats": [list(c) for c in unit.chats],
            "cap": monthly_cap(local), "token": token, "now": self._now_ms(), "month": month,
            "skip": skip, "cap_ttl": CAP_TTL_S})))
        if record.get("token") != token or record.get("state") != "claimed":
            return str(record.get("state"))  # another process's, or nothing left to ask
        chats = [str(c) for c in record.get("chats") or []]
        try:
            answer = await self._wecom.add_group_msg(unit.owner, chats, str(plan["text"]))
        except WeComApiError as exc:
            return await self._refused(send_id, unit, token, month, exc)
        self.tally.asked += 1
        done = int(await self._run("asked", [key, msgids_key(self._brand)], {
            "unit": unit.field, "ref": f"{send_id}|{unit.field}", "msgid": answer.msgid,
            "fails": list(answer.fail_list), "now": self._now_ms()}))
        if done != 1:
            log.error("mass send %s, %s: WeCom's task %s could not be recorded (%s)",
                      send_id, unit.field, answer.msgid, done)
        log.info("mass send %s: %s asked to send to %d group(s) (msgid %s)", send_id,
                 unit.owner, len(chats), answer.msgid)
        return "asked"

    async def _refused(self, send_id: str, unit: Unit, token: str, month: str,
                       exc: WeComApiError) -> str:
        key = send_key(self._brand, send_id)
        keys = [cap_key(self._brand, month), key]
        code = str(exc.errcode)
        self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
        if exc.maybe_applied:
            await self._unknown(send_id, unit, token=token)
            log.warning("mass send %s, %s: WeCom's answer was lost; looking for the task "
                        "instead of asking again", send_id, unit.field)
            return "unknown"
        if exc.errcode in TRANSIENT:
            await self._run("release", keys, {"unit": unit.field, "token": token})
            self.tally.released += 1
            log.warning("mass send %s, %s: WeCom errcode %s; asking again next time",
                        send_id, unit.field, exc.errcode)
            return "open"
        await self._run("fail", keys, {"unit": unit.field, "reason": f"wecom_{exc.errcode}",
                                       "refund": True, "now": self._now_ms()})
        self.tally.failed += 1
        log.error("mass send %s, %s: WeCom refused it (errcode %s)", send_id, unit.field,
                  exc.errcode)
        return "failed"

    async def _unknown(self, send_id: str, unit: Unit, *, token: str) -> bool:
        return bool(int(await self._run("unknown", [send_key(self._brand, send_id)], {
            "unit": unit.field, "now": self._now_ms(), "token": token, "stale_ms": CLAIM_MS})))

    async def _turn(self, send_id: str, unit: Unit, every_ms: int) -> bool:
        return bool(int(await self._run("turn", [send_key(self._brand, send_id)], {
            "unit": unit.field, "now": self._now_ms(), "every": every_ms})))

    async def _reconcile(self, send_id: str, plan: dict[str, Any], unit: Unit,
                         record: dict[str, Any]) -> str:
        """Find the task an unanswered call may have created; adopt it, or give up."""
        now_ms = self._now_ms()
        since = int(record.get("unknown_at") or record.get("claimed_at") or now_ms)
        if now_ms - since < SETTLE_S * 1000 or not await self._turn(send_id, unit,
                                                                   SETTLE_S * 1000):
            return "open"
        claimed_s = int(record.get("claimed_at") or now_ms) // 1000
        msgid = await self._find_task(plan, unit, record, claimed_s, now_ms // 1000)
        key = send_key(self._brand, send_id)
        if msgid:
            adopted = int(await self._run("asked", [key, msgids_key(self._brand)], {
                "unit": unit.field, "ref": f"{send_id}|{unit.field}", "msgid": msgid,
                "fails": [], "now": now_ms}))
            if adopted == 1:
                self.tally.adopted += 1
                log.warning("mass send %s, %s: found WeCom's task %s; following it", send_id,
                            unit.field, msgid)
                return "asked"
        if now_ms - int(record.get("claimed_at") or now_ms) > GIVE_UP_S * 1000:
            await self._run("fail", [cap_key(self._brand, str(record.get("month"))), key], {
                "unit": unit.field, "reason": "outcome_unknown", "refund": False,
                "now": now_ms})
            self.tally.failed += 1
            log.error("mass send %s, %s: WeCom may or may not have the task; not asking "
                      "again (a message twice is worse than one missed)", send_id, unit.field)
            return "failed"
        return "open"

    async def _find_task(self, plan: dict[str, Any], unit: Unit, record: dict[str, Any],
                         start: int, end: int) -> str:
        """A 群发 of this text, created around the claim, for this owner and these groups."""
        candidates: list[str] = []
        cursor, seen = "", set()
        start, end = start - 120, min(end + 60, start - 120 + 30 * 86400)
        while True:
            page = await self._wecom.group_msgs(start, end, cursor=cursor)
            candidates += [m.msgid for m in page.messages if m.text == plan["text"]]
            if not page.next_cursor or page.next_cursor in seen:
                break
            seen.add(page.next_cursor)
            cursor = page.next_cursor
        if not candidates:
            return ""
        held = await self._r.hmget(msgids_key(self._brand), candidates)
        mine = {str(c) for c in record.get("chats") or []}
        for msgid, holder in zip(candidates, held, strict=True):
            if holder is not None:
                continue
            tasks = await self._wecom.group_msg_tasks(msgid)
            if not any(t.userid == unit.owner for t in tasks.tasks):
                continue
            chats = {r.chat_id async for r in self._wecom.all_send_results(msgid, unit.owner)}
            if not chats or chats <= mine:
                return msgid
        return ""

    async def _poll(self, send_id: str, plan: dict[str, Any], unit: Unit,
                    record: dict[str, Any]) -> str:
        """Ask WeCom how the owner's task went; the deadline makes the rest not_sent."""
        if not await self._turn(send_id, unit, self._poll_ms):
            return "open"
        now_ms = self._now_ms()
        final = now_ms >= int(record.get("asked_at") or 0) + int(plan["results_s"]) * 1000
        moves: list[list[Any]] = []
        try:
            async for result in self._wecom.all_send_results(str(record["msgid"]), unit.owner):
                if result.status == SENT:
                    moves.append([result.chat_id, "sent", "ok", result.send_time])
                elif result.status == NOT_FRIEND:
                    moves.append([result.chat_id, "failed", "not_friend", 0])
                elif result.status == OTHER_MASS_SEND:
                    moves.append([result.chat_id, "failed", "wecom_monthly_cap", 0])
        except WeComApiError:
            if not final:
                raise
            moves = []  # past the owners' time: what WeCom did not confirm is not_sent
        self.tally.polls += 1
        await self._run("results", [send_key(self._brand, send_id)], {
            "unit": unit.field, "moves": moves, "final": final, "now": now_ms})
        raw = await self._r.hget(send_key(self._brand, send_id), unit.field)
        return str(json.loads(text_of(raw)).get("state")) if raw else "open"


# ------------------------------------------------------------------ reading
async def send_report(client: AsyncRedis, brand: str, send: MassSend | None, send_id: str,
                      *, max_groups: int = 500) -> dict[str, Any]:
    """A mass send as operators read it: state, counts, reasons, each task and group."""
    raw = {text_of(k): text_of(v)
           for k, v in (await client.hgetall(send_key(brand, send_id))).items()}
    plan = json.loads(raw["plan"]) if "plan" in raw else None
    counts = {s: max(0, int(raw.get(f"n:{s}", "0"))) for s in GROUP_STATES}
    groups = [json.loads(v) | {"chat_id": k[2:]} for k, v in raw.items() if k.startswith("g:")]
    planned = (plan or {}).get("groups") or []
    names = {row[0]: row[2] for row in planned}
    owner_names = {row[1]: row[3] for row in planned if row[3]}
    reasons: dict[str, int] = {}
    for g in groups:
        if g.get("state") != "asked":
            label = f"{g.get('state')}:{g.get('reason')}"
            reasons[label] = reasons.get(label, 0) + 1
    tasks = []
    for k, v in sorted(raw.items()):
        if k.startswith("u:"):
            unit = json.loads(v)
            owner = str(unit.get("owner") or "")
            tasks.append({"owner": owner, "owner_name": owner_names.get(owner, ""),
                          "state": unit.get("state"), "msgid": unit.get("msgid"),
                          "reason": unit.get("reason"), "groups": len(unit.get("chats") or [])})
    groups.sort(key=lambda g: (str(g.get("state")), str(g.get("chat_id"))))
    if raw.get("done") == "late":
        state = "late"
    elif raw.get("done"):
        state = "done"
    elif plan is not None:
        state = "running"
    elif send is not None and not send.enabled:
        state = "off"
    else:
        state = "scheduled"
    return {
        "id": send_id, "name": send.name if send else (plan or {}).get("name"),
        "send_at": send.send_at.isoformat() if send else (plan or {}).get("send_at"),
        "in_file": send is not None, "state": state,
        "counts": {"pending": counts["asked"], "sent": counts["sent"],
                   "not_sent": counts["not_sent"], "failed": counts["failed"],
                   "skipped": counts["skipped"], "groups": len(groups)},
        "reasons": dict(sorted(reasons.items())),
        "problems": (plan or {}).get("problems") or [],
        "tasks": tasks,
        "groups": [{"chat_id": g["chat_id"],
                    "name": g.get("name") or names.get(g["chat_id"]) or g["chat_id"],
                    "owner": g.get("owner"),
                    "owner_name": owner_names.get(str(g.get("owner")), ""),
                    "state": "pending" if g.get("state") == "asked" else g.get("state"),
                    "reason": g.get("reason"), "send_time": g.get("send_time") or None}
                   for g in groups[:max_groups]],
    }


async def known_sends(client: AsyncRedis, brand: str) -> list[str]:
    """The sends still being followed (also those removed from the file meanwhile)."""
    return sorted(text_of(m) for m in await client.smembers(active_key(brand)))


__all__ = ["CustomerSends", "SendTally", "Unit", "active_key", "cap_key", "known_sends",
           "msgids_key", "send_key", "send_report", "units"]
