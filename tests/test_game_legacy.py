"""Game state an older version left under the one-slot layout moves, once, with nothing lost."""

from __future__ import annotations

import time

import pytest

from actions.legacy import marker, migrate
from actions.results import Coupon
from actions.store import GameStore, Turn
from qunzhu.config import CheckinRules
from qunzhu.redisconn import AsyncRedis, sync_client
from tests.conftest import TEST_BRAND, RedisTarget

pytestmark = pytest.mark.redis

OLD = f"qz:{{{TEST_BRAND}}}:"
RECENT = int(time.time() * 1000) - 60_000  # a minute ago, in stream ids' milliseconds
COUPON = ('{"code": "QZ23456789", "name": "满30减5券", "value_yuan": 5, "condition": "", '
          '"issued_at": 1, "expires_at": 9999999999, "expires": "2286-11-20", '
          '"source": "campaign:c1"}')


def _old_layout(target: RedisTarget) -> None:
    """What the last release wrote for two members of the test brand."""
    r = sync_client(target.url, cluster=target.cluster, decode_responses=True)
    r.hset(OLD + "member:alice", mapping={"points": 120, "streak": 6, "checkins": 9,
                                          "best_streak": 6, "last_day": "2026-11-22"})
    r.hset(OLD + "wallet:alice", "QZ23456789", COUPON)
    r.hset(OLD + "codes", mapping={"QZ23456789": "alice", "QZ98765432": "bob"})
    r.zadd(OLD + "lb:g1", {"alice": 120.5, "bob": 40.25})
    r.set(OLD + "lbseq:g1", 17)
    r.set(OLD + "coupon:c1:issued", 2)
    r.hset(OLD + "coupon:c1:claims", mapping={"alice": 1, "bob": 1})
    r.hset(OLD + "prize:issued", "big", 1)
    r.hset(OLD + "reward:issued", "americano", 3)
    r.set(OLD + "draws:alice:2026-11-22", 1, ex=3600)
    r.set(OLD + "idem:checkin:alice:msg-1", '{"status": "checked_in", "streak": 6, '
          '"points": 120, "earned": 5, "checkins": 9, "best": 6}', ex=3600)
    r.xadd(OLD + "ledger", {"user": "alice", "delta": 5, "reason": "checkin", "group": "g1",
                            "msgid": "msg-1"}, id=f"{RECENT}-1")
    r.xadd(OLD + "ledger", {"user": "bob", "delta": 5, "reason": "checkin"}, id=f"{RECENT}-2")
    r.xadd(OLD + "ledger", {"user": "alice", "delta": 0, "reason": "coupon"}, id=f"{RECENT}-3")
    r.xadd(OLD + "drawlog", {"user": "alice", "prize": "big"}, id=f"{RECENT}-4")
    r.hset(OLD + "dir:people", "alice", "爱丽丝")  # not a game key: stays where it is
    r.close()


async def test_old_game_state_moves_to_its_slots_and_plays_on(
    redis_client: AsyncRedis, redis_target: RedisTarget, store: GameStore
) -> None:
    _old_layout(redis_target)
    r = sync_client(redis_target.url, cluster=redis_target.cluster, decode_responses=True)
    counts = migrate(r, TEST_BRAND)
    assert counts == {"keys": 11, "codes": 2, "ledger entries": 3}
    assert [k for k in r.scan_iter(match=OLD + "*")] == [OLD + "dir:people"]
    assert migrate(r, TEST_BRAND) == {} and r.get(marker(TEST_BRAND))
    r.close()

    stats = await store.member_stats("alice")
    assert (stats.points, stats.streak, stats.last_day) == (120, 6, "2026-11-22")
    assert await store.wallet("alice") == [Coupon(
        code="QZ23456789", name="满30减5券", value_yuan=5, condition="", issued_at=1,
        expires_at=9999999999, expires="2286-11-20", source="campaign:c1")]
    assert await store.code_owner("QZ98765432") == "bob"
    assert [(s.user, s.score) for s in await store.leaderboard("g1", 5)] == [
        ("alice", 120), ("bob", 40)]
    assert await store.issued_count("c1") == 2 and await store.prize_issued("big") == 1
    assert await store.reward_issued("americano") == 3
    assert [e["reason"] for e in await store.ledger("alice")] == ["checkin", "coupon"]
    assert len(await redis_client.xrange(store.keys.drawlog)) == 1
    assert 0 < await redis_client.ttl(store.keys.draws("alice", "2026-11-22")) <= 3600

    rules = CheckinRules.parse_obj({"base_points": 5})
    # a WeCom retry of a message answered before the upgrade still gets its first answer
    replay = await store.check_in(Turn(user="alice", msgid="msg-1", now=1, group="g1"), rules,
                                  today="2026-11-23", yesterday="2026-11-22")
    assert (replay.status, replay.points) == ("checked_in", 120)
    assert [(s.user, s.score) for s in await store.leaderboard("g1", 5)] == [
        ("alice", 120), ("bob", 40)], "the replayed check-in was counted again"
    today = await store.check_in(Turn(user="alice", msgid="msg-2", now=2, group="g1"), rules,
                                 today="2026-11-23", yesterday="2026-11-22")
    assert (today.streak, today.points) == (7, 125)


async def test_an_interrupted_move_finishes_on_the_next_start(
    redis_client: AsyncRedis, redis_target: RedisTarget, store: GameStore
) -> None:
    _old_layout(redis_target)
    r = sync_client(redis_target.url, cluster=redis_target.cluster, decode_responses=True)
    # the first run copied the member and two ledger entries, then died
    r.restore(store.keys.member("alice"), 0, r.dump(OLD + "member:alice"))
    r.xadd(store.keys.ledger("alice"), {"user": "alice", "delta": 5, "reason": "checkin"},
           id=f"{RECENT}-1")
    migrate(r, TEST_BRAND)
    r.close()
    assert (await store.member_stats("alice")).points == 120
    assert [e["reason"] for e in await store.ledger("alice")] == ["checkin", "coupon"]
    assert [e["reason"] for e in await store.ledger("bob")] == ["checkin"]
