"""The game's Lua scripts: each one atomic step on one Redis Cluster slot.

Contract for every script: KEYS are all of one slot (see `actions.gamekeys`), ARGV[1] is one
JSON object, the answer is JSON. A script first replays what it recorded for this message,
then validates everything before its first write (Lua has no rollback).
"""

from __future__ import annotations

# Leaderboard tie-break: score = points + (SPAN - 1 - n) / SPAN, where n counts the group's
# check-ins (one counter, incremented in the same script: no clock, so two check-ins in the
# same second, skewed replicas or a pinned demo clock still rank in arrival order). With
# SPAN = 2^32 and fewer than 2^21 points the sum is exact in a double, so floor() gives the
# points back and whoever got there earlier ranks higher among equal points.
TIE_SPAN = 2**32

CHECKIN = """
-- member slot. KEYS[1] result   KEYS[2] member hash   KEYS[3] member ledger
-- ARGV[1] {today, yesterday, base, bonus {"7": 20}, ttl, user, group, msgid, now, maxlen}
-- -> {status = 'checked_in'|'already', streak, points, earned, checkins, best}
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local m = KEYS[2]
local last = redis.call('HGET', m, 'last_day')
local streak = tonumber(redis.call('HGET', m, 'streak') or '0')
local points = tonumber(redis.call('HGET', m, 'points') or '0')
local checkins = tonumber(redis.call('HGET', m, 'checkins') or '0')
local best = tonumber(redis.call('HGET', m, 'best_streak') or '0')
local result
if last and last >= a.today then
  -- same day (or a clock that went backwards): never a second check-in
  result = {status = 'already', streak = streak, points = points, earned = 0,
            checkins = checkins, best = best}
else
  if last == a.yesterday then streak = streak + 1 else streak = 1 end
  local earned = a.base + (a.bonus[tostring(streak)] or 0)
  points = points + earned
  checkins = checkins + 1
  if streak > best then best = streak end
  redis.call('HSET', m, 'last_day', a.today, 'streak', streak, 'points', points,
             'checkins', checkins, 'best_streak', best)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user, 'delta', earned,
             'reason', 'checkin', 'streak', streak, 'group', a.group, 'msgid', a.msgid,
             'at', a.now)
  result = {status = 'checked_in', streak = streak, points = points, earned = earned,
            checkins = checkins, best = best}
end
local encoded = cjson.encode(result)
redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
return encoded
"""

COUNT_CHECKIN = f"""
-- group slot. KEYS[1] leaderboard   KEYS[2] check-in counter   KEYS[3] counted mark
-- ARGV[1] {{user, earned, ttl}}   -> 1 if added now, 0 if this check-in was already counted
-- Scores are points + a fraction that is larger the earlier the score was reached, so
-- ties rank whoever got there first.
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local a = cjson.decode(ARGV[1])
local TIE_SPAN = {TIE_SPAN}
local before = math.floor(tonumber(redis.call('ZSCORE', KEYS[1], a.user) or '0'))
local n = math.min(redis.call('INCR', KEYS[2]), TIE_SPAN - 1)
local score = before + a.earned + (TIE_SPAN - 1 - n) / TIE_SPAN
redis.call('ZADD', KEYS[1], string.format('%.17g', score), a.user)
redis.call('SET', KEYS[3], '1', 'EX', a.ttl)
return 1
"""

BEGIN_CLAIM = """
-- member slot. KEYS[1] result   KEYS[2] claim under way
-- ARGV[1] {campaign, code, ttl}
-- -> the final result of an earlier delivery, or {status = 'under_way', campaign, code}:
--    the first delivery's campaign and code, which every later delivery finishes
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
prior = redis.call('GET', KEYS[2])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local encoded = cjson.encode({status = 'under_way', campaign = a.campaign, code = a.code})
redis.call('SET', KEYS[2], encoded, 'EX', a.ttl)
return encoded
"""

