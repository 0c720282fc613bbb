"""Operations that span Redis Cluster slots: a crash between two steps is finished by the
message's next delivery, and never pays, charges or issues twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from actions.codes import new_code
from actions.gamekeys import GameKeys
from actions.store import GameStore, Turn
from qunzhu.config import LuckyDraw
from qunzhu.redisconn import key_slot
from tests.test_store_redis import (
    NOW,
    PRIZES,
    _checkin,
    _claim,
    _give_points,
    _redeem,
    campaign,
    coupon,
)

pytestmark = pytest.mark.redis

Step = Callable[..., Awaitable[Any]]


def crash_once(store: GameStore, step: str, *, after: bool = False) -> None:
    """The process dies once at `step`: before it runs, or after it ran but before its answer
    arrived (the next delivery of the same message then runs the whole operation again)."""
    real: Step = getattr(store, step)
    crashed = False

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal crashed
        if crashed:
            return await real(*args, **kwargs)
        crashed = True
        if after:
            await real(*args, **kwargs)
        raise RedisConnectionError(f"killed at {step}")

    setattr(store, step, flaky)


async def _retried(attempt: Callable[[], Awaitable[Any]]) -> Any:
    with pytest.raises(RedisConnectionError):
        await attempt()
    return await attempt()


@pytest.mark.parametrize("after", [False, True])
async def test_a_check_in_cut_before_the_leaderboard_is_counted_once(
    store: GameStore, after: bool
) -> None:
    crash_once(store, "_count_checkin", after=after)
    result = await _retried(lambda: _checkin(store, "m1", "2026-11-01", "2026-10-31"))
    assert result.status == "checked_in"
    [row] = await store.leaderboard("g1", 10)
    assert (row.user, row.score) == ("u1", 5)
    assert (await store.member_stats("u1")).points == 5


@pytest.mark.parametrize("step", ["_begin_claim", "_reserve_claim", "_finish_claim"])
@pytest.mark.parametrize("after", [False, True])
async def test_a_claim_cut_between_stock_and_wallet_issues_one_coupon(
    store: GameStore, step: str, after: bool
) -> None:
    crash_once(store, step, after=after)
    result = await _retried(lambda: _claim(store, "u", "m1", stock=5, limit=3))
    assert result.status == "issued"
    assert await store.issued_count("c1") == 1
    [held] = await store.wallet("u")
    assert held.code == result.code and await store.code_owner(result.code) == "u"
    assert len(await store.ledger("u")) == 1
    assert await _claim(store, "u", "m1", stock=5, limit=3) == result  # and replays


async def test_a_claim_cut_after_its_reservation_is_finished_for_that_campaign(
    store: GameStore,
) -> None:
    crash_once(store, "_finish_claim")
    with pytest.raises(RedisConnectionError):
        await _claim(store, "u", "m1", stock=5)
    assert await store.claim_under_way("u", "m1") == "c1"
    refused = await _claim(store, "u", "m2", stock=5)  # a new message: the limit is spent
    assert refused.status == "limit_reached"
    assert (await _claim(store, "u", "m1", stock=5)).status == "issued"
    assert await store.claim_under_way("u", "m1") is None
    assert await store.issued_count("c1") == 1 and len(await store.wallet("u")) == 1


async def test_a_retried_claim_leaves_no_code_registered_that_nobody_holds(
    store: GameStore,
) -> None:
    crash_once(store, "_finish_claim")
    first_code, retry_code = new_code(), new_code()
    c1 = campaign(stock=5, limit=1)
    turn = Turn(user="u", msgid="m1", now=NOW)
    with pytest.raises(RedisConnectionError):
        await store.claim_coupon(turn, c1, coupon(first_code, "券"))
    result = await store.claim_coupon(turn, c1, coupon(retry_code, "券"))
    assert result.code == first_code  # the code the campaign reserved is the one issued
    assert await store.code_owner(retry_code) is None


@pytest.mark.parametrize("step", ["_pay_redeem", "_hold_reward", "_settle_redeem"])
@pytest.mark.parametrize("after", [False, True])
async def test_a_redeem_cut_between_paying_and_the_coupon_charges_once(
    store: GameStore, step: str, after: bool
) -> None:
    await _give_points(store, "u", 150)
    crash_once(store, step, after=after)
    result = await _retried(lambda: _redeem(store, "u", "m1", stock=3))
    assert result.status == "redeemed" and result.points == 50
    assert (await store.member_stats("u")).points == 50
    [held] = await store.wallet("u")
    assert held.code == result.code and await store.code_owner(result.code) == "u"
    assert await store.reward_issued("r1") == 1


async def test_a_member_who_cannot_pay_never_takes_the_last_unit(store: GameStore) -> None:
    await _give_points(store, "poor", 10)
    await _give_points(store, "rich", 500)
    poor, rich = await asyncio.gather(_redeem(store, "poor", "m1", stock=1),
                                      _redeem(store, "rich", "m2", stock=1))
    assert (poor.status, rich.status) == ("insufficient", "redeemed")
    assert await store.reward_issued("r1") == 1


async def test_stock_gone_after_paying_gives_the_points_back(store: GameStore) -> None:
    await _give_points(store, "a", 100)
    await _give_points(store, "b", 100)
    first = await _redeem(store, "a", "m1", stock=1)
    crash_once(store, "_settle_redeem")
    late = await _retried(lambda: _redeem(store, "b", "m2", stock=1))
    assert (first.status, late.status, late.points) == ("redeemed", "sold_out", 100)
    assert (await store.member_stats("b")).points == 100
    assert [e["reason"] for e in await store.ledger("b")] == ["redeem", "refund"]
    assert await store.wallet("b") == [] and await store.reward_issued("r1") == 1
    assert await _redeem(store, "b", "m2", stock=5) == late  # the answer stays


async def _draw(store: GameStore, msgid: str, r: int, *, cost: int = 10) -> Any:
    code = new_code()
    rules = LuckyDraw.parse_obj({"daily_limit": 3, "cost_points": cost, "prizes": PRIZES})
    return await store.draw(Turn(user="u", group="g", msgid=msgid, now=NOW), rules,
                            today="2026-11-01", r=r, code=code,
                            coupons={"big": coupon(code, "大奖")})


@pytest.mark.parametrize("step", ["_pay_draw", "_pick_prize", "_settle_draw"])
@pytest.mark.parametrize("after", [False, True])
async def test_a_draw_cut_between_paying_and_winning_pays_and_wins_once(
    store: GameStore, step: str, after: bool
) -> None:
    await _give_points(store, "u", 100)
    crash_once(store, step, after=after)
    result = await _retried(lambda: _draw(store, "m1", r=0))
    assert (result.status, result.prize, result.draws_left) == ("drawn", "big", 2)
    assert await store.prize_issued("big") == 1
    assert len(await store._r.xrange(store.keys.drawlog)) == 1
    assert (await store.member_stats("u")).points == 90
    [won] = await store.wallet("u")
    assert won.code == result.code and await store.code_owner(result.code) == "u"
    assert await _draw(store, "m1", r=1) == result  # a later delivery replays the win


async def test_a_points_prize_is_credited_once_after_a_cut(store: GameStore) -> None:
    await _give_points(store, "u", 10)
    crash_once(store, "_settle_draw", after=True)
    result = await _retried(lambda: _draw(store, "m1", r=1))
    assert (result.prize, result.points) == ("pts", 20)  # 10 - 10 + 20
    assert (await store.member_stats("u")).points == 20
    assert [e["reason"] for e in await store.ledger("u")] == ["draw_cost", "draw_prize"]


def test_each_kind_of_state_has_its_own_slot() -> None:
    k = GameKeys("brand")
    slots = {
        "member": key_slot(k.member("u1")),
        "other member": key_slot(k.member("u2")),
        "group": key_slot(k.leaderboard("g1")),
        "campaign": key_slot(k.issued("c1")),
        "code": key_slot(k.code("QZ23456789")),
        "rewards": key_slot(k.rewards_issued),
        "prizes": key_slot(k.prizes_issued),
    }
    assert len(set(slots.values())) == len(slots), slots
    # and each script's keys share one slot
    assert {key_slot(x) for x in (k.member("u1"), k.wallet("u1"), k.ledger("u1"),
                                  k.draws("u1", "2026-11-01"), k.paid("draw", "u1", "m"),
                                  k.under_way("u1", "m"),
                                  k.result("claim", "u1", "m"))} == {slots["member"]}
    assert {key_slot(x) for x in (k.leaderboard("g1"), k.leaderboard_seq("g1"),
                                  k.counted("g1", "u1", "m"))} == {slots["group"]}
    assert {key_slot(x) for x in (k.issued("c1"), k.claims("c1"),
                                  k.claim("c1", "u1", "m"))} == {slots["campaign"]}
    assert {key_slot(x) for x in (k.rewards_issued, k.reward_hold("u1", "m"))} == {
        slots["rewards"]}
    assert {key_slot(x) for x in (k.prizes_issued, k.drawlog, k.pick("u1", "m"))} == {
        slots["prizes"]}


async def test_four_concurrent_deliveries_of_each_message_have_one_effect(
    store: GameStore,
) -> None:
    await _give_points(store, "u", 100)
    claims = await asyncio.gather(*(_claim(store, "u", "c", stock=5, limit=3)
                                    for _ in range(4)))
    redeems = await asyncio.gather(*(_redeem(store, "u", "r", cost=30, stock=3)
                                     for _ in range(4)))
    draws = await asyncio.gather(*(_draw(store, "d", r=0) for _ in range(4)))
    for results in (claims, redeems, draws):
        assert all(r == results[0] for r in results), results
    assert await store.issued_count("c1") == 1 and await store.reward_issued("r1") == 1
    assert await store.prize_issued("big") == 1
    assert (await store.member_stats("u")).points == 100 - 30 - 10
    codes = {c.code for c in await store.wallet("u")}
    assert codes == {claims[0].code, redeems[0].code, draws[0].code}
    for code in codes:
        assert await store.code_owner(code) == "u"
    registered = [k async for k in store._r.scan_iter(match=store.keys.code("*"))]
    assert await store.claim_under_way("u", "c") is None
    assert len(registered) == 3, "codes registered by the other deliveries are removed"
    assert [e["reason"] for e in await store.ledger("u")] == [
        "coupon", "redeem", "draw_cost", "draw_prize"]
