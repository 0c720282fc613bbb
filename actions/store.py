"""Game state in Redis: the only module that reads or writes it.

Every read-modify-write is one Lua script, so concurrent messages can never double-pay,
oversell or double-check-in. Each script first replays the stored result for a message
id it has seen (WeCom delivers a message up to 4 times), validates everything before its
first write (Lua has no rollback), and records points and coupons in an audit stream.

All keys of a brand share the hash tag ``{brand}`` so the multi-key scripts also run on
Redis Cluster.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from actions.results import CheckinResult, ClaimResult, Coupon, DrawResult, RedeemResult, parse
from qunzhu.redisconn import AsyncRedis, async_client

IDEMPOTENCY_TTL_S = 7 * 24 * 3600
LEDGER_MAXLEN = 1_000_000

# Shared prelude: replay the first result of this message id, if there was one.
_REPLAY = """
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
"""

# Leaderboard tie-break: score = points + (SPAN - 1 - n) / SPAN, where n counts the group's
# check-ins (one counter, incremented in the same script: no clock, so two check-ins in the
# same second, skewed replicas or a pinned demo clock still rank in arrival order). With
# SPAN = 2^32 and fewer than 2^21 points the sum is exact in a double, so floor() gives the
# points back and whoever got there earlier ranks higher among equal points.
TIE_SPAN = 2**32
_TIE = f"local TIE_SPAN = {TIE_SPAN}\n"

CHECKIN_LUA = (
    _TIE
    + """
-- KEYS[1] idempotency key   KEYS[2] member hash   KEYS[3] group leaderboard zset
-- KEYS[4] ledger stream   KEYS[5] group check-in counter (orders ties)
-- ARGV[1] today (YYYY-MM-DD, Asia/Shanghai)   ARGV[2] yesterday   ARGV[3] base points
-- ARGV[4] streak bonus JSON {"7": 20}   ARGV[5] idempotency TTL s   ARGV[6] user
-- ARGV[7] group ('' if none)   ARGV[8] msgid   ARGV[9] now (unix s)   ARGV[10] ledger maxlen
-- returns JSON {status = 'checked_in'|'already', streak, points, earned, checkins, best}
-- Leaderboard scores are points + a fraction that is larger the earlier the score was
-- reached, so ties rank whoever got there first (see leaderboard_score).
"""
    + _REPLAY
    + """
local m = KEYS[2]
local last = redis.call('HGET', m, 'last_day')
local streak = tonumber(redis.call('HGET', m, 'streak') or '0')
local points = tonumber(redis.call('HGET', m, 'points') or '0')
local checkins = tonumber(redis.call('HGET', m, 'checkins') or '0')
local best = tonumber(redis.call('HGET', m, 'best_streak') or '0')
local result
if last and last >= ARGV[1] then
  -- same day (or a clock that went backwards): never a second check-in
  result = {status = 'already', streak = streak, points = points, earned = 0,
            checkins = checkins, best = best}
else
  if last == ARGV[2] then streak = streak + 1 else streak = 1 end
  local bonus = cjson.decode(ARGV[4])[tostring(streak)] or 0
  local earned = tonumber(ARGV[3]) + bonus
  points = points + earned
  checkins = checkins + 1
  if streak > best then best = streak end
  redis.call('HSET', m, 'last_day', ARGV[1], 'streak', streak, 'points', points,
             'checkins', checkins, 'best_streak', best)
  if ARGV[7] ~= '' then
    local before = math.floor(tonumber(redis.call('ZSCORE', KEYS[3], ARGV[6]) or '0'))
    local n = math.min(redis.call('INCR', KEYS[5]), TIE_SPAN - 1)
    local score = before + earned + (TIE_SPAN - 1 - n) / TIE_SPAN
    redis.call('ZADD', KEYS[3], string.format('%.17g', score), ARGV[6])
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[10], '*', 'user', ARGV[6], 'delta', earned,
             'reason', 'checkin', 'streak', streak, 'group', ARGV[7], 'msgid', ARGV[8],
             'at', ARGV[9])
  result = {status = 'checked_in', streak = streak, points = points, earned = earned,
            checkins = checkins, best = best}
