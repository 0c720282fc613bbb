"""The scheduler on a real Redis (server and cluster) and a virtual clock: each occurrence
gets one outcome — queued once, deferred, dropped or skipped — with its reason on record."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from bot.campaigns.scheduler import scheduler_keys
from bot.common.clock import VirtualClock
from bot.common.posts import Post
from qunzhu import metrics
from qunzhu.campaign_status import StatusBook
from qunzhu.config import SHANGHAI
from qunzhu.events import Event, Kind
from qunzhu.names import NameBook
from qunzhu.optouts import OptOuts
from qunzhu.redisconn import AsyncRedis
from tests.campaigns.scheduling import (
    BRAND,
    at,
    campaigns,
    directory,
    make_scheduler,
    outbox,
    run_until,
)

pytestmark = pytest.mark.redis
DAY = datetime(2026, 11, 25)  # a Wednesday


async def test_a_daily_reminder_is_queued_once_per_group_with_that_groups_numbers(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 8, 59))
    file = campaigns({"id": "morning", "text": "{群名}早上好！今天已有 {今日打卡人数} 人打卡",
                      "schedule": {"daily": "09:00"}})
    scheduler = make_scheduler(redis_client, file, directory(["g1", "g2"]), clock)
    await metrics.record(redis_client, BRAND.id, [
        Event(Kind.CHECKIN, "e1", "g1", "u1", at(DAY, 8, 1), {"streak": 1, "points": 5})])

    assert await scheduler.tick(), "the only scheduler leads"
    assert await outbox(redis_client) == [], "nothing is due before 09:00"
    clock.advance(90)
    await scheduler.tick()
    await scheduler.tick()  # asking again changes nothing

    posts = sorted(await outbox(redis_client), key=lambda p: p["group"])
    assert [(p["group"], p["content"], p["source"]) for p in posts] == [
        ("g1", "g1群早上好！今天已有 1 人打卡", "morning"),
        ("g2", "g2群早上好！今天已有 0 人打卡", "morning")]
    summary = await scheduler.status.summary("morning", DAY.date(), 1)
    assert summary["totals"] == {"sent": 2, "deferred": 0, "dropped": 0, "skipped": 0}
    assert summary["groups"]["g1"]["last"]["post"] == posts[0]["id"]


async def test_yesterdays_top_three_are_named_and_whoever_opted_out_is_not_mentioned(
    redis_client: AsyncRedis,
) -> None:
    yesterday = datetime(2026, 11, 24)
    await metrics.record(redis_client, BRAND.id, [
        Event(Kind.CHECKIN, f"c{n}", "g1", user, at(yesterday, 8, n), {"streak": streak})
        for n, (user, streak) in enumerate(
            [("u_short", 1), ("u_long", 9), ("u_mid", 4), ("u_mid2", 4)])])
    await NameBook(redis_client, BRAND.id).remember_group(
        "g1", "一群", {"u_long": "阿强", "u_mid": "小红", "u_mid2": "小明"}, 600)
    await OptOuts(redis_client, BRAND.id).choose("u_mid", True)
    clock = VirtualClock(at(DAY, 8, 59))
    file = campaigns({"id": "morning", "text": "昨天打卡最勤快的是 {昨日前三} 👏",
                      "schedule": {"daily": "09:00"}, "mention_top3": True})
    scheduler = make_scheduler(redis_client, file, directory(["g1"]), clock)

    await scheduler.tick()
    clock.advance(60)
    await scheduler.tick()

    [post] = await outbox(redis_client)
    assert post["content"] == "昨天打卡最勤快的是 阿强、小红、小明 👏", "streak first, then earlier"
    assert post["mention"] == "u_long,u_mid2", "u_mid opted out of being @-mentioned"
    assert "u_" not in post["content"], "people are shown by name, never by id"


async def test_a_group_missing_what_the_template_needs_is_skipped_with_the_reason(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 8, 59))
    file = campaigns(
        {"id": "top", "text": "昨日之星：{昨日前三}", "schedule": {"daily": "09:00"}},
        {"id": "size", "text": "本群已有 {群人数} 位伙伴", "schedule": {"daily": "09:00"}})
    scheduler = make_scheduler(redis_client, file, directory(["quiet", "known"]), clock,
                               members={"known": 42})
    await scheduler.tick()
    clock.advance(60)
    await scheduler.tick()

    assert [(p["group"], p["content"]) for p in await outbox(redis_client)] == [
        ("known", "本群已有 42 位伙伴")]
    top = await scheduler.status.summary("top", DAY.date(), 1)
    assert top["reasons"] == {"skipped:no_checkins_yesterday": 2}
    size = await scheduler.status.summary("size", DAY.date(), 1)
    assert size["groups"]["quiet"]["last"]["reason"] == "member_count_unknown"
    assert size["totals"]["sent"] == 1


async def test_after_downtime_a_post_within_its_grace_window_goes_late_once_older_ones_are_skipped(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 8, 30))
    file = campaigns(
        {"id": "tight", "text": "早", "schedule": {"daily": "09:00"}, "grace_minutes": 15},
        {"id": "loose", "text": "早安", "schedule": {"daily": "09:00"}, "grace_minutes": 30})
    scheduler = make_scheduler(redis_client, file, directory(["g1"]), clock)
    await scheduler.tick()
    clock.advance(49 * 60)  # down from 08:30 to 09:19
    await scheduler.tick()

    assert [p["content"] for p in await outbox(redis_client)] == ["早安"]
    tight = await scheduler.status.summary("tight", DAY.date(), 1)
    assert tight["reasons"] == {"skipped:late": 1}


async def test_promotions_over_budget_are_deferred_while_timely_and_dropped_after(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 11, 59))
    file = campaigns(
        {"id": "noon", "text": "午间福利", "schedule": {"daily": "12:00"}, "promotional": True},
        {"id": "later", "text": "下午茶", "schedule": {"daily": "12:30"}, "promotional": True,
         "timely_minutes": 180},
        {"id": "stale", "text": "过期了", "schedule": {"daily": "12:40"}, "promotional": True,
         "timely_minutes": 60})
    scheduler = make_scheduler(redis_client, file, directory(["g1"]), clock)
    await scheduler.tick()
    await run_until(scheduler, clock, at(DAY, 12, 44))

    assert [p["content"] for p in await outbox(redis_client)] == ["午间福利"]
    later = await scheduler.status.summary("later", DAY.date(), 1)
    assert later["reasons"] == {"deferred:spacing": 1}
    assert later["groups"]["g1"]["last"]["retry"] == at(DAY, 14, 0), "120 minutes after noon"
    stale = await scheduler.status.summary("stale", DAY.date(), 1)
    assert stale["reasons"] == {"dropped:spacing": 1}, "14:00 is past 12:40 + 60 minutes"

    await run_until(scheduler, clock, at(DAY, 14, 0, 5))
    assert [p["content"] for p in await outbox(redis_client)] == ["午间福利", "下午茶"]
    later = await scheduler.status.summary("later", DAY.date(), 1)
    assert later["totals"] == {"sent": 1, "deferred": 0, "dropped": 0, "skipped": 0}
    _lease, _cursor, deferred = scheduler_keys(BRAND.id)
    assert await redis_client.zcard(deferred) == 0


async def test_a_crash_between_the_budget_and_the_outbox_is_repaired_by_the_next_step(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 11, 59))
    file = campaigns({"id": "noon", "text": "午间福利", "schedule": {"daily": "12:00"},
                      "promotional": True})
    scheduler = make_scheduler(redis_client, file, directory(["g1"]), clock)
    real_enqueue = scheduler._enqueue
    crashes = [ConnectionError("killed after the budget let it through")]

    async def crash_once(post: Post, idem: str) -> str:
        if crashes:
            raise crashes.pop()
        return await real_enqueue(post, idem)

    scheduler._enqueue = crash_once
    await scheduler.tick()
    clock.advance(60)
    with pytest.raises(ConnectionError):
        await scheduler.tick()
    assert await outbox(redis_client) == []
    clock.advance(30 * 60)  # past the grace window: the budget remembers it let it through
    await scheduler.tick()
    await scheduler.tick()

    assert [p["content"] for p in await outbox(redis_client)] == ["午间福利"]
    summary = await scheduler.status.summary("noon", DAY.date(), 1)
    assert summary["totals"]["sent"] == 1


async def test_two_schedulers_share_the_work_and_never_post_twice(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 8, 50))
    file = campaigns({"id": "morning", "text": "早", "schedule": {"daily": "09:00"},
                      "jitter_minutes": 5})
    groups = directory([f"g{n}" for n in range(40)])
    first = make_scheduler(redis_client, file, groups, clock, owner="a", lease_ms=60_000)
    second = make_scheduler(redis_client, file, groups, clock, owner="b", lease_ms=60_000)
    assert await first.tick() and not await second.tick(), "one leads, the other stands by"
    lease, _cursor, _deferred = scheduler_keys(BRAND.id)
    for step in range(30):
        clock.advance(30)
        if step == 12:  # the leader dies; its lease lapses and the other takes over
            await redis_client.delete(lease)
            first = second
        await first.tick()
    posts = await outbox(redis_client)
    assert sorted(p["group"] for p in posts) == sorted(f"g{n}" for n in range(40))


async def test_coupon_posts_follow_the_stock(redis_client: AsyncRedis) -> None:
    from qunzhu.coupons import issued_key
    clock = VirtualClock(at(DAY, 11, 59))
    file = campaigns(
        {"id": "left", "text": "{券名}还剩 {剩余张数} 张", "schedule": {"daily": "12:00"},
         "coupon": "latte_half", "condition": "in_stock"},
        {"id": "gone", "text": "{券名}已抢光，明天再来～", "schedule": {"daily": "12:00"},
         "coupon": "latte_half", "condition": "sold_out"})
    scheduler = make_scheduler(redis_client, file, directory(["g1"]), clock)
    await redis_client.set(issued_key(BRAND.id, "latte_half"), 150)
    await scheduler.tick()
    clock.advance(60)
    await scheduler.tick()
    assert [p["content"] for p in await outbox(redis_client)] == ["拿铁第二杯半价券还剩 50 张"]
    gone = await scheduler.status.summary("gone", DAY.date(), 1)
    assert gone["reasons"] == {"skipped:in_stock": 1}


async def test_days_left_counts_down_to_the_date_and_stops_after_it(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 9, 59))
    file = campaigns({"id": "move", "text": "本群将在 {剩余天数} 天后解散，新群见～",
                      "schedule": {"daily": "10:00"}, "countdown_to": date(2026, 11, 27)})
    scheduler = make_scheduler(redis_client, file, directory(["g1"]), clock)
    await scheduler.tick()
    for _day in range(4):
        clock.advance(60)
        await scheduler.tick()
        clock.advance(24 * 3600 - 60)
        await scheduler.tick()
    assert [p["content"] for p in await outbox(redis_client)] == [
        f"本群将在 {n} 天后解散，新群见～" for n in (2, 1, 0)]
    after = await scheduler.status.summary("move", date(2026, 11, 28), 1)
    assert after["reasons"] == {"skipped:countdown_over": 1}


async def test_a_bug_in_one_groups_post_is_recorded_and_never_blocks_the_others(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 8, 59))
    file = campaigns({"id": "morning", "text": "早", "schedule": {"daily": "09:00"}})
    scheduler = make_scheduler(redis_client, file, directory(["g1", "g2", "g3"]), clock)
    real_render = scheduler._live.render

    async def broken_for_g2(campaign: Any, chatid: str, now: datetime) -> Any:
        if chatid == "g2":
            raise KeyError("a bug")
        return await real_render(campaign, chatid, now)

    scheduler._live.render = broken_for_g2  # type: ignore[method-assign]
    await scheduler.tick()
    await run_until(scheduler, clock, at(DAY, 9, 2))
    assert sorted(p["group"] for p in await outbox(redis_client)) == ["g1", "g3"]
    summary = await scheduler.status.summary("morning", DAY.date(), 1)
    assert summary["reasons"] == {"sent:ok": 2, "skipped:error": 1}


async def test_posts_held_back_to_the_same_moment_keep_their_spread(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 7, 20))
    file = campaigns({"id": "early", "text": "早", "schedule": {"daily": "07:40"},
                      "jitter_minutes": 10, "timely_minutes": 120})
    groups = [f"g{n}" for n in range(50)]
    scheduler = make_scheduler(redis_client, file, directory(groups), clock)
    await scheduler.tick()
    await run_until(scheduler, clock, at(DAY, 7, 55))
    _lease, _cursor, deferred = scheduler_keys(BRAND.id)
    times = [score for _m, score in await redis_client.zrange(deferred, 0, -1, withscores=True)]
    assert len(times) == 50 and min(times) >= at(DAY, 8, 0) * 1000, "after the quiet hours"
    assert len(set(times)) > 40 and max(times) - min(times) > 5 * 60_000, "not all at 08:00:00"


async def test_a_skip_for_lateness_gives_way_when_the_deferred_copy_is_sent(
    redis_client: AsyncRedis,
) -> None:
    book = StatusBook(redis_client, BRAND.id)
    when = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI)
    await book.record("c", "g1", when, "deferred", "spacing", when)
    await book.record("c", "g1", when, "skipped", "late", when)  # a restarted leader's view
    assert await book.record("c", "g1", when, "sent", "ok", when, post="p1")
    assert not await book.record("c", "g1", when, "skipped", "late", when), "sent is final"
    counts = await book.counts("c", when.date())
    assert counts["sent"] == 1 and counts["skipped"] == 0 and counts["deferred"] == 0
