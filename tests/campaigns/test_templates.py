"""The built-in templates run as an operator would use them: a coupon rush that follows its
stock and costs one promotion, a group move that counts down, a reminder that names people."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from bot.common.clock import VirtualClock
from qunzhu import campaign_templates as templates
from qunzhu.campaigns import CampaignsFile
from qunzhu.config import SHANGHAI
from qunzhu.coupons import issued_key
from qunzhu.redisconn import AsyncRedis
from tests.campaigns.scheduling import (
    BRAND,
    GAMES,
    at,
    directory,
    make_scheduler,
    outbox,
    run_until,
)

pytestmark = pytest.mark.redis
DAY = datetime(2026, 11, 25)
OPENS = datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)


def file_of(*docs: list[dict[str, object]]) -> CampaignsFile:
    return CampaignsFile.parse_obj({"campaigns": [d for group in docs for d in group]})


def test_every_built_in_template_is_a_valid_campaign() -> None:
    docs = (templates.checkin_reminder() + templates.weekly_recap()
            + templates.coupon_rush(coupon="cut_30_5", opens=OPENS)
            + templates.migration(new_group="https://work.weixin.qq.com/gm/x",
                                  notice_at=OPENS, closes_on=date(2026, 12, 5)))
    campaigns = templates.validated(docs)
    assert [c.name for c in campaigns] == [
        "每日打卡提醒", "周报", "限时抢券·倒计时", "限时抢券·开抢", "限时抢券·还剩",
        "限时抢券·已抢光", "服务升级通知", "新群领福利", "解散倒计时"]
    rush = [c for c in campaigns if c.id.startswith("rush")]
    assert [c.promotional for c in rush] == [False, True, False, False], "one promotion a rush"


@pytest.mark.parametrize("claimed_by_half_past, expected", [
    (150, ["⏰ 还有 10 分钟，{name}就要开抢啦，准备好 @我 说「领券」～",
           "🎉 {name}开抢啦！一共 {total} 张，@我 说「领券」先到先得～",
           "🔥 {name}还剩 50 张，还没抢到的抓紧～"]),
    (200, ["⏰ 还有 10 分钟，{name}就要开抢啦，准备好 @我 说「领券」～",
           "🎉 {name}开抢啦！一共 {total} 张，@我 说「领券」先到先得～",
           "{name}已经抢光啦，谢谢大家的热情 🙏 下次活动见～"]),
])
async def test_a_coupon_rush_follows_its_stock(redis_client: AsyncRedis, claimed_by_half_past: int,
                                               expected: list[str]) -> None:
    coupon = next(c for c in GAMES.coupons if c.id == "latte_half")
    clock = VirtualClock(at(DAY, 11, 40))
    scheduler = make_scheduler(redis_client, file_of(templates.coupon_rush(
        coupon=coupon.id, opens=OPENS, groups=["g1"])), directory(["g1"]), clock)
    await scheduler.tick()
    await run_until(scheduler, clock, at(DAY, 12, 10))
    await redis_client.set(issued_key(BRAND.id, coupon.id), claimed_by_half_past)
    await run_until(scheduler, clock, at(DAY, 14, 0))

    wanted = [e.format(name=coupon.name, total=coupon.stock) for e in expected]
    assert [p["content"] for p in await outbox(redis_client)] == wanted


async def test_a_group_move_announces_counts_down_and_calls_last(redis_client: AsyncRedis) -> None:
    link = "https://work.weixin.qq.com/gm/new"
    clock = VirtualClock(at(DAY, 9, 0))
    scheduler = make_scheduler(redis_client, file_of(templates.migration(
        new_group=link, notice_at=datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI),
        closes_on=date(2026, 11, 29), groups=["g1"])), directory(["g1"]), clock)
    await scheduler.tick()
    await run_until(scheduler, clock, at(datetime(2026, 11, 29), 12, 0), step_s=60)

    posts = [p["content"] for p in await outbox(redis_client)]
    assert posts[0].startswith("📢 服务升级通知") and "11月29日" in posts[0]
    assert [p.split("本群还有 ")[1][:1] for p in posts if "本群还有" in p] == ["3", "2", "1"]
    assert posts[-1].startswith("⏳ 最后提醒") and link in posts[-1]
    assert len(posts) == 5


async def test_the_reminder_says_something_warm_even_when_nobody_checked_in_yesterday(
    redis_client: AsyncRedis,
) -> None:
    clock = VirtualClock(at(DAY, 8, 50))
    scheduler = make_scheduler(redis_client, file_of(templates.checkin_reminder(groups=["g1"])),
                               directory(["g1"]), clock)
    await scheduler.tick()
    await run_until(scheduler, clock, at(DAY, 9, 10))
    [post] = await outbox(redis_client)
    assert post["content"].startswith("早上好呀 ☀️ 新的一天")
    summary = await scheduler.status.summary("checkin_reminder", DAY.date(), 1)
    assert summary["reasons"] == {"sent:fallback:no_checkins_yesterday": 1}