end
local encoded = cjson.encode(result)
redis.call('SET', KEYS[1], encoded, 'EX', ARGV[5])
return encoded
"""
)

CLAIM_COUPON_LUA = (
    """
-- KEYS[1] idempotency key   KEYS[2] campaign issued counter   KEYS[3] campaign claims hash
-- KEYS[4] member wallet hash   KEYS[5] code registry hash   KEYS[6] ledger stream
-- ARGV[1] now (unix s)   ARGV[2] starts   ARGV[3] ends   ARGV[4] stock   ARGV[5] per-member
-- limit   ARGV[6] user   ARGV[7] code   ARGV[8] coupon JSON   ARGV[9] idempotency TTL s
-- ARGV[10] msgid   ARGV[11] campaign id   ARGV[12] ledger maxlen
-- returns JSON {status = 'issued'|'not_started'|'ended'|'limit_reached'|'sold_out'|
--               'code_taken', code, mine, remaining}
"""
    + _REPLAY
    + """
local now, limit, stock = tonumber(ARGV[1]), tonumber(ARGV[5]), tonumber(ARGV[4])
local mine = tonumber(redis.call('HGET', KEYS[3], ARGV[6]) or '0')
local issued = tonumber(redis.call('GET', KEYS[2]) or '0')
local result
if now < tonumber(ARGV[2]) then
  result = {status = 'not_started'}
elseif now > tonumber(ARGV[3]) then
  result = {status = 'ended'}
elseif mine >= limit then
  result = {status = 'limit_reached', mine = mine}
elseif issued >= stock then
  result = {status = 'sold_out'}
elseif redis.call('HEXISTS', KEYS[5], ARGV[7]) == 1 then
  return cjson.encode({status = 'code_taken'})  -- not stored: the caller retries
else
  redis.call('INCR', KEYS[2])
  redis.call('HINCRBY', KEYS[3], ARGV[6], 1)
  redis.call('HSET', KEYS[5], ARGV[7], ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[12], '*', 'user', ARGV[6], 'delta', 0,
             'reason', 'coupon', 'item', ARGV[11], 'code', ARGV[7], 'msgid', ARGV[10],
             'at', ARGV[1])
  result = {status = 'issued', code = ARGV[7], mine = mine + 1,
            remaining = stock - issued - 1}
end
local encoded = cjson.encode(result)
redis.call('SET', KEYS[1], encoded, 'EX', ARGV[9])
return encoded
"""
)

REDEEM_LUA = (
    """
-- KEYS[1] idempotency key   KEYS[2] member hash   KEYS[3] member wallet hash
-- KEYS[4] code registry hash   KEYS[5] reward issued hash   KEYS[6] ledger stream
-- ARGV[1] cost   ARGV[2] stock (-1 = unlimited)   ARGV[3] reward id   ARGV[4] user
-- ARGV[5] code   ARGV[6] coupon JSON   ARGV[7] idempotency TTL s   ARGV[8] msgid
-- ARGV[9] now (unix s)   ARGV[10] ledger maxlen
-- returns JSON {status = 'redeemed'|'insufficient'|'sold_out'|'code_taken', points, code}
"""
    + _REPLAY
    + """
local cost, stock = tonumber(ARGV[1]), tonumber(ARGV[2])
local points = tonumber(redis.call('HGET', KEYS[2], 'points') or '0')
local issued = tonumber(redis.call('HGET', KEYS[5], ARGV[3]) or '0')
local result
if stock >= 0 and issued >= stock then
  result = {status = 'sold_out', points = points}
elseif points < cost then
  result = {status = 'insufficient', points = points, short = cost - points}
elseif redis.call('HEXISTS', KEYS[4], ARGV[5]) == 1 then
  return cjson.encode({status = 'code_taken'})
else
  points = redis.call('HINCRBY', KEYS[2], 'points', -cost)
  redis.call('HINCRBY', KEYS[5], ARGV[3], 1)
  redis.call('HSET', KEYS[4], ARGV[5], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[10], '*', 'user', ARGV[4], 'delta', -cost,
             'reason', 'redeem', 'item', ARGV[3], 'code', ARGV[5], 'msgid', ARGV[8],
             'at', ARGV[9])
  result = {status = 'redeemed', points = points, code = ARGV[5], cost = cost}