RESERVE_CLAIM = """
-- campaign slot. KEYS[1] this claim's reservation   KEYS[2] issued counter   KEYS[3] claims
-- ARGV[1] {now, starts, ends, stock, limit, user, code, ttl}
-- -> {status = 'issued'|'not_started'|'ended'|'limit_reached'|'sold_out', code, mine,
--     remaining}; an issue is kept (a retried message gets the same one), a refusal is not
--     (the member's slot records it)
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local mine = tonumber(redis.call('HGET', KEYS[3], a.user) or '0')
local issued = tonumber(redis.call('GET', KEYS[2]) or '0')
local result
if a.now < a.starts then
  result = {status = 'not_started'}
elseif a.now > a.ends then
  result = {status = 'ended'}
elseif mine >= a.limit then
  result = {status = 'limit_reached', mine = mine}
elseif issued >= a.stock then
  result = {status = 'sold_out'}
else
  redis.call('INCR', KEYS[2])
  redis.call('HINCRBY', KEYS[3], a.user, 1)
  result = {status = 'issued', code = a.code, mine = mine + 1,
            remaining = a.stock - issued - 1}
  local encoded = cjson.encode(result)
  redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
  return encoded
end
return cjson.encode(result)
"""

FINISH_CLAIM = """
-- member slot. KEYS[1] result   KEYS[2] claim under way   KEYS[3] wallet   KEYS[4] ledger
-- ARGV[1] {result (JSON text), issued (bool), code, coupon (JSON text), user, item, msgid,
--          now, ttl, maxlen}   -> the result (the first one, for a retried message)
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
if a.issued then
  redis.call('HSET', KEYS[3], a.code, a.coupon)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user, 'delta', 0,
             'reason', 'coupon', 'item', a.item, 'code', a.code, 'msgid', a.msgid,
             'at', a.now)
end
redis.call('SET', KEYS[1], a.result, 'EX', a.ttl)
redis.call('DEL', KEYS[2])
return a.result
"""

PAY_REDEEM = """
-- member slot. KEYS[1] result   KEYS[2] paid mark   KEYS[3] member hash   KEYS[4] ledger
-- ARGV[1] {cost, reward, user, code, msgid, now, ttl, maxlen}
-- -> {status = 'paid', code, points} to go on with (the first delivery's code), or a final
--    result: an earlier delivery's, or {status = 'insufficient', points, short}
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
prior = redis.call('GET', KEYS[2])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local points = tonumber(redis.call('HGET', KEYS[3], 'points') or '0')
local encoded
if points < a.cost then
  encoded = cjson.encode({status = 'insufficient', points = points, short = a.cost - points})
  redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
  return encoded
end
points = redis.call('HINCRBY', KEYS[3], 'points', -a.cost)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user, 'delta', -a.cost,
           'reason', 'redeem', 'item', a.reward, 'code', a.code, 'msgid', a.msgid, 'at', a.now)
encoded = cjson.encode({status = 'paid', code = a.code, points = points})
redis.call('SET', KEYS[2], encoded, 'EX', a.ttl)
return encoded
"""

HOLD_REWARD = """
-- rewards slot. KEYS[1] this message's unit   KEYS[2] issued hash
-- ARGV[1] {reward, stock, ttl}   -> 'held' | 'sold_out' (nothing written); only a member
-- who has already paid asks, so a unit is never held for someone who cannot pay
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
if tonumber(redis.call('HGET', KEYS[2], a.reward) or '0') >= a.stock then
  return 'sold_out'
end
redis.call('HINCRBY', KEYS[2], a.reward, 1)
redis.call('SET', KEYS[1], 'held', 'EX', a.ttl)
return 'held'
"""

SETTLE_REDEEM = """
-- member slot. KEYS[1] result   KEYS[2] paid mark   KEYS[3] member hash   KEYS[4] wallet
-- KEYS[5] ledger
-- ARGV[1] {in_stock, cost, reward, user, code, coupon (JSON text), msgid, now, ttl, maxlen}
-- -> {status = 'redeemed', points, code, cost}, or {status = 'sold_out', points} with the
--    points given back
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local result
if a.in_stock then
  redis.call('HSET', KEYS[4], a.code, a.coupon)
  local points = tonumber(redis.call('HGET', KEYS[3], 'points') or '0')
  result = {status = 'redeemed', points = points, code = a.code, cost = a.cost}
else
  local points = redis.call('HINCRBY', KEYS[3], 'points', a.cost)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user, 'delta', a.cost,
             'reason', 'refund', 'item', a.reward, 'msgid', a.msgid, 'at', a.now)
  result = {status = 'sold_out', points = points}
end
local encoded = cjson.encode(result)
redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
redis.call('DEL', KEYS[2])
return encoded
"""

