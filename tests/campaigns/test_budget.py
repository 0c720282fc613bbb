"""The anti-spam budget at every edge, on a real Redis (server and cluster), virtual clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta

import pytest

from bot.common.budget import Budget, Verdict, clamp, first_allowed, plan
from qunzhu.campaigns import CEILING, Limits
from qunzhu.config import SHANGHAI
from qunzhu.redisconn import AsyncRedis

pytestmark = pytest.mark.redis
DAY = datetime(2026, 11, 25, tzinfo=SHANGHAI)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    """A local time on the test day (or `days` later)."""
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


async def test_quiet_hours_hold_back_every_post_from_22_00_to_08_00(
    redis_client: AsyncRedis,
) -> None:
    budget = Budget(redis_client)
    cases = [(at(21, 59), True), (at(22, 0), False), (at(23, 59), False),
             (at(0, 0, days=1), False), (at(7, 59, days=1), False), (at(8, 0, days=1), True)]
    for i, (when, allowed) in enumerate(cases):
        verdict = await budget.decide("g1", f"svc-{i}", "service", when, CEILING)
        assert verdict.sent is allowed, when
        if not allowed:
            assert verdict.reason == "quiet_hours"


async def test_the_fourth_promotion_of_a_day_waits_for_the_next_local_day(
    redis_client: AsyncRedis,
) -> None:
    budget = Budget(redis_client)
    for i, hour in enumerate((8, 10, 12)):
        assert (await budget.decide("g1", f"p{i}", "promotional", at(hour), CEILING)).sent
    held = await budget.decide("g1", "p3", "promotional", at(21, 59), CEILING)
    assert held == Verdict(False, "daily_cap")
    assert plan(held, at(21, 59), at(12, days=1), CEILING).at == at(8, days=1)
    assert plan(held, at(21, 59), at(23), CEILING).action == "drop"
    # 00:00 Asia/Shanghai starts a new count (quiet until 08:00).
    assert (await budget.decide("g1", "p3", "promotional", at(8, days=1), CEILING)).sent


async def test_two_promotions_are_at_least_the_gap_apart(redis_client: AsyncRedis) -> None:
    budget = Budget(redis_client)
    assert (await budget.decide("g1", "a", "promotional", at(10), CEILING)).sent
    held = await budget.decide("g1", "b", "promotional", at(11, 59), CEILING)
    assert held.reason == "spacing" and held.retry_at == at(12)
    assert plan(held, at(11, 59), at(13), CEILING).at == at(12)
    assert plan(held, at(11, 59), at(11, 59), CEILING).action == "drop"
    assert (await budget.decide("g1", "b", "promotional", at(12), CEILING)).sent


async def test_the_gap_holds_across_midnight(redis_client: AsyncRedis) -> None:
    budget = Budget(redis_client)
    wide = Limits(3, 12 * 60, time(22, 0), time(8, 0), 10)  # an operator's 12-hour gap
    assert (await budget.decide("g1", "late", "promotional", at(21, 30), wide)).sent
    held = await budget.decide("g1", "early", "promotional", at(8, days=1), wide)
    assert held.reason == "spacing" and held.retry_at == at(9, 30, days=1)


async def test_a_spacing_retry_that_lands_in_quiet_hours_moves_to_the_morning() -> None:
    held = Verdict(False, "spacing", at(22, 30))
    assert plan(held, at(21), at(12, days=1), CEILING).at == at(8, days=1)
    assert plan(Verdict(False, "quiet_hours"), at(23), at(8, days=1), CEILING).at == \
        at(8, days=1)
    assert plan(Verdict(False, "quiet_hours"), at(23), at(7, 59, days=1), CEILING).action == \
        "drop"


async def test_service_posts_have_their_own_cap_and_leave_promotions_alone(
    redis_client: AsyncRedis,
) -> None:
    budget = Budget(redis_client)
    sent = [(await budget.decide("g1", f"s{i}", "service", at(8 + i), CEILING)).sent
            for i in range(11)]
    assert sent == [True] * 10 + [False]
    assert (await budget.decide("g1", "s10", "service", at(19, 30), CEILING)).reason == \
        "service_cap"
    assert (await budget.decide("g1", "promo", "promotional", at(19, 30), CEILING)).sent


async def test_service_posts_are_spaced_too_and_a_held_one_waits_for_its_slot(
    redis_client: AsyncRedis,
) -> None:
    budget = Budget(redis_client)
    assert (await budget.decide("g1", "a", "service", at(9), CEILING)).sent
    held = await budget.decide("g1", "b", "service", at(9, 10), CEILING)
    assert not held.sent and held.reason == "service_spacing"
    assert held.retry_at == at(9, CEILING.service_gap_minutes)
    assert plan(held, at(9, 10), at(12), CEILING).at == at(9, 30)
    assert (await budget.decide("g1", "b", "service", at(9, 30), CEILING)).sent


async def test_asking_again_for_the_same_occurrence_sends_it_once_and_counts_once(
    redis_client: AsyncRedis,
) -> None:
    budget = Budget(redis_client)
    first = await budget.decide("g1", "daily:0900", "promotional", at(9), CEILING)
    again = await budget.decide("g1", "daily:0900", "promotional", at(9, 1), CEILING)
    assert (first.reason, again.sent, again.reason) == ("ok", True, "again")
    assert (await budget.decide("g1", "other", "promotional", at(11), CEILING)).sent, \
        "the retry neither counted nor moved the gap"


async def test_many_senders_at_once_let_exactly_one_promotion_through(
    redis_client: AsyncRedis,
) -> None:
    budget = Budget(redis_client)
    verdicts = await asyncio.gather(*(
        budget.decide("g1", f"race-{i}", "promotional", at(10), CEILING) for i in range(30)))
    assert sum(v.sent for v in verdicts) == 1
    assert {v.reason for v in verdicts if not v.sent} == {"spacing"}


async def test_groups_have_budgets_of_their_own(redis_client: AsyncRedis) -> None:
    budget = Budget(redis_client)
    for chatid in ("g1", "g2", "g3"):
        assert (await budget.decide(chatid, "p", "promotional", at(10), CEILING)).sent


async def test_limits_looser_than_the_ceilings_are_clamped_to_them(
    redis_client: AsyncRedis,
) -> None:
    loose = Limits(promo_per_day=50, promo_gap_minutes=0, quiet_start=time(0, 0),
                   quiet_end=time(0, 0), service_per_day=500)
    assert clamp(loose) == CEILING
    budget = Budget(redis_client)
    assert not (await budget.decide("g1", "night", "service", at(23), loose)).sent
    assert (await budget.decide("g1", "a", "promotional", at(9), loose)).sent
    assert (await budget.decide("g1", "b", "promotional", at(9, 1), loose)).reason == "spacing"


def test_the_first_allowed_minute_skips_the_quiet_hours() -> None:
    assert first_allowed(at(21), CEILING) == at(21)
    assert first_allowed(at(22), CEILING) == at(8, days=1)
    assert first_allowed(at(3), CEILING) == at(8)