end
local encoded = cjson.encode(result)
redis.call('SET', KEYS[1], encoded, 'EX', ARGV[7])
return encoded
"""
)

DRAW_LUA = (
    """
-- KEYS[1] idempotency key   KEYS[2] member's draws today counter   KEYS[3] member hash
-- KEYS[4] prize issued hash   KEYS[5] member wallet hash   KEYS[6] code registry hash
-- KEYS[7] ledger stream   KEYS[8] draw audit stream
-- ARGV[1] daily limit   ARGV[2] cost in points   ARGV[3] random integer r in [0, total weight)
-- ARGV[4] prizes JSON [{id, weight, stock (-1 = unlimited), kind, points}]
-- ARGV[5] consolation prize id   ARGV[6] user   ARGV[7] group   ARGV[8] code
-- ARGV[9] coupons JSON {prize id: coupon JSON}   ARGV[10] idempotency TTL s   ARGV[11] msgid
-- ARGV[12] now (unix s)   ARGV[13] counter TTL s   ARGV[14] ledger maxlen
-- returns JSON {status = 'drawn'|'limit_reached'|'insufficient'|'code_taken', prize, kind,
--               points, code, draws_left, fell_back}
"""
    + _REPLAY
    + """
local limit, cost, r = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local points = tonumber(redis.call('HGET', KEYS[3], 'points') or '0')
local result
if used >= limit then
  result = {status = 'limit_reached', used = used}
elseif points < cost then
  result = {status = 'insufficient', points = points, short = cost - points}
else
  local prizes = cjson.decode(ARGV[4])
  local chosen, consolation
  local acc = 0
  for _, p in ipairs(prizes) do
    if p.id == ARGV[5] then consolation = p end
    acc = acc + p.weight
    if not chosen and r < acc then chosen = p end
  end
  chosen = chosen or consolation
  local fell_back = false
  if chosen.stock >= 0 then
    local out = tonumber(redis.call('HGET', KEYS[4], chosen.id) or '0')
    if out >= chosen.stock then chosen = consolation; fell_back = true end
  end
  if chosen.kind == 'coupon' and redis.call('HEXISTS', KEYS[6], ARGV[8]) == 1 then
    return cjson.encode({status = 'code_taken'})
  end
  -- all checks passed: from here on, only writes
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[13])
  if cost > 0 then
    points = redis.call('HINCRBY', KEYS[3], 'points', -cost)
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[14], '*', 'user', ARGV[6],
               'delta', -cost, 'reason', 'draw_cost', 'msgid', ARGV[11], 'at', ARGV[12])
  end
  if chosen.stock >= 0 then redis.call('HINCRBY', KEYS[4], chosen.id, 1) end
  local code = ''
  if chosen.kind == 'points' then
    points = redis.call('HINCRBY', KEYS[3], 'points', chosen.points)
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[14], '*', 'user', ARGV[6],
               'delta', chosen.points, 'reason', 'draw_prize', 'item', chosen.id,
               'msgid', ARGV[11], 'at', ARGV[12])
  elseif chosen.kind == 'coupon' then
    code = ARGV[8]
    redis.call('HSET', KEYS[6], code, ARGV[6])
    redis.call('HSET', KEYS[5], code, cjson.decode(ARGV[9])[chosen.id])
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[14], '*', 'user', ARGV[6], 'delta', 0,
               'reason', 'draw_prize', 'item', chosen.id, 'code', code,
               'msgid', ARGV[11], 'at', ARGV[12])
  end
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[14], '*', 'user', ARGV[6],
             'group', ARGV[7], 'r', ARGV[3], 'total', acc, 'prize', chosen.id,
             'fell_back', tostring(fell_back), 'msgid', ARGV[11], 'at', ARGV[12])
  result = {status = 'drawn', prize = chosen.id, kind = chosen.kind, code = code,
            points = points, draws_left = limit - used - 1, fell_back = fell_back}
