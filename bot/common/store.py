"""The bridge's state in Redis: dedupe + inbox, outbox + status, rate limits, counters.

Each read-modify-write is one Lua script (as in actions/store.py), and each script's keys
share one hash tag, so it runs on a Redis Cluster too: the inbox with its dedupe marks
(`{inbox}`), the outbox with its idempotency keys, post statuses and dead letters
(`{outbox}`), the handoff requests (`{handoffs}`), each robot's rate limit (`{rl:<robot>}`).
Keys no script shares (turn results, member snapshots, counters) carry no tag, so a cluster
spreads them over every node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from redis.commands.core import AsyncScript

from bot.common.streams import StreamConsumer
from qunzhu.events import Event, emit
from qunzhu.redisconn import AsyncRedis, is_cluster, script_arg, text_of

log = logging.getLogger(__name__)

IN = "qz:{inbox}:"
OUT = "qz:{outbox}:"
HAND = "qz:{handoffs}:"
INBOX = IN + "stream"
OUTBOX = OUT + "stream"
DEAD = OUT + "dead"
HANDOFFS = HAND + "stream"  # members' requests for a person, for the staff relay
RELAYS = "relays"
HANDOFFS_MAXLEN = 100_000
METRICS = "qz:bridge:metrics"  # counters bumped outside the scripts
INBOX_METRICS, OUTBOX_METRICS, HANDOFF_METRICS = IN + "metrics", OUT + "metrics", HAND + "metrics"
ALL_METRICS = (METRICS, INBOX_METRICS, OUTBOX_METRICS, HANDOFF_METRICS)
CLUSTER_CONCURRENCY = 200  # script calls in flight at once for a batch on a cluster
WORKERS = "workers"
SENDERS = "senders"
STATUS_TTL_S = 7 * 24 * 3600
IDEMPOTENCY_TTL_S = 3 * 24 * 3600
DEAD_MAXLEN = 100_000

# Every script takes one JSON argument (ARGV[1]); stream entries are given as an object of
# field → text and flattened here.
_FLAT = """
local function flat(obj, out)
  out = out or {}
  for k, v in pairs(obj) do out[#out + 1] = k; out[#out + 1] = v end
  return out
end
"""

# KEYS[1] seen:<dedupe>  KEYS[2] inbox stream  KEYS[3] metrics
# ARGV[1] {ttl (s), fields {name: text}}
# returns the inbox entry id, or false when this callback was already accepted
ACCEPT = _FLAT + """
local a = cjson.decode(ARGV[1])
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', a.ttl) then
  redis.call('HINCRBY', KEYS[3], 'callbacks_duplicate', 1)
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(flat(a.fields)))
redis.call('HINCRBY', KEYS[3], 'callbacks_accepted', 1)
return id
"""

# KEYS[1] idem:<key>  KEYS[2] outbox stream  KEYS[3] post:<id>  KEYS[4] metrics
# ARGV[1] {id, idem_ttl, status_ttl, group, now (s, text), fields {name: text}}
# returns {post id, 1 if new else 0}
ENQUEUE = _FLAT + """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0} end
local a = cjson.decode(ARGV[1])
local entry = redis.call('XADD', KEYS[2], '*', unpack(flat(a.fields, {'id', a.id})))
redis.call('SET', KEYS[1], a.id, 'EX', a.idem_ttl)
redis.call('HSET', KEYS[3], 'state', 'queued', 'group', a.group, 'entry', entry,
           'accepted_at', a.now, 'attempts', 0)
