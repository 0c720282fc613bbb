"""The anti-spam budget: one Lua script decides, for every sender at once, whether a post that
is not a reply to a member may go into a group now.

Per group and local day (Asia/Shanghai): at most N promotional posts, at least M minutes
between two of them (across midnight too), none in quiet hours, service posts capped
separately. The script records a post it lets through under the occurrence's id, so asking
again for the same occurrence (a retry after a crash between the decision and the enqueue)
answers "sent" without counting twice. A refusal says why and, for spacing, when; `plan()`
turns it into the next allowed moment, or a drop when that is past the post's deadline.

The limits come from qunzhu.campaigns (ceilings, tightened by the operator) and are clamped
to the ceilings again here, so no configuration can loosen them. Keys carry the group's hash
tag, so on a Redis Cluster groups spread over every node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from qunzhu.campaigns import CEILING, Limits, next_day
from qunzhu.config import SHANGHAI
from qunzhu.redisconn import AsyncRedis, script_arg, text_of

Kind = Literal["promotional", "service", "reaction"]
Reason = Literal["ok", "again", "late", "quiet_hours", "daily_cap", "spacing", "service_cap",
                 "service_spacing", "reaction_cap"]
DAY_TTL_S = 3 * 24 * 3600

# KEYS[1] the group's day hash (promo, service, occ:<id>)  KEYS[2] the group's last promo (ms)
# ARGV[1] {occ, kind (promotional|service|reaction), now (ms), minute (local minute of the
#          day), quiet [start, end) (minutes), promo_cap, gap (ms), service_cap,
#          service_gap (ms; the day's service posts are spaced too: quiet hours span
#          midnight, so the day hash is enough), reaction_cap,
#          ttl (s), late (bool: past its time)}
# A reaction (a post a member's own message caused) is not held by the quiet hours — the
# member is there, talking — but has a daily cap of its own, so it cannot become a channel.
# returns {'sent'|'wait'|'skip', reason, retry_at (ms, 0 unless spacing)}: an occurrence
# let through before is 'sent' again (its post must still be queued), even when late
DECIDE = """
local a = cjson.decode(ARGV[1])
local occ = 'occ:' .. a.occ
if redis.call('HEXISTS', KEYS[1], occ) == 1 then return {'sent', 'again', 0} end
if a.late then return {'skip', 'late', 0} end
local qs, qe, m = a.quiet_start, a.quiet_end, a.minute
local quiet = false
if qs < qe then quiet = (m >= qs and m < qe) elseif qs > qe then quiet = (m >= qs or m < qe) end
if quiet and a.kind ~= 'reaction' then return {'wait', 'quiet_hours', 0} end
if a.kind == 'reaction' then
  if tonumber(redis.call('HGET', KEYS[1], 'reaction') or '0') >= a.reaction_cap then
    return {'wait', 'reaction_cap', 0}
  end
  redis.call('HINCRBY', KEYS[1], 'reaction', 1)
elseif a.kind == 'promotional' then
  if tonumber(redis.call('HGET', KEYS[1], 'promo') or '0') >= a.promo_cap then
    return {'wait', 'daily_cap', 0}
  end
  local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
  if last >= 0 and a.now - last < a.gap then return {'wait', 'spacing', last + a.gap} end
  redis.call('HINCRBY', KEYS[1], 'promo', 1)
  redis.call('SET', KEYS[2], a.now, 'PX', a.gap + 86400000)
else
  if tonumber(redis.call('HGET', KEYS[1], 'service') or '0') >= a.service_cap then
    return {'wait', 'service_cap', 0}
  end
  local last = tonumber(redis.call('HGET', KEYS[1], 'last_service') or '-1')
  if last >= 0 and a.now - last < a.service_gap then
    return {'wait', 'service_spacing', last + a.service_gap}
  end
  redis.call('HINCRBY', KEYS[1], 'service', 1)
  redis.call('HSET', KEYS[1], 'last_service', a.now)