end
local encoded = cjson.encode(result)
redis.call('SET', KEYS[1], encoded, 'EX', ARGV[10])
return encoded
"""
)

@dataclass(frozen=True)
class MemberStats:
    """What a member sees for `my_points`."""

    points: int
    streak: int
    checkins: int
    best_streak: int
    last_day: str | None


@dataclass(frozen=True)
class Standing:
    """One row of a group leaderboard."""

    user: str
    score: int
    rank: int


class GameStore:
    """Typed access to one brand's game state; one instance per event loop."""

    def __init__(self, client: AsyncRedis, brand: str) -> None:
        self._r = client
        self._p = f"qz:{{{brand}}}"
        self._checkin = client.register_script(CHECKIN_LUA)
        self._claim = client.register_script(CLAIM_COUPON_LUA)
        self._redeem = client.register_script(REDEEM_LUA)
        self._draw = client.register_script(DRAW_LUA)

    # ------------------------------------------------------------ key names
    def key(self, *parts: str) -> str:
        """Build a key of this brand, e.g. key('member', 'u1') -> qz:{brand}:member:u1."""
        return ":".join((self._p, *parts))

    def _idem(self, op: str, user: str, msgid: str) -> str:
        """A message's first result, per member: message ids are unique per bot, not
        across channels, so two members' messages may share one and must not share a result."""
        return self.key("idem", op, user, msgid)

    # ------------------------------------------------------------ check-in
    async def check_in(
        self,
        *,
        user: str,
        group: str,
        msgid: str,
        today: str,
        yesterday: str,
        base_points: int,
        streak_bonus: dict[int, int],
        now: int,
    ) -> CheckinResult:
        """Check a member in for today, at most once per local day."""
        raw = await self._checkin(
            keys=[
                self._idem("checkin", user, msgid),
                self.key("member", user),
                self.key("lb", group or "-"),
                self.key("ledger"),
                self.key("lbseq", group or "-"),
            ],
            args=[
                today,
                yesterday,
                base_points,
                json.dumps({str(k): v for k, v in streak_bonus.items()}),
                IDEMPOTENCY_TTL_S,
                user,
                group,
                msgid,
                now,
                LEDGER_MAXLEN,
            ],
        )
        return parse(CheckinResult, raw)

    async def member_stats(self, user: str) -> MemberStats:
        """Read a member's balance and streak (a plain read, no script needed)."""
        raw = await self._r.hgetall(self.key("member", user))
        data = {
            (k.decode() if isinstance(k, bytes) else k): (
                v.decode() if isinstance(v, bytes) else v
            )
            for k, v in raw.items()
        }
        return MemberStats(
            points=int(data.get("points", 0)),
            streak=int(data.get("streak", 0)),
            checkins=int(data.get("checkins", 0)),
            best_streak=int(data.get("best_streak", 0)),
            last_day=data.get("last_day"),
        )

    async def leaderboard(self, group: str, size: int) -> list[Standing]:
        """Top members of a group by check-in points earned there; ties: first to get there."""
        rows = await self._r.zrevrange(self.key("lb", group), 0, size - 1, withscores=True)
        return [
            Standing(user=(u.decode() if isinstance(u, bytes) else u), score=math.floor(s),
                     rank=i + 1)
            for i, (u, s) in enumerate(rows)
        ]

    async def rank_of(self, group: str, user: str) -> Standing | None:
        """A member's own place in the group leaderboard, if they are on it."""
        key = self.key("lb", group)
        rank = await self._r.zrevrank(key, user)
        if rank is None:
            return None
        score = await self._r.zscore(key, user)
        return Standing(user=user, score=math.floor(score or 0), rank=int(rank) + 1)

    # ------------------------------------------------------------ coupons
    async def claim_coupon(
        self,
        *,
        campaign: str,
        user: str,
        msgid: str,
        now: int,
        starts: int,
        ends: int,
        stock: int,
        per_member_limit: int,
        code: str,
        coupon: Coupon,
    ) -> ClaimResult:
        """Issue one coupon of a campaign atomically, or say why not."""
        raw = await self._claim(
            keys=[
                self._idem("claim", user, msgid),
                self.key("coupon", campaign, "issued"),
                self.key("coupon", campaign, "claims"),
                self.key("wallet", user),
                self.key("codes"),
                self.key("ledger"),
            ],
            args=[
                now,
                starts,
                ends,
                stock,
                per_member_limit,
                user,
                code,
                json.dumps(asdict(coupon), ensure_ascii=False),
                IDEMPOTENCY_TTL_S,
                msgid,
                campaign,
                LEDGER_MAXLEN,
            ],
        )
        return parse(ClaimResult, raw)

    async def issued_count(self, campaign: str) -> int:
        """How many coupons of a campaign have been issued."""
        return int(await self._r.get(self.key("coupon", campaign, "issued")) or 0)

    async def wallet(self, user: str) -> list[Coupon]:
        """Every coupon a member holds (expired ones included; callers filter)."""
        raw = await self._r.hgetall(self.key("wallet", user))
        return [parse(Coupon, v) for v in raw.values()]

    async def code_owner(self, code: str) -> str | None:
        """Who a coupon code was issued to, or None if it is not one of ours."""
        owner = await self._r.hget(self.key("codes"), code)
        if owner is None:
            return None
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    # ------------------------------------------------------------ points shop
    async def redeem(
        self,
        *,
        reward: str,
        cost: int,
        stock: int | None,
        user: str,
        msgid: str,
        code: str,
        coupon: Coupon,
        now: int,
    ) -> RedeemResult:
        """Spend points on a reward: points deducted and coupon issued together, or neither."""
        raw = await self._redeem(
            keys=[
                self._idem("redeem", user, msgid),
                self.key("member", user),
                self.key("wallet", user),
                self.key("codes"),
                self.key("reward", "issued"),
                self.key("ledger"),
            ],
            args=[
                cost,
                -1 if stock is None else stock,
                reward,
                user,
                code,
                json.dumps(asdict(coupon), ensure_ascii=False),
                IDEMPOTENCY_TTL_S,
                msgid,
                now,
                LEDGER_MAXLEN,
            ],
        )
        return parse(RedeemResult, raw)

    # ------------------------------------------------------------ lucky draw
    async def draw(
        self,
        *,
        user: str,
        group: str,
        msgid: str,
        today: str,
        daily_limit: int,
        cost: int,
        r: int,
        prizes: list[dict[str, Any]],
        consolation: str,
        code: str,
        coupons: dict[str, Coupon],
        now: int,
    ) -> DrawResult:
        """Draw once: the limit, cost, weighted pick and prize stock are one atomic step."""
        raw = await self._draw(
            keys=[
                self._idem("draw", user, msgid),
                self.key("draws", user, today),
                self.key("member", user),
                self.key("prize", "issued"),
                self.key("wallet", user),
                self.key("codes"),
                self.key("ledger"),
                self.key("drawlog"),
            ],
            args=[
                daily_limit,
                cost,
                r,
                json.dumps(prizes, ensure_ascii=False),
                consolation,
                user,
                group,
                code,
                json.dumps(
                    {k: json.dumps(asdict(v), ensure_ascii=False) for k, v in coupons.items()},
                    ensure_ascii=False,
                ),
                IDEMPOTENCY_TTL_S,
                msgid,
                now,
                2 * 24 * 3600,
                LEDGER_MAXLEN,
            ],
        )
        return parse(DrawResult, raw)

    async def prize_issued(self, prize: str) -> int:
        """How many of a prize have been won."""
        return int(await self._r.hget(self.key("prize", "issued"), prize) or 0)

    # ------------------------------------------------------------ streams


_client: AsyncRedis | None = None


def redis_url() -> str:
    """The Redis the games use: REDIS_URL, or the embedded one `make run` starts."""
    from qunzhu.settings import redis_url as configured

    return configured()


def client() -> AsyncRedis:
    """One lazily created client per process (created inside the running event loop).

    On one server a blocking pool queues a burst of messages instead of failing past its
    size; QZ_REDIS_CLUSTER=1 gives a Redis Cluster client.
    """
    global _client
    if _client is None:
        _client = async_client(redis_url(), max_connections=32,
                               timeout_s=float(os.environ.get("QZ_REDIS_TIMEOUT_S", "2")))
    return _client
