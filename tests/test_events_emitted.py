"""The game actions record what happened as analytics events: once per effect, read back from a
real Redis, named by the member's message, and never for a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from actions import runtime
from actions.checkin import ActionCheckIn
from actions.coupons import ActionClaimCoupon
from actions.draw import ActionLuckyDraw
from actions.handoff import ActionHumanHandoff
from actions.redeem import ActionRedeemPoints
from qunzhu.events import Event, Kind, stream_keys
from tests.conftest import TEST_BRAND
from tests.helpers import responses, run, tracker

pytestmark = pytest.mark.redis


async def recorded(svc: runtime.Services) -> list[Event]:
    """Every event of the test brand, over all its streams."""
    events: list[Event] = []
    for key in stream_keys(TEST_BRAND):
        events += [Event.from_fields(fields) for _id, fields in await svc.store._r.xrange(key)]
    return events


def eids(events: list[Event]) -> set[str]:
    return {e.eid for e in events}


async def test_a_check_in_is_recorded_with_its_streak_and_the_points_it_earned(
    services: runtime.Services,
) -> None:
    await run(ActionCheckIn(), tracker("打卡", msgid="wx-1"))
    [event] = await recorded(services)
    assert event.kind is Kind.CHECKIN and event.eid == "checkin:wx-1"
    assert (event.group, event.user) == ("g1", "alice")
    assert event.data == {"streak": 1, "points": 5}
    assert event.at == services.clock.now().timestamp()


async def test_a_retried_check_in_repeats_its_event_under_the_same_eid(
    services: runtime.Services,
) -> None:
    first, _ = await run(ActionCheckIn(), tracker("打卡", msgid="wx-2"))
    again, _ = await run(ActionCheckIn(), tracker("打卡", msgid="wx-2"))
    assert first == again
    events = await recorded(services)
    assert len(events) == 2 and eids(events) == {"checkin:wx-2"}  # the aggregator counts one
    assert {e.data["points"] for e in events} == {5}


async def test_a_second_check_in_the_same_day_records_nothing(
    services: runtime.Services,
) -> None:
    await run(ActionCheckIn(), tracker("打卡", msgid="wx-3"))
    msgs, _ = await run(ActionCheckIn(), tracker("打卡", msgid="wx-4"))
    assert responses(msgs) == ["utter_checkin_already"]
    assert eids(await recorded(services)) == {"checkin:wx-3"}


async def test_a_check_in_in_a_direct_chat_is_recorded_without_a_group(
    services: runtime.Services,
) -> None:
    await run(ActionCheckIn(), tracker("打卡", group="", msgid="wx-5"))
    [event] = await recorded(services)
    assert (event.group, event.user, event.eid) == ("", "alice", "checkin:wx-5")


async def test_a_claimed_coupon_is_recorded_with_its_campaign_and_code(
    services: runtime.Services,
) -> None:
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5", msgid="wx-6"))
    assert responses(msgs) == ["utter_coupon_issued"]
    [event] = await recorded(services)
    assert event.kind is Kind.CLAIM and event.eid == "claim:wx-6"
    assert (event.group, event.user) == ("g1", "alice")
    assert event.data == {"campaign": "cut_30_5", "code": msgs[0]["code"]}


async def test_a_refused_claim_records_nothing(services: runtime.Services) -> None:
    await run(ActionClaimCoupon(), tracker("领满30减5", msgid="wx-7"))
    msgs, _ = await run(ActionClaimCoupon(), tracker("再领满30减5", msgid="wx-8"))
    assert responses(msgs) == ["utter_coupon_limit"]
    msgs, _ = await run(ActionClaimCoupon(), tracker("领券", msgid="wx-9"))
    assert responses(msgs) == ["utter_coupon_choose"]
    assert eids(await recorded(services)) == {"claim:wx-7"}


async def test_a_draw_is_recorded_with_the_prize_won_and_its_cost(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actions.draw.secrets.randbelow", lambda total: 0)
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", msgid="wx-10"))
    assert responses(msgs) == ["utter_draw_won_coupon"]
    [event] = await recorded(services)
    assert event.kind is Kind.DRAW and event.eid == "draw:wx-10"
    assert (event.group, event.user) == ("g1", "alice")
    assert event.data == {"prize": "annual_card", "cost": 0}


async def test_a_consolation_draw_is_recorded_with_no_prize(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actions.draw.secrets.randbelow", lambda total: 500)
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", msgid="wx-11"))
    assert responses(msgs) == ["utter_draw_nothing"]
    [event] = await recorded(services)
    assert event.data == {"prize": "", "cost": 0}


async def test_a_draw_refused_by_the_daily_limit_or_the_balance_records_nothing(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run(ActionLuckyDraw(), tracker("抽奖", msgid="wx-12"))
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", msgid="wx-13"))
    assert responses(msgs) == ["utter_draw_limit"]
    monkeypatch.setattr(services.games, "lucky_draw",
                        services.games.lucky_draw.copy(update={"cost_points": 10}))
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", user="bob", msgid="wx-14"))
    assert responses(msgs) == ["utter_draw_insufficient"]
    assert eids(await recorded(services)) == {"draw:wx-12"}


async def test_a_costly_draw_records_the_points_it_cost(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.games, "lucky_draw",
                        services.games.lucky_draw.copy(update={"cost_points": 10}))
    await services.store._r.hset(services.store.keys.member("alice"), "points", 15)
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", msgid="wx-15"))
    assert responses(msgs)[0].startswith("utter_draw_")
    [event] = await recorded(services)
    assert event.eid == "draw:wx-15" and event.data["cost"] == 10


async def test_a_points_shop_redemption_is_recorded_with_the_reward_and_its_cost(
    services: runtime.Services,
) -> None:
    msgs, _ = await run(ActionRedeemPoints(), tracker("兑换美式", msgid="wx-16"))
    assert responses(msgs) == ["utter_redeem_insufficient"]
    msgs, _ = await run(ActionRedeemPoints(), tracker("积分能换什么", msgid="wx-17"))
    assert responses(msgs) == ["utter_redeem_menu"]
    assert await recorded(services) == []
    await services.store._r.hset(services.store.keys.member("alice"), "points", 130)
    msgs, _ = await run(ActionRedeemPoints(), tracker("兑换美式", msgid="wx-18"))
    assert responses(msgs) == ["utter_redeem_done"]
    [event] = await recorded(services)
    assert event.kind is Kind.SHOP and event.eid == "shop:wx-18"
    assert (event.group, event.user) == ("g1", "alice")
    assert event.data == {"reward": "americano", "cost": 100}


async def test_a_queued_handoff_is_recorded_with_the_member_s_message_as_its_ticket(
    services: runtime.Services,
) -> None:
    msgs, _ = await run(ActionHumanHandoff(), tracker("转人工", msgid="wx-19"))
    assert responses(msgs) == ["utter_handoff"]
    [event] = await recorded(services)
    assert event.kind is Kind.HANDOFF_OPENED and event.eid == "handoff_opened:wx-19"
    assert (event.group, event.user) == ("g1", "alice")
    assert event.data["ticket"] == "wx-19" and event.data["text"] == "转人工"
    assert isinstance(event.data["history"], str) and "转人工" in event.data["history"]


async def test_a_handoff_the_bridge_did_not_take_records_nothing(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(request: dict[str, Any], idem: str) -> bool:
        return False

    monkeypatch.setattr(services.poster, "handoff", refused)
    msgs, _ = await run(ActionHumanHandoff(), tracker("转人工", msgid="wx-20"))
    assert responses(msgs) == ["utter_handoff_unsent"]
    assert await recorded(services) == []