redis.call('EXPIRE', KEYS[3], a.status_ttl)
redis.call('HINCRBY', KEYS[4], 'posts_accepted', 1)
return {a.id, 1}
"""

# KEYS[1] idem:<key>  KEYS[2] stream  KEYS[3] metrics
# ARGV[1] {ttl, maxlen (approximate), counter, fields {name: text}}
# returns {entry id, 1 if new else 0}: the first entry for this key, appended once
APPEND_ONCE = _FLAT + """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0} end
local a = cjson.decode(ARGV[1])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', a.maxlen, '*', unpack(flat(a.fields)))
redis.call('SET', KEYS[1], id, 'EX', a.ttl)
redis.call('HINCRBY', KEYS[3], a.counter, 1)
return {id, 1}
"""

# KEYS[1] rl:<robot> (sorted set of send times, ms)  KEYS[2] rl:<robot>:blocked_until
# ARGV[1] {now (ms), window (ms), limit, member (unique)}
# returns 0 when a slot was taken, else how many ms to wait before asking again
TAKE_SLOT = """
local a = cjson.decode(ARGV[1])
local now = a.now
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return blocked - now end
local window = a.window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
if redis.call('ZCARD', KEYS[1]) < a.limit then
  redis.call('ZADD', KEYS[1], string.format('%d', now), a.member)
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now + 1)
"""

# KEYS[1] rl:<robot>:blocked_until  ARGV[1] {until (ms), ttl (ms)}
# keeps the later of the existing and the new block
BLOCK = """
local a = cjson.decode(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if a['until'] > current then
  redis.call('SET', KEYS[1], string.format('%d', a['until']), 'PX', a.ttl)
end
return 1
"""


# KEYS[1] outbox stream  KEYS[2] metrics  KEYS[3..] post:<id> of each acknowledged post
# ARGV[1] {group (consumer group), now (text), done [[entry id, state], ...] in KEYS order}
# acknowledges and deletes the entries, records each post's final state; returns the count
ACK_POSTS = """
local a = cjson.decode(ARGV[1])
local n = #KEYS - 2
for i = 1, n do
  local entry, state = a.done[i][1], a.done[i][2]
  redis.call('XACK', KEYS[1], a.group, entry)
  redis.call('XDEL', KEYS[1], entry)
  redis.call('HSET', KEYS[2 + i], 'state', state, 'done_at', a.now)
  redis.call('HINCRBY', KEYS[2], 'posts_' .. state, 1)
end
return n
"""


# KEYS[1] a set  ARGV[1] {ttl (s), members [...]}: the set becomes exactly these members
SNAPSHOT = """
local a = cjson.decode(ARGV[1])
redis.call('DEL', KEYS[1])
if #a.members > 0 then
  redis.call('SADD', KEYS[1], unpack(a.members))
  redis.call('EXPIRE', KEYS[1], a.ttl)
end
return #a.members
"""


def seen_key(dedupe: str) -> str:
    """Where an accepted callback's id is remembered (beside the inbox: one script)."""
    return f"{IN}seen:{dedupe}"


def turn_key(dedupe: str) -> str:
    """Where a processed turn's replies are kept so a reclaimed entry never re-runs Rasa."""
    return f"qz:bridge:turn:{dedupe}"


def post_key(post_id: str) -> str:
    """A post's status hash (beside the outbox: one script)."""
    return f"{OUT}post:{post_id}"


def limit_keys(robot_id: str) -> list[str]:
    """A robot's sliding-window log and its 45009 back-off marker (one slot per robot)."""
    return [f"qz:{{rl:{robot_id}}}:log", f"qz:{{rl:{robot_id}}}:blocked"]


def members_key(chatid: str) -> str:
    """The last member list we saw for a group (for newcomer diffs)."""
    return f"qz:bridge:members:{chatid}"


def _slot_request(now: float, window_s: float, limit: int) -> str:
    """TAKE_SLOT's argument: a unique member, so two sends in one millisecond both count."""
    return script_arg({"now": int(now * 1000), "window": int(window_s * 1000), "limit": limit,
                       "member": secrets.token_hex(8)})


def new_post_id() -> str:
    """Opaque post ids for the status endpoint."""
    return "p_" + secrets.token_hex(8)


class BridgeStore:
    """Typed access to the bridge's Redis state."""

    def __init__(self, client: AsyncRedis) -> None:
        self.r = client
        self._accept = client.register_script(ACCEPT)
        self._enqueue = client.register_script(ENQUEUE)
        self._append_once = client.register_script(APPEND_ONCE)
        self._take_slot = client.register_script(TAKE_SLOT)
        self._block = client.register_script(BLOCK)
        self._ack_posts = client.register_script(ACK_POSTS)
        self._snapshot = client.register_script(SNAPSHOT)

    def consumer(self, stream: str, group: str, name: str, **options: Any) -> StreamConsumer:
        """This process's member of a stream's consumer group (options: StreamConsumer's)."""
        return StreamConsumer(self.r, stream, group, name, **options)

    async def emit(self, brand: str, event: Event) -> bool:
        """Record an event for the console's counters; False (logged) when Redis did not."""
        return await emit(self.r, brand, event)

    # ------------------------------------------------------------------ inbound
    async def accept(self, dedupe: str, fields: dict[str, str], ttl_s: int) -> str | None:
        """Remember the callback and queue it, atomically; None for a duplicate."""
        raw = await self._accept(keys=[seen_key(dedupe), INBOX, INBOX_METRICS],
                                 args=[script_arg({"ttl": ttl_s, "fields": fields})])
        return None if raw is None else text_of(raw)

    async def turn_result(self, dedupe: str) -> dict[str, str]:
        """The stored outcome of a turn, if it already ran."""
        raw = await self.r.hgetall(turn_key(dedupe))
        return {text_of(k): text_of(v) for k, v in raw.items()}

    async def save_turn(self, dedupe: str, replies: list[str], ttl_s: int) -> None:
        """Record the turn's replies before replying, so a crash never re-runs Rasa."""
        key = turn_key(dedupe)
        await self.r.hset(key, mapping={"replies": json.dumps(replies, ensure_ascii=False)})
        await self.r.expire(key, ttl_s)

    async def mark_replied(self, dedupe: str) -> None:
        """The reply went out: a reclaimed entry must not reply again."""
        await self.r.hset(turn_key(dedupe), "replied", "1")

    # ------------------------------------------------------------------ outbound
    def _enqueue_call(self, group: str, fields: dict[str, str], idem: str, now: float,
                      post_id: str = "") -> tuple[list[str], list[object]]:
        post_id = post_id or new_post_id()
        idem_key = f"{OUT}idem:{idem or post_id}"
        return ([idem_key, OUTBOX, post_key(post_id), OUTBOX_METRICS],
                [script_arg({"id": post_id, "idem_ttl": IDEMPOTENCY_TTL_S,
                             "status_ttl": STATUS_TTL_S, "group": group, "now": f"{now:.3f}",
                             "fields": {"group": group, **fields}})])

    async def enqueue(self, group: str, fields: dict[str, str], idem: str, now: float,
                      post_id: str = "") -> tuple[str, bool]:
        """Put a post in the outbox once per idempotency key; (post id, newly accepted).

        A given `post_id` (one the API already answered with, from the spool) is kept; with
        no idempotency key the post id itself is the key, so applying it twice posts once.
        """
        keys, args = self._enqueue_call(group, fields, idem, now, post_id)
        raw = await self._enqueue(keys=keys, args=args)
        return text_of(raw[0]), bool(int(raw[1]))

    async def enqueue_many(self, posts: list[tuple[str, dict[str, str], str]],
                           now: float) -> list[tuple[str, bool]]:
        """enqueue() for many (group, fields, idempotency key) posts in one round trip.

        Each post is still its own script call (accepted once, atomically); a campaign to
        thousands of groups just does not pay a round trip per group.
        """
        replies = await self._many(self._enqueue, [self._enqueue_call(group, fields, idem, now)
                                                   for group, fields, idem in posts])
        return [(text_of(raw[0]), bool(int(raw[1]))) for raw in replies]

    async def add_handoff(self, idem: str, fields: dict[str, str]) -> tuple[str, bool]:
        """Queue a member's request for a person once per idempotency key; (id, new)."""
        raw = await self._append_once(
            keys=[f"{HAND}idem:{idem}", HANDOFFS, HANDOFF_METRICS],
            args=[script_arg({"ttl": IDEMPOTENCY_TTL_S, "maxlen": HANDOFFS_MAXLEN,
                         "counter": "handoffs_accepted", "fields": fields})])
        return text_of(raw[0]), bool(int(raw[1]))

    async def alias_post(self, post_id: str, same_as: str) -> None:
        """A spooled post turned out to repeat an earlier one: its id points there."""
        key = post_key(post_id)
        await self.r.hset(key, mapping={"state": "duplicate", "same_as": same_as})
        await self.r.expire(key, STATUS_TTL_S)

    async def status(self, post_id: str) -> dict[str, str]:
        """A post's state: queued, sent, digested or dead (with errcode)."""
        raw = await self.r.hgetall(post_key(post_id))
        return {text_of(k): text_of(v) for k, v in raw.items()}

    async def take_slots(
        self, robot_ids: list[str], now: float, window_s: float, limit: int
    ) -> list[float]:
        """For each robot, 0 when it may post now, else seconds to wait (a sliding window over
        all senders); many robots in one round trip (the sender's lanes ask together)."""
        replies = await self._many(self._take_slot, [
            (limit_keys(robot_id),
             [_slot_request(now, window_s, limit)])
            for robot_id in robot_ids])
        return [int(wait_ms) / 1000.0 for wait_ms in replies]

    async def _many(self, script: AsyncScript, calls: list[tuple[list[str], list[Any]]]
                    ) -> list[Any]:
        """Many calls of one script: one pipelined round trip on a single server; on a
        cluster (whose pipelines cannot carry scripts) concurrent calls, routed by slot."""
        if is_cluster(self.r):
            out: list[Any] = []
            for i in range(0, len(calls), CLUSTER_CONCURRENCY):
                out += await asyncio.gather(*(script(keys=keys, args=args)
                                              for keys, args in calls[i:i + CLUSTER_CONCURRENCY]))
            return out
        async with self.r.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await script(keys=keys, args=args, client=pipe)
            return list(await pipe.execute())

    async def ack_posts(self, done: list[tuple[str, str, str]], now: float) -> None:
        """Acknowledge delivered posts (entry id, post id, final state) in one script call."""
        if not done:
            return
        keys = [OUTBOX, OUTBOX_METRICS, *(post_key(post_id) for _entry, post_id, _state in done)]
        await self._ack_posts(keys=keys, args=[script_arg({
            "group": SENDERS, "now": f"{now:.3f}",
            "done": [[entry_id, state] for entry_id, _post_id, state in done]})])

    async def block(self, robot_id: str, until: float, now: float) -> None:
        """45009: no post to this robot before `until`, across all senders."""
        ttl_ms = max(1, int((until - now) * 1000)) + 60_000
        await self._block(keys=[limit_keys(robot_id)[1]],
                          args=[script_arg({"until": int(until * 1000), "ttl": ttl_ms})])

    # ------------------------------------------------------------------ small reads/writes
    async def ping(self) -> bool:
        """Whether Redis answers."""
        return bool(await self.r.ping())

    async def queue_depths(self) -> dict[str, int]:
        """Entries waiting in the inbox and the outbox (for operators)."""
        return {"inbox": int(await self.r.xlen(INBOX)), "outbox": int(await self.r.xlen(OUTBOX))}

    async def record_parts_sent(self, post_id: str, parts: int) -> None:
        """A long post was split: how many parts went out (a reclaim resumes after them)."""
        await self.r.hset(post_key(post_id), "parts_sent", parts)

    async def member_snapshot(self, chatid: str) -> set[str]:
        """The member ids of a group as we last listed them (empty: never listed)."""
        return {text_of(m) for m in await self.r.smembers(members_key(chatid))}

    async def member_count(self, chatid: str) -> int:
        """How many members a group had when we last listed it (0: never listed)."""
        return int(await self.r.scard(members_key(chatid)))

    async def replace_member_snapshot(self, chatid: str, userids: list[str],
                                      ttl_s: int) -> None:
        """Remember a group's member ids as listed just now (one key: atomic as a script)."""
        await self._snapshot(keys=[members_key(chatid)],
                             args=[script_arg({"ttl": ttl_s, "members": userids})])

    async def incr(self, counter: str, by: int = 1) -> None:
        """Bump a metrics counter."""
        await self.r.hincrby(METRICS, counter, by)

    async def metrics(self) -> dict[str, int]:
        """All counters (the scripts keep theirs beside their streams: summed here)."""
        totals: dict[str, int] = {}
        for key in ALL_METRICS:
            for k, v in (await self.r.hgetall(key)).items():
                totals[text_of(k)] = totals.get(text_of(k), 0) + int(v)
        return totals
