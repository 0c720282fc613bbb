"""Every action, through CollectingDispatcher, on a real Redis and a controllable clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from actions import runtime
from actions.checkin import ActionCheckIn
from actions.clock import SHANGHAI, FixedClock
from actions.coupons import ActionClaimCoupon, ActionMyCoupons
from actions.draw import ActionLuckyDraw
from actions.fallback import ActionAffirm, ActionDeny, ActionFallback, offer_is_open
from actions.faq import ActionAnswerFaq
from actions.handoff import ActionHumanHandoff
from actions.points import ActionLeaderboard, ActionMyPoints
from actions.preferences import Preferences
from actions.redeem import ActionRedeemPoints
from actions.store import GameStore
from bot.common.store import HANDOFFS, OUTBOX
from qunzhu import coupons
from tests.helpers import key_count, responses, run, texts, tracker

pytestmark = pytest.mark.redis


async def outbox(svc: runtime.Services) -> list[dict[str, str]]:
    """Posts the bridge accepted into its durable outbox stream."""
    rows = await svc.store._r.xrange(OUTBOX)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]


# ------------------------------------------------------------------ check-in
async def test_checkin_then_again_same_day(services: runtime.Services) -> None:
    msgs, _ = await run(ActionCheckIn(), tracker("打卡"))
    assert responses(msgs) == ["utter_checkin_done_next"]
    assert msgs[0]["streak"] == 1 and msgs[0]["points"] == 5 and msgs[0]["days_to_bonus"] == 2
    texts(msgs)
    msgs, _ = await run(ActionCheckIn(), tracker("打卡"))
    assert responses(msgs) == ["utter_checkin_already"]
    texts(msgs)


async def test_repeated_delivery_replays_the_first_reply(services: runtime.Services) -> None:
    first, _ = await run(ActionCheckIn(), tracker("打卡", msgid="wecom-1"))
    again, _ = await run(ActionCheckIn(), tracker("打卡", msgid="wecom-1"))
    assert first == again
    assert (await services.store.member_stats("alice")).points == 5


async def test_shanghai_midnight_continues_streak_within_one_utc_day(
    services: runtime.Services, clock: FixedClock
) -> None:
    # 23:59 and 00:01 Shanghai are both 15:59/16:01 on the same UTC day.
    clock.current = datetime(2026, 11, 23, 23, 59, tzinfo=SHANGHAI)
    await run(ActionCheckIn(), tracker("打卡"))
    clock.advance(minutes=2)
    msgs, _ = await run(ActionCheckIn(), tracker("打卡"))
    assert responses(msgs) == ["utter_checkin_done_next"]
    assert msgs[0]["streak"] == 2


async def test_utc_midnight_is_not_a_new_day(
    services: runtime.Services, clock: FixedClock
) -> None:
    # 07:59 → 08:01 Shanghai crosses UTC midnight but not a Shanghai day.
    clock.current = datetime(2026, 11, 23, 7, 59, tzinfo=SHANGHAI)
    await run(ActionCheckIn(), tracker("打卡"))
    clock.advance(minutes=2)
    msgs, _ = await run(ActionCheckIn(), tracker("打卡"))
    assert responses(msgs) == ["utter_checkin_already"]


async def test_missed_day_breaks_streak(services: runtime.Services, clock: FixedClock) -> None:
    await run(ActionCheckIn(), tracker("打卡"))
    clock.advance(days=2)
    msgs, _ = await run(ActionCheckIn(), tracker("打卡"))
    assert msgs[0]["streak"] == 1


async def test_seventh_day_bonus_is_announced_once(
    services: runtime.Services, clock: FixedClock
) -> None:
    for _ in range(6):
        await run(ActionCheckIn(), tracker("打卡"))
        clock.advance(days=1)
    day7 = tracker("打卡", msgid="day7")
    msgs, _ = await run(ActionCheckIn(), day7)
    assert responses(msgs) == ["utter_checkin_bonus"]
    assert msgs[0]["bonus"] == 20 and msgs[0]["earned"] == 25
    texts(msgs)
    await run(ActionCheckIn(), day7)  # WeCom retry of the same message
    posts = await outbox(services)
    streak_posts = [p for p in posts if "7" in p["content"]]
    assert len(streak_posts) == 1
    assert streak_posts[0]["group"] == "g1" and "<@alice>" in streak_posts[0]["content"]
    assert streak_posts[0]["msgtype"] == "markdown"  # WeCom shows the name and notifies
    assert "{" not in streak_posts[0]["content"]


async def test_terminal_or_rest_without_metadata_still_works(
    services: runtime.Services,
) -> None:
    t = tracker("打卡", user="bob", group="sandbox", metadata=False)
    msgs, _ = await run(ActionCheckIn(), t)
    assert responses(msgs) == ["utter_checkin_done_next"]
    assert (await services.store.member_stats("bob")).checkins == 1
    assert [s.user for s in await services.store.leaderboard("sandbox", 5)] == ["bob"]


async def test_redis_down_gets_a_polite_reply(services: runtime.Services) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    runtime.use(runtime.Services(store=GameStore(dead, "x"), clock=services.clock,
                                 poster=services.poster, names=services.names,
                                 preferences=Preferences(dead, "x")))
    msgs, events = await run(ActionCheckIn(), tracker("打卡"))
    assert responses(msgs) == ["utter_busy"] and events == []


# ------------------------------------------------------------------ points & leaderboard
async def test_my_points_new_member_then_balance(
    services: runtime.Services, clock: FixedClock
) -> None:
    msgs, _ = await run(ActionMyPoints(), tracker("我的积分"))
    assert responses(msgs) == ["utter_points_new"]
    await run(ActionCheckIn(), tracker("打卡"))
    msgs, _ = await run(ActionMyPoints(), tracker("我的积分"))
    assert responses(msgs) == ["utter_points_balance"] and msgs[0]["points"] == 5
    texts(msgs)
    clock.advance(days=3)
    msgs, _ = await run(ActionMyPoints(), tracker("我的积分"))
    assert msgs[0]["streak"] == 0, "a broken streak must not be shown as alive"


async def test_leaderboard(services: runtime.Services) -> None:
    msgs, _ = await run(ActionLeaderboard(), tracker("排行榜"))
    assert responses(msgs) == ["utter_leaderboard_empty"]
    for user in ("alice", "bob", "carol"):
        await run(ActionCheckIn(), tracker("打卡", user=user))
    await run(ActionCheckIn(), tracker("打卡", user="dave", group="other"))
    msgs, _ = await run(ActionLeaderboard(), tracker("排行榜", user="bob"))
    assert responses(msgs) == ["utter_leaderboard"]
    assert "dave" not in msgs[0]["rows"] and msgs[0]["rank"] in (1, 2, 3)
    texts(msgs)
    msgs, _ = await run(ActionLeaderboard(), tracker("排行榜", user="erin"))
    assert responses(msgs) == ["utter_leaderboard_unranked"]
    msgs, _ = await run(ActionLeaderboard(), tracker("排行榜", group=""))
    assert responses(msgs) == ["utter_leaderboard_not_group"]


# ------------------------------------------------------------------ coupons
async def test_claim_named_coupon_and_list_it(services: runtime.Services) -> None:
    msgs, _ = await run(ActionClaimCoupon(), tracker("领一张满30减5"))
    assert responses(msgs) == ["utter_coupon_issued"]
    code = msgs[0]["code"]
    assert msgs[0]["expires"] == "2026-11-29"  # 7 days including today, Shanghai
    texts(msgs)
    assert (await services.store.wallet("alice"))[0].code == code
    msgs, _ = await run(ActionClaimCoupon(), tracker("再领一张满30减5"))
    assert responses(msgs) == ["utter_coupon_limit"]
    msgs, _ = await run(ActionMyCoupons(), tracker("我的券"))
    assert responses(msgs) == ["utter_my_coupons"] and code in msgs[0]["coupons"]
    texts(msgs)


async def test_claim_without_a_name_lists_open_campaigns(services: runtime.Services) -> None:
    msgs, _ = await run(ActionClaimCoupon(), tracker("领券"))
    assert responses(msgs) == ["utter_coupon_choose"]
    assert "满30减5券" in msgs[0]["menu"] and "拿铁第二杯半价券" in msgs[0]["menu"]
    assert await services.store.wallet("alice") == []


async def test_claim_sold_out_not_started_ended(
    services: runtime.Services, clock: FixedClock
) -> None:
    campaign = services.games.coupons[0]
    services.games.coupons[0] = campaign.copy(update={"stock": 0})
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5"))
    assert responses(msgs) == ["utter_coupon_sold_out"]
    services.games.coupons[0] = campaign
    clock.current = datetime(2025, 6, 1, tzinfo=SHANGHAI)
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5"))
    assert responses(msgs) == ["utter_coupon_not_started"]
    texts(msgs)
    clock.current = datetime(2028, 6, 1, tzinfo=SHANGHAI)
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5"))
    assert responses(msgs) == ["utter_coupon_ended"]
    msgs, _ = await run(ActionClaimCoupon(), tracker("领券"))
    assert responses(msgs) == ["utter_coupon_none_open"]
    assert await services.store.wallet("alice") == []


async def test_coupon_expiry_hides_it_from_my_coupons(
    services: runtime.Services, clock: FixedClock
) -> None:
    await run(ActionClaimCoupon(), tracker("领满30减5"))
    clock.advance(days=7)
    msgs, _ = await run(ActionMyCoupons(), tracker("我的券"))
    assert responses(msgs) == ["utter_my_coupons_empty"]


async def test_a_coupon_redeemed_at_a_store_leaves_my_coupons_and_says_when_pasted(
    services: runtime.Services, clock: FixedClock
) -> None:
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5"))
    code = msgs[0]["code"]
    done = await coupons.redeem(services.store._r, services.store.keys.brand, code,
                                store="jingan_temple", clerk="clerk", key="",
                                now=int(clock.now().timestamp()))
    assert done.status == "redeemed"
    msgs, _ = await run(ActionMyCoupons(), tracker("我的券"))
    assert responses(msgs) == ["utter_my_coupons_empty"]
    msgs, _ = await run(ActionMyCoupons(), tracker(f"{code} 还能用吗"))
    assert responses(msgs) == ["utter_code_yours_used"]
    assert msgs[0]["used"] == clock.now().date().isoformat()
    texts(msgs)


async def test_pasted_codes(services: runtime.Services) -> None:
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5", user="bob"))
    bobs = msgs[0]["code"]
    msgs, _ = await run(ActionMyCoupons(), tracker(f"{bobs} 这张能用吗", user="bob"))
    assert responses(msgs) == ["utter_code_yours"]
    msgs, _ = await run(ActionMyCoupons(), tracker(f"{bobs} 是我的吗"))
    assert responses(msgs) == ["utter_code_not_yours"]
    before = await key_count(services.store._r)
    msgs, _ = await run(ActionMyCoupons(), tracker("ABC12345 这个码是你们的吗"))
    assert responses(msgs) == ["utter_code_unknown"] and msgs[0]["code"] == "ABC12345"
    texts(msgs)
    assert await key_count(services.store._r) == before


# ------------------------------------------------------------------ lucky draw
async def test_draw_grand_prize_is_announced_and_limit_applies(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actions.draw.secrets.randbelow", lambda total: 0)
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", msgid="lucky"))
    assert responses(msgs) == ["utter_draw_won_coupon"]
    assert msgs[0]["prize"] == "全年咖啡畅饮卡"
    texts(msgs)
    assert [c.name for c in await services.store.wallet("alice")] == ["全年咖啡畅饮卡"]
    posts = await outbox(services)
    assert len(posts) == 1 and "全年咖啡畅饮卡" in posts[0]["content"]
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖"))
    assert responses(msgs) == ["utter_draw_limit"]
    # the only grand prize is gone: the same random number now falls to the consolation
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖", user="bob"))
    assert responses(msgs) == ["utter_draw_nothing"]


async def test_draw_points_prize(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actions.draw.secrets.randbelow", lambda total: 100)
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖"))
    assert responses(msgs) == ["utter_draw_won_points"] and msgs[0]["points"] == 20
    texts(msgs)


async def test_draw_that_costs_points(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on the shared live rules, so undone after the test (later tests draw for free)
    monkeypatch.setattr(services.games, "lucky_draw",
                        services.games.lucky_draw.copy(update={"cost_points": 10}))
    msgs, _ = await run(ActionLuckyDraw(), tracker("抽奖"))
    assert responses(msgs) == ["utter_draw_insufficient"]
    texts(msgs)


# ------------------------------------------------------------------ points shop
async def test_redeem_menu_insufficient_and_success(services: runtime.Services) -> None:
    msgs, _ = await run(ActionRedeemPoints(), tracker("积分能换什么"))
    assert responses(msgs) == ["utter_redeem_menu"] and "美式咖啡兑换券" in msgs[0]["menu"]
    texts(msgs)
    msgs, _ = await run(ActionRedeemPoints(), tracker("兑换美式"))
    assert responses(msgs) == ["utter_redeem_insufficient"] and msgs[0]["short"] == 100
    texts(msgs)
    await services.store._r.hset(services.store.keys.member("alice"), "points", 130)
    msgs, _ = await run(ActionRedeemPoints(), tracker("兑换美式"))
    assert responses(msgs) == ["utter_redeem_done"] and msgs[0]["points"] == 30
    texts(msgs)
    assert [c.name for c in await services.store.wallet("alice")] == ["美式咖啡兑换券"]


# ------------------------------------------------------------------ handoff, FAQ, fallback
async def test_handoff_queues_request_with_history(services: runtime.Services) -> None:
    history = [{"event": "user", "text": "咖啡洒了"}, {"event": "bot", "text": "抱歉～"}]
    asked = tracker("转人工", events=history)
    msgs, events = await run(ActionHumanHandoff(), asked)
    assert responses(msgs) == ["utter_handoff"]
    texts(msgs)
    assert events == [{"event": "slot", "timestamp": None, "name": "handoff_offered",
                       "value": False}]
    rows = await services.store._r.xrange(HANDOFFS)
    assert len(rows) == 1
    fields = {k.decode(): v.decode() for k, v in rows[0][1].items()}
    assert fields["user"] == "alice" and "咖啡洒了" in fields["history"]
    again, _ = await run(ActionHumanHandoff(), asked)
    assert responses(again) == ["utter_handoff"]  # a retried message: still one request
    assert await services.store._r.xlen(HANDOFFS) == 1


async def test_a_handoff_the_bridge_cannot_take_is_not_promised(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(_request: dict[str, Any], _idem: str) -> bool:
        return False

    monkeypatch.setattr(services.poster, "handoff", refused)
    msgs, _ = await run(ActionHumanHandoff(), tracker("转人工"))
    assert responses(msgs) == ["utter_handoff_unsent"]
    assert "400-820-5200" in texts(msgs)[0]


def _selected(key: str) -> dict[str, Any]:
    return {"faq": {"response": {"intent_response_key": f"faq/{key}",
                                 "utter_action": f"utter_faq/{key}", "confidence": 0.9}}}


@pytest.mark.parametrize("key", [
    "opening_hours", "delivery", "membership_benefits", "coupon_usage", "points_rules",
    "refund", "checkin_rules", "lucky_draw_rules", "store_location", "invoice",
])
async def test_every_faq_is_answered_with_facts(key: str) -> None:
    msgs, _ = await run(ActionAnswerFaq(), tracker("?", response_selector=_selected(key)))
    assert responses(msgs) == [f"utter_faq/{key}"]
    assert all("{" not in text for text in texts(msgs))


async def test_faq_quotes_the_current_brand_file(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from actions import config

    edited = Path(str(tmp_path)) / "brand.yml"
    edited.write_text(
        config.brand_file().read_text(encoding="utf-8").replace("radius_km: 3",
                                                                "radius_km: 5"),
        encoding="utf-8",
    )
    monkeypatch.setenv("QZ_BRAND_FILE", str(edited))
    monkeypatch.setattr(config, "_brand", None)
    msgs, _ = await run(ActionAnswerFaq(), tracker("?", response_selector=_selected(
        "delivery")))
    assert msgs[0]["delivery_radius_km"] == "5"


async def test_faq_without_a_confident_answer_offers_a_person() -> None:
    msgs, events = await run(ActionAnswerFaq(), tracker("?", response_selector={}))
    assert responses(msgs) == ["utter_faq_unsure"] and events[0]["value"] is True
    unsure = _selected("store_location")
    unsure["faq"]["response"]["confidence"] = 0.22
    msgs, _ = await run(ActionAnswerFaq(), tracker("可以带狗进店吗", response_selector=unsure))
    assert responses(msgs) == ["utter_faq_unsure"]


def _miss(text: str) -> dict[str, object]:
    return {"event": "user", "text": text,
            "parse_data": {"intent": {"name": "nlu_fallback", "confidence": 0.3}}}


async def test_fallback_twice_offers_a_person_and_affirm_hands_over(
    services: runtime.Services,
) -> None:
    once = tracker("哈？", intent="nlu_fallback")
    once.latest_message["intent"]["name"] = "nlu_fallback"
    once.events[-1]["parse_data"] = once.latest_message
    msgs, events = await run(ActionFallback(), once)
    assert responses(msgs) == ["utter_default"] and events == []
    twice = tracker("嗯？", intent="nlu_fallback", events=[_miss("哈？")])
    twice.events[-1]["parse_data"] = twice.latest_message
    msgs, events = await run(ActionFallback(), twice)
    assert responses(msgs) == ["utter_offer_human"]
    assert events[0]["value"] is True
    msgs, events = await run(ActionAffirm(), _answer_to_offer("好的"))
    assert responses(msgs) == ["utter_handoff"]
    assert await services.store._r.xlen(HANDOFFS) == 1
    msgs, _ = await run(ActionDeny(), _answer_to_offer("不用"))
    assert responses(msgs) == ["utter_handoff_declined"]
    msgs, _ = await run(ActionAffirm(), tracker("好的"))
    assert responses(msgs) == ["utter_affirm_ack"]
    msgs, _ = await run(ActionDeny(), tracker("不用"))
    assert responses(msgs) == ["utter_deny_ack"]


def _offer(at: float) -> list[dict[str, Any]]:
    """The bot's side of a turn that offered a person, at time `at`."""
    return [{"event": "action", "name": "action_fallback", "timestamp": at},
            {"event": "bot", "text": "要转人工吗？", "timestamp": at},
            {"event": "slot", "name": "handoff_offered", "value": True, "timestamp": at},
            {"event": "action", "name": "action_listen", "timestamp": at}]


