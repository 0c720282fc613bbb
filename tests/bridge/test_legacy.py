"""What an older bridge left under the old key names is moved once, nothing lost or doubled."""

from __future__ import annotations

import json

import pytest

from bot.common.legacy import OLD, OLD_INBOX, OLD_OUTBOX, migrate, old_handoffs
from bot.common.store import HANDOFFS, INBOX, OUTBOX, BridgeStore, turn_key
from qunzhu.redisconn import AsyncRedis

pytestmark = pytest.mark.redis


async def test_old_inbox_outbox_and_handoffs_move_once_with_their_saved_turns(
    redis_client: AsyncRedis,
) -> None:
    r = redis_client
    await r.xadd(OLD_INBOX, {"kind": "aibot_message", "dedupe": "aibot:m1", "payload": "{}",
                             "received_at": "1.000"})
    await r.hset(OLD + "turn:aibot:m1", mapping={"replies": json.dumps(["打卡成功"])})
    await r.xadd(OLD_OUTBOX, {"id": "p_0123456789abcdef", "group": "g1", "msgtype": "text",
                              "content": "今晚直播", "mention": ""})
    await r.xadd(old_handoffs("xiaoman"), {"user": "alice", "group": "g1", "text": "转人工",
                                           "history": "[]"})
    store = BridgeStore(r)
    assert await migrate(store, "xiaoman", 3600) == {"inbox": 1, "outbox": 1, "handoffs": 1}
    assert await migrate(store, "xiaoman", 3600) == {"inbox": 0, "outbox": 0, "handoffs": 0}
    [(_, inbox)] = await r.xrange(INBOX)
    assert inbox[b"dedupe"] == b"aibot:m1"
    assert json.loads((await r.hgetall(turn_key("aibot:m1")))[b"replies"]) == ["打卡成功"]
    [(_, post)] = await r.xrange(OUTBOX)
    assert post[b"id"] == b"p_0123456789abcdef" and post[b"content"] == "今晚直播".encode()
    assert (await store.status("p_0123456789abcdef"))["state"] == "queued"
    [(_, handoff)] = await r.xrange(HANDOFFS)
    assert handoff[b"user"] == b"alice"
    assert not await r.exists(OLD_INBOX) and not await r.exists(OLD_OUTBOX)
    assert not await r.exists(old_handoffs("xiaoman"))


async def test_a_second_run_after_a_crash_half_way_moves_nothing_twice(
    redis_client: AsyncRedis,
) -> None:
    r = redis_client
    for n in range(3):
        await r.xadd(OLD_INBOX, {"kind": "aibot_message", "dedupe": f"aibot:m{n}",
                                 "payload": "{}", "received_at": "1.000"})
    store = BridgeStore(r)
    await store.accept("aibot:m0", {"dedupe": "aibot:m0"}, 3600)  # moved before the crash
    assert (await migrate(store, "xiaoman", 3600))["inbox"] == 2
    assert await r.xlen(INBOX) == 3