end
redis.call('HSET', KEYS[1], occ, a.now)
redis.call('EXPIRE', KEYS[1], a.ttl)
return {'sent', 'ok', 0}
"""


@dataclass(frozen=True)
class Verdict:
    """What the script said about one post."""

    sent: bool
    reason: Reason  # "late": never let through, and too late to be (skip it)
    retry_at: datetime | None = None  # for spacing: the first moment the gap allows


@dataclass(frozen=True)
class Plan:
    """What to do with a post the budget held back: try again at `at`, or drop it."""

    action: Literal["defer", "drop"]
    reason: Reason
    at: datetime | None = None


def clamp(limits: Limits) -> Limits:
    """The limits, never looser than the ceilings (whatever a caller built)."""
    quiet = limits
    ceiling_quiet = _minutes(CEILING)
    if not ceiling_quiet <= _minutes(limits):
        quiet = CEILING
    return Limits(promo_per_day=min(limits.promo_per_day, CEILING.promo_per_day),
                  promo_gap_minutes=max(limits.promo_gap_minutes, CEILING.promo_gap_minutes),
                  quiet_start=quiet.quiet_start, quiet_end=quiet.quiet_end,
                  service_per_day=min(limits.service_per_day, CEILING.service_per_day),
                  reaction_per_day=min(limits.reaction_per_day, CEILING.reaction_per_day),
                  service_gap_minutes=max(limits.service_gap_minutes,
                                          CEILING.service_gap_minutes))


def _minutes(limits: Limits) -> set[int]:
    start, end = limits.quiet_minutes()
    if start == end:
        return set()
    return set(range(start, end)) if start < end else (
        set(range(start, 24 * 60)) | set(range(0, end)))


def keys(chatid: str, local: datetime) -> list[str]:
    """The group's day hash and its last-promotion key (one hash tag: the group)."""
    tag = f"qz:{{grp:{chatid}}}:budget:"
    return [f"{tag}{local:%Y%m%d}", f"{tag}last_promo"]


class Budget:
    """The budget over Redis: `decide` for each post, `plan` for what it held back."""

    def __init__(self, redis: AsyncRedis) -> None:
        self._decide = redis.register_script(DECIDE)

    async def decide(self, chatid: str, occurrence: str, kind: Kind, now: datetime,
                     limits: Limits, *, late: bool = False) -> Verdict:
        """Let the post through now (recording it) or say why not; idempotent per id.

        `late`: the post is past its time, so it is only "sent" when it was let through
        before (a crash came between that and queueing it); otherwise it is skipped.
        """
        limits = clamp(limits)
        local = now.astimezone(SHANGHAI)
        quiet_start, quiet_end = limits.quiet_minutes()
        raw = await self._decide(keys=keys(chatid, local), args=[script_arg({
            "occ": occurrence, "kind": kind, "reaction_cap": limits.reaction_per_day,
            "now": int(now.timestamp() * 1000), "minute": local.hour * 60 + local.minute,
            "quiet_start": quiet_start, "quiet_end": quiet_end,
            "promo_cap": limits.promo_per_day, "gap": limits.promo_gap_minutes * 60_000,
            "service_cap": limits.service_per_day,
            "service_gap": limits.service_gap_minutes * 60_000, "ttl": DAY_TTL_S, "late": late})])
        verdict, reason, retry = text_of(raw[0]), text_of(raw[1]), int(raw[2])
        retry_at = (datetime.fromtimestamp(retry / 1000, tz=SHANGHAI) if retry else None)
        return Verdict(verdict == "sent", reason, retry_at)  # type: ignore[arg-type]


def first_allowed(at: datetime, limits: Limits) -> datetime:
    """The first minute at or after `at` outside the quiet hours."""
    local = at.astimezone(SHANGHAI)
    if not limits.is_quiet(local):
        return local
    _start, end = limits.quiet_minutes()
    candidate = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def plan(verdict: Verdict, now: datetime, deadline: datetime, limits: Limits) -> Plan:
    """When a held-back post may go: the next moment the reason no longer holds, if that is
    before its deadline; else it is dropped (a stale post helps nobody)."""
    limits = clamp(limits)
    if verdict.reason in ("daily_cap", "service_cap", "reaction_cap"):
        at = first_allowed(next_day(now), limits)
    elif verdict.reason in ("spacing", "service_spacing") and verdict.retry_at is not None:
        at = first_allowed(verdict.retry_at, limits)
    else:  # quiet hours
        at = first_allowed(now, limits)
    if at > deadline:
        return Plan("drop", verdict.reason)
    return Plan("defer", verdict.reason, at)


class Gate:
    """The budget for the posts the bridge makes on its own (welcomes, operators' posts
    through the API): a group's limits from the campaigns file; the staff group is exempt
    (alerts and handoff cards for staff, not posts to members)."""

    def __init__(self, budget: Budget, limits: Callable[[str], Limits],
                 staff: Callable[[], str]) -> None:
        self._budget = budget
        self._limits = limits
        self._staff = staff

    async def allow(self, chatid: str, key: str, kind: Kind, now: datetime) -> Verdict:
        """Let the post through (recording it under `key`) or say why not."""
        if chatid and chatid == self._staff():
            return Verdict(True, "ok")
        return await self._budget.decide(chatid, key, kind, now, self._limits(chatid))