def _answer_to_offer(text: str, *, after_s: float = 5.0,
                     between: list[dict[str, Any]] | None = None) -> Any:
    """A member's reply to an offer made `after_s` earlier, maybe after other turns."""
    t = tracker(text, slots={"handoff_offered": True},
                events=[_miss("唔"), *_offer(1000.0), *(between or [])])
    t.events[-1]["timestamp"] = 1000.0 + after_s
    return t


async def test_an_offer_binds_only_the_next_message(services: runtime.Services) -> None:
    unrelated = [{"event": "user", "text": "营业时间", "timestamp": 1010.0,
                  "parse_data": {"intent": {"name": "faq", "confidence": 0.9}}},
                 {"event": "bot", "text": "7:30–21:00", "timestamp": 1010.0}]
    msgs, events = await run(ActionAffirm(), _answer_to_offer("好的", after_s=20,
                                                              between=unrelated))
    assert responses(msgs) == ["utter_affirm_ack"]
    assert events == [{"event": "slot", "timestamp": None, "name": "handoff_offered",
                       "value": False}]
    msgs, _ = await run(ActionDeny(), _answer_to_offer("不用", after_s=20, between=unrelated))
    assert responses(msgs) == ["utter_deny_ack"]
    assert await services.store._r.xlen(HANDOFFS) == 0