PAY_DRAW = """
-- member slot. KEYS[1] result   KEYS[2] paid mark   KEYS[3] draws today   KEYS[4] member hash
-- KEYS[5] ledger
-- ARGV[1] {limit, cost, user, code, msgid, now, counter_ttl, ttl, maxlen}
-- -> {status = 'paid', code, used} to go on with, or a final result:
--    {status = 'limit_reached', used} | {status = 'insufficient', points, short} | a draw
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
prior = redis.call('GET', KEYS[2])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
local points = tonumber(redis.call('HGET', KEYS[4], 'points') or '0')
local encoded
if used >= a.limit then
  encoded = cjson.encode({status = 'limit_reached', used = used})
  redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
  return encoded
end
if points < a.cost then
  encoded = cjson.encode({status = 'insufficient', points = points, short = a.cost - points})
  redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
  return encoded
end
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], a.counter_ttl)
if a.cost > 0 then
  redis.call('HINCRBY', KEYS[4], 'points', -a.cost)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user,
             'delta', -a.cost, 'reason', 'draw_cost', 'msgid', a.msgid, 'at', a.now)
end
encoded = cjson.encode({status = 'paid', code = a.code, used = used})
redis.call('SET', KEYS[2], encoded, 'EX', a.ttl)
return encoded
"""

PICK_PRIZE = """
-- prizes slot. KEYS[1] this draw's pick   KEYS[2] prize issued hash   KEYS[3] draw log
-- ARGV[1] {r, prizes [{id, weight, stock (-1 = unlimited), kind, points}], consolation,
--          user, group, msgid, now, ttl, maxlen}
-- -> {prize, kind, points, fell_back}; a retried draw gets the prize it was given
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local chosen, consolation
local acc = 0
for _, p in ipairs(a.prizes) do
  if p.id == a.consolation then consolation = p end
  acc = acc + p.weight
  if not chosen and a.r < acc then chosen = p end
end
chosen = chosen or consolation
local fell_back = false
if chosen.stock >= 0 then
  local out = tonumber(redis.call('HGET', KEYS[2], chosen.id) or '0')
  if out >= chosen.stock then chosen = consolation; fell_back = true end
end
if chosen.stock >= 0 then redis.call('HINCRBY', KEYS[2], chosen.id, 1) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user,
           'group', a.group, 'r', a.r, 'total', acc, 'prize', chosen.id,
           'fell_back', tostring(fell_back), 'msgid', a.msgid, 'at', a.now)
local encoded = cjson.encode({prize = chosen.id, kind = chosen.kind, points = chosen.points,
                              fell_back = fell_back})
redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
return encoded
"""

SETTLE_DRAW = """
-- member slot. KEYS[1] result   KEYS[2] paid mark   KEYS[3] member hash   KEYS[4] wallet
-- KEYS[5] ledger
-- ARGV[1] {prize, kind, points, fell_back, draws_left, user, code, coupon (JSON text or ''),
--          msgid, now, ttl, maxlen}
-- -> {status = 'drawn', prize, kind, code, points, draws_left, fell_back}
local prior = redis.call('GET', KEYS[1])
if prior then return prior end
local a = cjson.decode(ARGV[1])
local code = ''
if a.kind == 'points' then
  redis.call('HINCRBY', KEYS[3], 'points', a.points)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user,
             'delta', a.points, 'reason', 'draw_prize', 'item', a.prize,
             'msgid', a.msgid, 'at', a.now)
elseif a.kind == 'coupon' then
  code = a.code
  redis.call('HSET', KEYS[4], code, a.coupon)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', a.maxlen, '*', 'user', a.user, 'delta', 0,
             'reason', 'draw_prize', 'item', a.prize, 'code', code,
             'msgid', a.msgid, 'at', a.now)
end
local points = tonumber(redis.call('HGET', KEYS[3], 'points') or '0')
local encoded = cjson.encode({status = 'drawn', prize = a.prize, kind = a.kind, code = code,
                              points = points, draws_left = a.draws_left,
                              fell_back = a.fell_back})
redis.call('SET', KEYS[1], encoded, 'EX', a.ttl)
redis.call('DEL', KEYS[2])
return encoded
"""
