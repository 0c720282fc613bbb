"""Members stop and restart campaign @-mentions and say "too many posts": each message acts
once (a retried delivery answers the same and changes nothing), on a real Redis."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import pytest
import redis.asyncio as aioredis

from actions import runtime
from actions.clock import SHANGHAI, FixedClock
from actions.optouts import ActionOptInMentions, ActionOptOutMentions, ActionTooManyPosts
from actions.preferences import Preferences
from actions.store import GameStore
from qunzhu import metrics
from qunzhu.events import Event, Kind, stream_keys
from qunzhu.optouts import OptOuts
from tests.conftest import TEST_BRAND
from tests.helpers import responses, run, texts, tracker

pytestmark = pytest.mark.redis


async def recorded(svc: runtime.Services, kind: Kind) -> list[Event]:
    """Every event of one kind the test brand recorded, over all its streams."""
    events: list[Event] = []
    for key in stream_keys(TEST_BRAND):
        events += [Event.from_fields(fields) for _id, fields in await svc.store._r.xrange(key)]
    return [e for e in events if e.kind is kind]


def book(svc: runtime.Services) -> OptOuts:
    """The opt-outs as the campaign scheduler reads them."""
    return OptOuts(svc.store._r, TEST_BRAND)


async def say(action: ActionOptOutMentions | ActionOptInMentions | ActionTooManyPosts,
              text: str, *, user: str = "alice", group: str = "g1",
              msgid: str | None = None) -> list[str]:
    """Run an action on one message; the responses it uttered (every wording checked)."""
    msgs, events = await run(action, tracker(text, user=user, group=group, msgid=msgid))
    assert events == []
    texts(msgs)
    return responses(msgs)


# ------------------------------------------------------------------ opting out and in
async def test_opt_out_then_in_with_a_different_reply_each_time_it_is_said_again(
    services: runtime.Services,
) -> None:
    assert await say(ActionOptOutMentions(), "别@我了", msgid="m1") == ["utter_optout_done"]
    assert await book(services).is_out("alice")
    assert await book(services).which(["alice", "bob"]) == {"alice"}
    assert await say(ActionOptOutMentions(), "不要再艾特我", msgid="m2") == [
        "utter_optout_already"]
    assert await book(services).is_out("alice")

    assert await say(ActionOptInMentions(), "恢复提醒", msgid="m3") == ["utter_optin_done"]
    assert not await book(services).is_out("alice")
    assert await say(ActionOptInMentions(), "可以@我了", msgid="m4") == ["utter_optin_already"]
    assert await book(services).count() == 0

    # only the changes are events, named by the message: the console counts outs minus ins
    events = await recorded(services, Kind.OPTOUT)
    assert [(e.eid, e.data) for e in events] == [("optout:m1", {"on": True}),
                                                 ("optout:m3", {"on": False})]
    assert all((e.group, e.user) == ("g1", "alice") for e in events)


async def test_the_opt_out_is_brand_wide_and_per_member(services: runtime.Services) -> None:
    await say(ActionOptOutMentions(), "别圈我", user="bob", group="g2")
    assert await book(services).which(["alice", "bob", "carol"]) == {"bob"}
    # said in another group, or in a direct chat, it is the same choice
    assert await say(ActionOptOutMentions(), "别@我", user="bob", group="") == [
        "utter_optout_already"]
    assert await say(ActionOptInMentions(), "恢复提醒", user="bob", group="g1") == [
        "utter_optin_done"]


async def test_a_retried_opt_out_replays_its_answer_and_changes_nothing(
    services: runtime.Services,
) -> None:
    first, _ = await run(ActionOptOutMentions(), tracker("别@我了", msgid="wx-1"))
    again, _ = await run(ActionOptOutMentions(), tracker("别@我了", msgid="wx-1"))
    assert first == again and responses(first) == ["utter_optout_done"]
    assert await book(services).count() == 1
    events = await recorded(services, Kind.OPTOUT)
    assert len(events) == 2 and {e.eid for e in events} == {"optout:wx-1"}  # counted once

    # a later message opts back in; the old message delivered once more changes nothing
    await run(ActionOptInMentions(), tracker("恢复提醒", msgid="wx-2"))
    late, _ = await run(ActionOptOutMentions(), tracker("别@我了", msgid="wx-1"))
    assert late == first
    assert not await book(services).is_out("alice")


async def test_four_deliveries_of_one_message_at_once_answer_alike(
    services: runtime.Services,
) -> None:
    results = await asyncio.gather(*(run(ActionOptOutMentions(), tracker("别@我了", msgid="wx-3"))
                                     for _ in range(4)))
    assert [responses(msgs) for msgs, _ in results] == [["utter_optout_done"]] * 4
    assert await book(services).which(["alice"]) == {"alice"}
    assert {e.eid for e in await recorded(services, Kind.OPTOUT)} == {"optout:wx-3"}


async def test_two_opt_outs_at_once_in_two_groups_change_it_once_and_count_once(
    services: runtime.Services,
) -> None:
    results = await asyncio.gather(*(
        run(ActionOptOutMentions(), tracker("别@我了", group=group, msgid=f"wx-{group}"))
        for group in ("g1", "g2", "g3")))
    said = sorted(responses(msgs)[0] for msgs, _ in results)
    assert said == ["utter_optout_already", "utter_optout_already", "utter_optout_done"]
    assert len(await recorded(services, Kind.OPTOUT)) == 1  # the console's net count: +1


async def test_a_delivery_cut_off_after_its_record_is_finished_by_the_retry(
    services: runtime.Services,
) -> None:
    prefs = services.preferences
    # the first delivery recorded what it saw, then died before opting the member out
    key = prefs.said("out", "alice", "wx-4")
    await services.store._r.set(key, '{"changed": true, "done": false}')
    msgs, _ = await run(ActionOptOutMentions(), tracker("别@我了", msgid="wx-4"))
    assert responses(msgs) == ["utter_optout_done"]  # what the first delivery saw
    assert await book(services).is_out("alice")
    assert [e.eid for e in await recorded(services, Kind.OPTOUT)] == ["optout:wx-4"]


async def test_opt_outs_are_counted_on_the_console_once_however_often_emitted(
    services: runtime.Services,
) -> None:
    for msgid in ("o1", "o1", "o2"):  # o1 retried
        await run(ActionOptOutMentions(), tracker("别@我了", msgid=msgid))
    await run(ActionOptOutMentions(), tracker("别@我了", user="bob", msgid="o3"))
    await run(ActionOptInMentions(), tracker("恢复提醒", user="bob", msgid="o4"))
    r = services.store._r
    assert await metrics.record(r, TEST_BRAND, await recorded(services, Kind.OPTOUT)) == 3
    day = services.clock.now().date()
    stats = await metrics.range_stats(r, TEST_BRAND, day, day, "g1")
    assert stats.total["optouts"] == 1  # alice out; bob out and back in


# ------------------------------------------------------------------ too many posts
async def test_too_many_posts_counts_once_per_member_group_and_day(
    services: runtime.Services, clock: FixedClock,
) -> None:
    signals = book(services)
    assert await say(ActionTooManyPosts(), "群里消息太多了", msgid="t1") == [
        "utter_too_many_posts"]
    await say(ActionTooManyPosts(), "刷屏了", msgid="t2")  # the same member again today
    assert await signals.too_many_by_group() == {"g1": 1}
    await say(ActionTooManyPosts(), "推送太多了好烦", user="bob", msgid="t3")
    await say(ActionTooManyPosts(), "推送太多了", group="g2", msgid="t4")
    assert await signals.too_many_by_group() == {"g1": 2, "g2": 1}
    clock.advance(days=1)
    await say(ActionTooManyPosts(), "群里消息太多了", msgid="t5")
    assert await signals.too_many_by_group() == {"g1": 3, "g2": 1}

    events = await recorded(services, Kind.TOO_MANY)
    assert len(events) == 5  # one per message, but one eid per member, group and day
    assert {e.eid for e in events} == {
        "too_many:g1:alice:2026-11-23", "too_many:g1:bob:2026-11-23",
        "too_many:g2:alice:2026-11-23", "too_many:g1:alice:2026-11-24"}


async def test_a_retried_complaint_changes_nothing_even_after_midnight(
    services: runtime.Services, clock: FixedClock,
) -> None:
    clock.current = datetime(2026, 11, 23, 23, 59, 30, tzinfo=SHANGHAI)
    first, _ = await run(ActionTooManyPosts(), tracker("刷屏了", msgid="wx-9"))
    clock.advance(minutes=2)  # 00:01:30 on the 24th: WeCom's retry comes after midnight
    again, _ = await run(ActionTooManyPosts(), tracker("刷屏了", msgid="wx-9"))
    assert first == again
    assert await book(services).too_many_by_group() == {"g1": 1}
    events = await recorded(services, Kind.TOO_MANY)
    assert {e.eid for e in events} == {"too_many:g1:alice:2026-11-23"}
    assert {metrics.day_of(e.at) for e in events} == {date(2026, 11, 23)}
    # a new message after midnight is the new day's
    await run(ActionTooManyPosts(), tracker("又刷屏了", msgid="wx-10"))
    assert await book(services).too_many_by_group() == {"g1": 2}


async def test_four_deliveries_of_one_complaint_at_once_count_once(
    services: runtime.Services,
) -> None:
    results = await asyncio.gather(*(run(ActionTooManyPosts(), tracker("太吵了", msgid="wx-11"))
                                     for _ in range(4)))
    assert [responses(msgs) for msgs, _ in results] == [["utter_too_many_posts"]] * 4
    assert await book(services).too_many_by_group() == {"g1": 1}


async def test_a_member_already_opted_out_is_not_offered_it_again(
    services: runtime.Services,
) -> None:
    await run(ActionOptOutMentions(), tracker("别@我了"))
    assert await say(ActionTooManyPosts(), "推送太多了") == ["utter_too_many_posts_opted_out"]
    assert await book(services).too_many_by_group() == {"g1": 1}


async def test_too_many_posts_in_a_direct_chat_is_answered_but_counts_for_no_group(
    services: runtime.Services,
) -> None:
    assert await say(ActionTooManyPosts(), "群里消息太多了", group="") == [
        "utter_too_many_posts"]
    assert await book(services).too_many_by_group() == {}
    assert await recorded(services, Kind.TOO_MANY) == []


# ------------------------------------------------------------------ faults
@pytest.mark.parametrize("action", [ActionOptOutMentions(), ActionOptInMentions(),
                                    ActionTooManyPosts()])
async def test_redis_down_gets_a_polite_reply(
    services: runtime.Services,
    action: ActionOptOutMentions | ActionOptInMentions | ActionTooManyPosts,
) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    runtime.use(runtime.Services(store=GameStore(dead, "x"), clock=services.clock,
                                 poster=services.poster, names=services.names,
                                 preferences=Preferences(dead, "x")))
    msgs, events = await run(action, tracker("别@我了"))
    assert responses(msgs) == ["utter_busy"] and events == []


async def test_too_many_posts_reaches_the_console_once_per_member_group_and_day(
    services: runtime.Services,
) -> None:
    for user, msgid in (("alice", "c1"), ("alice", "c2"), ("bob", "c3")):  # alice twice today
        await run(ActionTooManyPosts(), tracker("刷屏了", user=user, msgid=msgid))
    r = services.store._r
    assert await metrics.record(r, TEST_BRAND, await recorded(services, Kind.TOO_MANY)) == 2
    day = services.clock.now().date()
    stats = await metrics.range_stats(r, TEST_BRAND, day, day, "g1")
    assert stats.total["too_many"] == 2