@pytest.mark.parametrize(("after_s", "hands_over"), [(599.0, True), (601.0, False)])
async def test_an_offer_lapses_after_ten_minutes(
    services: runtime.Services, after_s: float, hands_over: bool
) -> None:
    msgs, _ = await run(ActionAffirm(), _answer_to_offer("好的", after_s=after_s))
    assert responses(msgs) == (["utter_handoff"] if hands_over else ["utter_affirm_ack"])
    assert await services.store._r.xlen(HANDOFFS) == int(hands_over)


def test_an_offer_withdrawn_or_never_made_is_not_open() -> None:
    declined = [*_offer(1.0), {"event": "slot", "name": "handoff_offered", "value": False}]
    assert not offer_is_open([*declined, {"event": "user", "timestamp": 2.0}])
    assert not offer_is_open([{"event": "user", "timestamp": 2.0}])
    assert not offer_is_open([])
    assert offer_is_open([*_offer(1.0), {"event": "user", "timestamp": 2.0}])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("text", [
    "", "👍👍👍", "@福利官", "领" * 5000, "ＱＺ領券 mixed 文字 ✨ русский", "\u200b\u200b",
])
async def test_odd_text_never_crashes_or_changes_state(
    services: runtime.Services, text: str
) -> None:
    for action in (ActionClaimCoupon(), ActionMyCoupons(), ActionRedeemPoints()):
        msgs, _ = await run(action, tracker(text))
        assert msgs, f"{action.name()} said nothing for {text[:10]!r}"
        texts(msgs)
    assert await services.store.wallet("alice") == []
    assert (await services.store.member_stats("alice")).points == 0


