"""Did it help? Check-ins in the 2 hours after a reminder against the same hours on days
without one; claims after a coupon post; opt-outs on days with a promotion."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from qunzhu import metrics
from qunzhu.campaign_effect import effect
from qunzhu.campaign_status import StatusBook
from qunzhu.campaigns import Campaign
from qunzhu.config import SHANGHAI
from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis
from tests.campaigns.scheduling import BRAND

pytestmark = pytest.mark.redis
TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)


def moment(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def campaign(**extra: object) -> Campaign:
    return Campaign.parse_obj({"id": "morning", "name": "每日打卡提醒", "text": "打卡啦",
                               "schedule": {"daily": "09:00"}, "promotional": False, **extra})


async def sent(book: StatusBook, campaign_id: str, group: str, day: date) -> None:
    at = moment(day, 9)
    await book.record(campaign_id, group, at, "sent", "ok", at + timedelta(seconds=5))


async def test_check_ins_after_the_reminder_against_the_same_hours_without_one(
    redis_client: AsyncRedis,
) -> None:
    book = StatusBook(redis_client, BRAND.id)
    events = []
    for n in range(7):  # a week before the reminder: one check-in at 09:30 a day
        day = date(2026, 11, 15) + timedelta(days=n)
        events.append(Event(Kind.CHECKIN, f"before{n}", "g1", f"u{n}",
                            moment(day, 9, 30).timestamp(), {"streak": 1}))
    for n in range(4):  # with the reminder: three a day, two of them within two hours
        day = date(2026, 11, 22) + timedelta(days=n)
        await sent(book, "morning", "g1", day)
        for m, (hour, minute) in enumerate(((9, 10), (10, 40), (15, 0))):
            events.append(Event(Kind.CHECKIN, f"with{n}-{m}", "g1", f"v{m}",
                                moment(day, hour, minute).timestamp(), {"streak": 2}))
    await metrics.record(redis_client, BRAND.id, events)

    result = (await effect(redis_client, BRAND.id, campaign(), book, TODAY, NOW, 7)).to_json()
    assert result["measure"] == "checkins" and result["posts_measured"] == 4
    assert result["after"] == 2.0, "09:00–10:59 on the four days with a reminder"
    assert result["baseline_days"] == 7, "the week before: days with no data say nothing"
    assert result["baseline"] == 1.0
    assert result["lift"] == 1.0
    assert result["optouts_per_day_with"] is None, "only asked of promotional campaigns"


async def test_a_post_whose_two_hours_are_not_over_is_not_measured_yet(
    redis_client: AsyncRedis,
) -> None:
    book = StatusBook(redis_client, BRAND.id)
    await sent(book, "morning", "g1", TODAY)
    early = moment(TODAY, 10, 30)
    result = await effect(redis_client, BRAND.id, campaign(), book, TODAY, early, 7)
    assert result.posts_measured == 0 and result.after is None and result.lift is None


async def test_claims_after_a_coupon_post_and_opt_outs_on_days_with_a_promotion(
    redis_client: AsyncRedis,
) -> None:
    book = StatusBook(redis_client, BRAND.id)
    rush = campaign(id="rush", text="{券名}开抢", coupon="cut_30_5", promotional=True)
    await sent(book, "rush", "g1", date(2026, 11, 24))
    await metrics.record(redis_client, BRAND.id, [
        Event(Kind.CLAIM, "c1", "g1", "u1", moment(date(2026, 11, 24), 9, 20).timestamp(),
              {"campaign": "cut_30_5"}),
        Event(Kind.CLAIM, "c2", "g1", "u2", moment(date(2026, 11, 24), 10, 5).timestamp(),
              {"campaign": "cut_30_5"}),
        Event(Kind.OPTOUT, "o1", "g1", "u3", moment(date(2026, 11, 24), 9, 30).timestamp(),
              {"on": True}),
        Event(Kind.CLAIM, "c0", "g1", "u4", moment(date(2026, 11, 20), 9, 40).timestamp(),
              {"campaign": "cut_30_5"})])

    result = await effect(redis_client, BRAND.id, rush, book, TODAY, NOW, 7)
    assert result.measure == "claims" and result.after == 2.0 and result.baseline == 1.0
    assert result.baseline_days == 1, "the one day without a post on which anything happened"
    assert result.optouts_per_day_with == 1.0
    assert result.optouts_per_day_without == 0.0
