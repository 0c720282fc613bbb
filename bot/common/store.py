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

from qunzhu.redisconn import AsyncRedis, is_cluster, text_of

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

# KEYS[1] seen:<dedupe>  KEYS[2] inbox stream  KEYS[3] metrics
# ARGV[1] ttl seconds, ARGV[2..] field/value pairs of the inbox entry
# returns the inbox entry id, or false when this callback was already accepted
ACCEPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[3], 'callbacks_duplicate', 1)
  return false
end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('HINCRBY', KEYS[3], 'callbacks_accepted', 1)
return id
"""

# KEYS[1] idem:<key>  KEYS[2] outbox stream  KEYS[3] post:<id>  KEYS[4] metrics
# ARGV[1] post id, ARGV[2] idempotency ttl, ARGV[3] status ttl, ARGV[4] group,
# ARGV[5] now (s), ARGV[6..] field/value pairs
# returns {post id, 1 if new else 0}
ENQUEUE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0} end
local fields = {'id', ARGV[1]}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local entry = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[3], 'state', 'queued', 'group', ARGV[4], 'entry', entry,
           'accepted_at', ARGV[5], 'attempts', 0)
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[4], 'posts_accepted', 1)
return {ARGV[1], 1}
"""

# KEYS[1] idem:<key>  KEYS[2] stream  KEYS[3] metrics
# ARGV[1] idempotency ttl, ARGV[2] stream maxlen (approximate), ARGV[3] counter,
# ARGV[4..] field/value pairs
# returns {entry id, 1 if new else 0}: the first entry for this key, appended once
APPEND_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0} end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return {id, 1}
"""

# KEYS[1] rl:<robot> (sorted set of send times, ms)  KEYS[2] rl:<robot>:blocked_until
# ARGV[1] now ms, ARGV[2] window ms, ARGV[3] limit, ARGV[4] unique member
# returns 0 when a slot was taken, else how many ms to wait before asking again
TAKE_SLOT = """
local now = tonumber(ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return blocked - now end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now + 1)
"""

# KEYS[1] rl:<robot>:blocked_until  ARGV[1] until ms, ARGV[2] ttl ms
# keeps the later of the existing and the new block
BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


# KEYS[1] outbox stream  KEYS[2] metrics  KEYS[3..] post:<id> of each acknowledged post
# ARGV[1] consumer group, ARGV[2] now, then for each post: entry id, state
# acknowledges and deletes the entries, records each post's final state; returns the count
ACK_POSTS = """
local n = #KEYS - 2
for i = 1, n do
  local entry, state = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  redis.call('XACK', KEYS[1], ARGV[1], entry)
  redis.call('XDEL', KEYS[1], entry)
  redis.call('HSET', KEYS[2 + i], 'state', state, 'done_at', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'posts_' .. state, 1)
end
return n
"""


# KEYS[1] a set  ARGV[1] ttl s  ARGV[2..] members: the set becomes exactly these members
SNAPSHOT = """
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
  redis.call('SADD', KEYS[1], unpack(ARGV, 2))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return #ARGV - 1
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

    # ------------------------------------------------------------------ inbound
    async def accept(self, dedupe: str, fields: dict[str, str], ttl_s: int) -> str | None:
        """Remember the callback and queue it, atomically; None for a duplicate."""
        flat: list[str] = []
        for k, v in fields.items():
            flat += [k, v]
        raw = await self._accept(keys=[seen_key(dedupe), INBOX, INBOX_METRICS],
                                 args=[ttl_s, *flat])
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
        flat: list[str] = ["group", group]
        for k, v in fields.items():
            flat += [k, v]
        idem_key = f"{OUT}idem:{idem or post_id}"
        return ([idem_key, OUTBOX, post_key(post_id), OUTBOX_METRICS],
                [post_id, IDEMPOTENCY_TTL_S, STATUS_TTL_S, group, f"{now:.3f}", *flat])

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
        flat: list[str] = []
        for k, v in fields.items():
            flat += [k, v]
        raw = await self._append_once(
            keys=[f"{HAND}idem:{idem}", HANDOFFS, HANDOFF_METRICS],
            args=[IDEMPOTENCY_TTL_S, HANDOFFS_MAXLEN, "handoffs_accepted", *flat])
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

    async def take_slot(self, robot_id: str, now: float, window_s: float, limit: int) -> float:
        """0 when the robot may post now, else seconds to wait (sliding window, all senders)."""
        wait_ms = await self._take_slot(
            keys=limit_keys(robot_id),
            args=[int(now * 1000), int(window_s * 1000), limit, secrets.token_hex(8)],
        )
        return int(wait_ms) / 1000.0

    async def take_slots(
        self, robot_ids: list[str], now: float, window_s: float, limit: int
    ) -> list[float]:
        """take_slot for many robots in one round trip (the sender's lanes ask together)."""
        replies = await self._many(self._take_slot, [
            (limit_keys(robot_id),
             [int(now * 1000), int(window_s * 1000), limit, secrets.token_hex(8)])
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
        args: list[str] = [SENDERS, f"{now:.3f}"]
        for entry_id, _post_id, state in done:
            args += [entry_id, state]
        await self._ack_posts(keys=keys, args=args)

    async def block(self, robot_id: str, until: float, now: float) -> None:
        """45009: no post to this robot before `until`, across all senders."""
        ttl_ms = max(1, int((until - now) * 1000)) + 60_000
        await self._block(keys=[limit_keys(robot_id)[1]], args=[int(until * 1000), ttl_ms])

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

    async def replace_member_snapshot(self, chatid: str, userids: list[str],
                                      ttl_s: int) -> None:
        """Remember a group's member ids as listed just now (one key: atomic as a script)."""
        await self._snapshot(keys=[members_key(chatid)], args=[ttl_s, *userids])

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