async def test_a_taken_code_is_never_reissued(
    services: runtime.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5", user="bob"))
    taken = msgs[0]["code"]
    codes = iter([taken, taken, "QZ22222222"])
    monkeypatch.setattr("actions.codes.new_code", lambda: next(codes))
    msgs, _ = await run(ActionClaimCoupon(), tracker("领半价券"))
    assert responses(msgs) == ["utter_coupon_issued"] and msgs[0]["code"] == "QZ22222222"
    assert await services.store.code_owner(taken) == "bob"


async def test_two_members_whose_messages_share_a_msgid_each_get_their_own_result(
    services: runtime.Services,
) -> None:
    # Message ids are unique per bot in WeCom, not across channels (Rasa's REST channel).
    for user in ("alice", "bob"):
        msgs, _ = await run(ActionCheckIn(), tracker("打卡", user=user, msgid="same-id"))
        assert responses(msgs) == ["utter_checkin_done_next"], user
        assert (await services.store.member_stats(user)).points == 5
        msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5", user=user,
                                                         msgid="same-id-2"))
        assert responses(msgs) == ["utter_coupon_issued"], user
    alice = await services.store.wallet("alice")
    bob = await services.store.wallet("bob")
    assert len(alice) == len(bob) == 1 and alice[0].code != bob[0].code
    # The same member's retry of the same message still replays the first result.
    msgs, _ = await run(ActionCheckIn(), tracker("打卡", user="bob", msgid="same-id"))
    assert responses(msgs) == ["utter_checkin_done_next"]
    assert (await services.store.member_stats("bob")).checkins == 1


