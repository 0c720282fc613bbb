"""Every Lua script against a real redis-server, including under concurrency."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from actions.clock import SHANGHAI
from actions.codes import new_code
from actions.results import CheckinResult, ClaimResult, Coupon, DrawResult, RedeemResult
from actions.store import GameStore, Turn
from qunzhu.config import CheckinRules, CouponCampaign, LuckyDraw, Prize, Reward
from tests.helpers import key_count

pytestmark = pytest.mark.redis

NOW = 1_800_000_000


async def _checkin(store: GameStore, msgid: str, today: str, yesterday: str,
                   user: str = "u1", group: str = "g1") -> CheckinResult:
    return await store.check_in(
        Turn(user=user, group=group, msgid=msgid, now=NOW),
        CheckinRules.parse_obj({"base_points": 5, "streak_bonus": {3: 5, 7: 20}}), today=today,
        yesterday=yesterday,
    )


async def test_checkin_once_per_day_and_streak(store: GameStore) -> None:
    first = await _checkin(store, "m1", "2026-11-01", "2026-10-31")
    assert first == CheckinResult(status="checked_in", streak=1, points=5, earned=5,
                                  checkins=1, best=1)
    again = await _checkin(store, "m2", "2026-11-01", "2026-10-31")
    assert again.status == "already" and again.points == 5
    day2 = await _checkin(store, "m3", "2026-11-02", "2026-11-01")
    day3 = await _checkin(store, "m4", "2026-11-03", "2026-11-02")
    assert (day2.streak, day3.streak, day3.earned) == (2, 3, 10)
    skipped = await _checkin(store, "m5", "2026-11-05", "2026-11-04")
    assert skipped.streak == 1 and skipped.best == 3
    assert (await store.member_stats("u1")).points == 5 + 5 + 10 + 5


async def test_checkin_replays_first_result_for_same_msgid(store: GameStore) -> None:
    first = await _checkin(store, "same", "2026-11-01", "2026-10-31")
    repeat = await _checkin(store, "same", "2026-11-02", "2026-11-01")
    assert repeat == first
    assert (await store.member_stats("u1")).checkins == 1


async def test_clock_going_backwards_never_checks_in_twice(store: GameStore) -> None:
    await _checkin(store, "m1", "2026-11-02", "2026-11-01")
    back = await _checkin(store, "m2", "2026-11-01", "2026-10-31")
    assert back.status == "already"


async def test_50_concurrent_checkins_by_one_member_succeed_once(store: GameStore) -> None:
    results = await asyncio.gather(
        *(_checkin(store, f"m{i}", "2026-11-01", "2026-10-31") for i in range(50))
    )
    assert sum(r.status == "checked_in" for r in results) == 1
    stats = await store.member_stats("u1")
    assert (stats.points, stats.checkins) == (5, 1)
    assert await store.leaderboard("g1", 10) != []


async def test_same_msgid_four_times_concurrently_has_one_effect(store: GameStore) -> None:
    results = await asyncio.gather(
        *(_checkin(store, "dup", "2026-11-01", "2026-10-31") for _ in range(4))
    )
    assert all(r == results[0] for r in results)
    assert (await store.member_stats("u1")).points == 5
    ledger = await store._r.xlen(store.keys.ledger("u1"))
    assert ledger == 1


def coupon(code: str, name: str) -> Coupon:
    return Coupon(code=code, name=name, value_yuan=5, condition="", issued_at=NOW,
                  expires_at=NOW + 999, expires="2027-01-01", source="test")


def _at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=SHANGHAI)


def campaign(*, stock: int, limit: int, window: int = 100) -> CouponCampaign:
    return CouponCampaign.parse_obj({
        "id": "c1", "name": "满30减5券", "value_yuan": 5, "valid_days": 7, "stock": stock,
        "per_member_limit": limit, "starts": _at(NOW - window), "ends": _at(NOW + window)})


async def _claim(store: GameStore, user: str, msgid: str, *, stock: int = 50, limit: int = 1,
                 now: int = NOW) -> ClaimResult:
    code = new_code()
    return await store.claim_coupon(Turn(user=user, msgid=msgid, now=now),
                                    campaign(stock=stock, limit=limit), coupon(code, "满30减5券"))


async def test_500_concurrent_claims_by_200_members_issue_exactly_stock(
    store: GameStore,
) -> None:
    users = [f"user{i % 200}" for i in range(500)]
    results = await asyncio.gather(
        *(_claim(store, u, f"msg{i}") for i, u in enumerate(users))
    )
    issued = [(u, r.code) for u, r in zip(users, results, strict=True)
              if r.status == "issued"]
    assert len(issued) == 50
    assert len({u for u, _ in issued}) == 50, "a member got two coupons"
    assert len({c for _, c in issued}) == 50, "a code was issued twice"
    assert await store.issued_count("c1") == 50
    statuses = {r.status for r in results}
    assert statuses <= {"issued", "sold_out", "limit_reached"}
    for user, code in issued:  # recorded before the member is told
        assert code in {c.code for c in await store.wallet(user)}
        assert await store.code_owner(code) == user


async def test_claim_window_and_limit_and_replay(store: GameStore) -> None:
    assert (await _claim(store, "u", "a", now=NOW - 101)).status == "not_started"
    assert (await _claim(store, "u", "b", now=NOW + 101)).status == "ended"
    first = await _claim(store, "u", "c", limit=2)
    second = await _claim(store, "u", "d", limit=2)
    third = await _claim(store, "u", "e", limit=2)
    assert [first.status, second.status, third.status] == [
        "issued", "issued", "limit_reached"]
    assert await _claim(store, "u", "c", limit=2) == first  # the first result, replayed
    assert len(await store.wallet("u")) == 2


async def test_claim_sold_out_changes_nothing(store: GameStore) -> None:
    assert (await _claim(store, "a", "1", stock=1)).status == "issued"
    before = await key_count(store._r)
    sold = await _claim(store, "b", "2", stock=1)
    assert sold.status == "sold_out"
    assert await store.wallet("b") == []
    assert await key_count(store._r) == before + 1  # only the idempotency record


async def test_code_collision_is_refused_without_writes(store: GameStore) -> None:
    first = await _claim(store, "a", "1", limit=5)
    code = first.code
    raw = await store.claim_coupon(Turn(user="b", msgid="2", now=NOW),
                                   campaign(stock=9, limit=1, window=1), coupon(code, "满30减5券"))
    assert raw.status == "code_taken"
    assert await store.issued_count("c1") == 1
    assert await store.code_owner(code) == "a"


async def _give_points(store: GameStore, user: str, points: int) -> None:
    await store._r.hset(store.keys.member(user), "points", points)


async def _redeem(store: GameStore, user: str, msgid: str, cost: int = 100,
                  stock: int | None = None) -> RedeemResult:
    code = new_code()
    reward = Reward.parse_obj({"id": "r1", "name": "美式", "value_yuan": 15, "valid_days": 7,
                               "cost_points": cost, "stock": stock})
    return await store.redeem(Turn(user=user, msgid=msgid, now=NOW), reward, coupon(code, "美式"))


async def test_redeem_is_all_or_nothing(store: GameStore) -> None:
    await _give_points(store, "u", 150)
    ok = await _redeem(store, "u", "a")
    assert ok.status == "redeemed" and ok.points == 50
    poor = await _redeem(store, "u", "b")
    assert poor == RedeemResult(status="insufficient", points=50, short=50)
    assert len(await store.wallet("u")) == 1
    assert (await store.member_stats("u")).points == 50


async def test_concurrent_redeems_never_overdraw(store: GameStore) -> None:
    await _give_points(store, "u", 250)
    results = await asyncio.gather(*(_redeem(store, "u", f"m{i}") for i in range(20)))
    assert sum(r.status == "redeemed" for r in results) == 2
    assert (await store.member_stats("u")).points == 50
    assert len(await store.wallet("u")) == 2


async def test_redeem_stock(store: GameStore) -> None:
    await _give_points(store, "u", 1000)
    results = [await _redeem(store, "u", f"m{i}", cost=10, stock=3) for i in range(5)]
    assert [r.status for r in results] == ["redeemed"] * 3 + ["sold_out"] * 2


PRIZES = [Prize.parse_obj(p) for p in (
    {"id": "big", "name": "大奖", "weight": 1, "stock": 1, "kind": "coupon",
     "coupon": {"name": "大奖", "value_yuan": 50, "valid_days": 7}},
    {"id": "pts", "name": "20 积分", "weight": 1, "kind": "points", "points": 20},
    {"id": "none", "name": "谢谢参与", "weight": 2, "kind": "nothing"},
)]


async def _draw(store: GameStore, user: str, msgid: str, r: int, *, limit: int = 1,
                cost: int = 0, today: str = "2026-11-01") -> DrawResult:
    code = new_code()
    rules = LuckyDraw.parse_obj({"daily_limit": limit, "cost_points": cost, "prizes": PRIZES})
    return await store.draw(Turn(user=user, group="g", msgid=msgid, now=NOW), rules,
                            today=today, r=r, code=code, coupons={"big": coupon(code, "大奖")})


async def test_draw_weighted_pick_and_daily_limit(store: GameStore) -> None:
    assert (await _draw(store, "a", "1", r=0)).prize == "big"
    assert (await _draw(store, "b", "2", r=1)).prize == "pts"
    assert (await _draw(store, "c", "3", r=3)).prize == "none"
    assert (await _draw(store, "a", "4", r=1)).status == "limit_reached"
    assert (await _draw(store, "a", "5", r=1, today="2026-11-02")).status == "drawn"
    assert (await store.member_stats("b")).points == 20


async def test_sold_out_prize_falls_to_consolation_never_oversold(store: GameStore) -> None:
    results = await asyncio.gather(*(_draw(store, f"u{i}", f"m{i}", r=0) for i in range(30)))
    won = [r for r in results if r.prize == "big"]
    assert len(won) == 1
    assert sum(r.fell_back for r in results) == 29
    assert await store.prize_issued("big") == 1
    log = await store._r.xrange(store.keys.drawlog)
    assert len(log) == 30
    assert {fields[b"r"] for _, fields in log} == {b"0"}


async def test_draw_cost_checked_before_any_write(store: GameStore) -> None:
    poor = await _draw(store, "u", "1", r=3, cost=10)
    assert poor.status == "insufficient"
    assert await store._r.get(store.keys.draws("u", "2026-11-01")) is None
    await _give_points(store, "u", 10)
    paid = await _draw(store, "u", "2", r=3, cost=10)
    assert paid.status == "drawn" and paid.points == 0