async def test_a_rules_reload_leaves_member_state_as_it_was(
    services: runtime.Services, clock: FixedClock, tmp_path: Any,
) -> None:
    from pathlib import Path

    from actions import config
    from qunzhu.config import load_games
    from qunzhu.liveconfig import LiveFile

    text = config.games_file().read_text(encoding="utf-8")
    games = Path(str(tmp_path)) / "games.yml"
    games.write_text(text, encoding="utf-8")
    live = LiveFile("games", games, load_games, keep=Path(str(tmp_path)) / "keep",
                    check_every_s=0)
    services.games_now = lambda: live.value
    await run(ActionCheckIn(), tracker("打卡"))
    before = await services.store.member_stats("alice")
    games.write_text(text.replace("base_points: 5", "base_points: 9"), encoding="utf-8")
    import os
    import time
    os.utime(games, (time.time() - 5, time.time() - 5))
    assert live.value.checkin.base_points == 9
    assert await services.store.member_stats("alice") == before  # nothing stored changed
    clock.advance(days=1)
    msgs, _ = await run(ActionCheckIn(), tracker("打卡"))
    assert msgs[0]["earned"] == 9 and msgs[0]["points"] == before.points + 9


async def test_a_claim_cut_short_is_finished_for_the_campaign_it_began(
    services: runtime.Services,
) -> None:
    # The first delivery dies between reserving 满30减5 and the wallet; the retry of the same
    # message resolves (say, after a config reload) to another campaign: it must finish the
    # first one, or that reservation would use up stock and the member's limit for nothing.
    real = services.store._finish_claim
    crashed = False

    async def dies_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal crashed
        if not crashed:
            crashed = True
            raise RedisConnectionError("killed")
        return await real(*args, **kwargs)

    services.store._finish_claim = dies_once
    msgs, _ = await run(ActionClaimCoupon(), tracker("领满30减5", msgid="cut"))
    assert responses(msgs) == ["utter_busy"]
    msgs, _ = await run(ActionClaimCoupon(), tracker("领半价券", msgid="cut"))
    first = services.games.coupons[0]
    assert responses(msgs) == ["utter_coupon_issued"] and msgs[0]["name"] == first.name
    assert [c.source for c in await services.store.wallet("alice")] == [f"campaign:{first.id}"]
