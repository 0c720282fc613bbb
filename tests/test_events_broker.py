"""Rasa's event broker makes one TURN event per member message, read back from a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis
from rasa.core.brokers.broker import EventBroker
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig, read_endpoint_config

from qunzhu.config import load_brand
from qunzhu.events import TEXT_LIMIT, Event, Kind, stream_keys
from qunzhu.plugins.events_broker import TurnEventBroker, Turns
from qunzhu.plugins.trackers import FastRedisTrackerStore
from qunzhu.redisconn import AsyncRedis

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parent.parent
BRAND = load_brand().id
SENDER = "g1:alice"


def wecom(msgid: str, chatid: str = "g1", userid: str = "alice",
          chattype: str = "group") -> dict[str, str]:
    """The metadata the bridge sends with a member's message."""
    return {"msgid": msgid, "chatid": chatid, "userid": userid, "chattype": chattype}


def said(text: str, intent: str = "checkin", confidence: float = 0.93,
         metadata: dict[str, str] | None = None, at: float = 1_800_000_000.0) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": confidence},
                       parse_data={"intent": {"name": intent, "confidence": confidence},
                                   "intent_ranking": [{"name": intent,
                                                       "confidence": confidence}],
                                   "entities": [], "text": text},
                       metadata=metadata, timestamp=at)


def answered(text: str, response: str = "utter_checkin_done") -> BotUttered:
    return BotUttered(text, metadata={"utter_action": response})


def listen() -> ActionExecuted:
    return ActionExecuted("action_listen")


def published(sender_id: str, *events: Any) -> list[dict[str, Any]]:
    """Tracker events as the tracker store hands them to the broker."""
    return [{"sender_id": sender_id, **e.as_dict()} for e in events]


def a_turn(msgid: str, text: str = "打卡", reply: str = "打卡成功 ✅",
           sender_id: str = SENDER) -> list[dict[str, Any]]:
    return published(sender_id, said(text, metadata=wecom(msgid)),
                     ActionExecuted("action_check_in"), answered(reply),
                     answered("连续 3 天还有奖励"), listen())


def endpoint(redis_url: str) -> EndpointConfig:
    """The broker section of endpoints.yml, with this test's Redis."""
    url = urlparse(redis_url)
    return EndpointConfig(url=url.hostname, type="qunzhu.plugins.events_broker.TurnEventBroker",
                          port=str(url.port), db="0", password="")


@pytest.fixture
async def broker(redis_url: str, redis_client: AsyncRedis) -> AsyncIterator[TurnEventBroker]:
    made = await TurnEventBroker.from_endpoint_config(endpoint(redis_url))
    yield made
    await made.close()


async def turns(r: AsyncRedis) -> list[Event]:
    """Every event of the brand, over all its streams."""
    events: list[Event] = []
    for key in stream_keys(BRAND):
        events += [Event.from_fields(fields) for _id, fields in await r.xrange(key)]
    return events


def feed(broker: EventBroker, events: list[dict[str, Any]]) -> None:
    for event in events:
        broker.publish(event)


async def test_a_member_s_message_is_one_turn_with_intent_words_and_first_answer(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, published(SENDER, ActionExecuted("action_session_start"), SessionStarted(),
                           listen()))
    feed(broker, a_turn("wx-1"))
    [turn] = await turns(redis_client)
    assert turn.kind is Kind.TURN and turn.eid == "turn:wx-1"
    assert (turn.group, turn.user, turn.at) == ("g1", "alice", 1_800_000_000.0)
    assert turn.data == {"intent": "checkin", "confidence": 0.93, "fallback": False,
                         "text": "打卡", "answer": "打卡成功 ✅", "closest": "checkin",
                         "closest_confidence": 0.93}


async def test_a_turn_is_recorded_only_when_it_ends(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, a_turn("wx-2")[:-1])
    assert await turns(redis_client) == []
    feed(broker, published(SENDER, listen()))
    assert [t.eid for t in await turns(redis_client)] == ["turn:wx-2"]


async def test_a_turn_the_bridge_asked_again_keeps_its_eid(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, a_turn("wx-3"))
    feed(broker, a_turn("wx-3"))
    assert [t.eid for t in await turns(redis_client)] == ["turn:wx-3", "turn:wx-3"]


async def test_a_message_the_nlu_did_not_understand_is_a_fallback(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, published(SENDER, said("哈？", "nlu_fallback", 0.6, wecom("wx-4")),
                           ActionExecuted("action_fallback"),
                           answered("没太明白，换个说法试试？", "utter_default"), listen()))
    [turn] = await turns(redis_client)
    assert turn.data["intent"] == "nlu_fallback" and turn.data["fallback"] is True
    assert turn.data["answer"] == "没太明白，换个说法试试？"


async def test_an_unanswered_message_says_which_intent_or_faq_it_came_closest_to(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    """The console's inbox shows what the model thought, fallback aside."""
    ranking = [{"name": "nlu_fallback", "confidence": 0.7}, {"name": "faq", "confidence": 0.41},
               {"name": "checkin", "confidence": 0.2}]
    faq = UserUttered("团购怎么买", {"name": "nlu_fallback", "confidence": 0.7}, parse_data={
        "intent": {"name": "nlu_fallback", "confidence": 0.7}, "intent_ranking": ranking,
        "response_selector": {"faq": {"response": {"intent_response_key": "faq/delivery"}}},
        "entities": [], "text": "团购怎么买"}, metadata=wecom("wx-c1"), timestamp=1.0)
    other = UserUttered("嗯嗯", {"name": "nlu_fallback", "confidence": 0.7}, parse_data={
        "intent": {"name": "nlu_fallback", "confidence": 0.7},
        "intent_ranking": [ranking[0], ranking[2]], "entities": [], "text": "嗯嗯"},
        metadata=wecom("wx-c2"), timestamp=2.0)
    feed(broker, published(SENDER, faq, answered("没太明白", "utter_default"), listen(),
                           other, answered("没太明白", "utter_default"), listen()))
    first, second = sorted(await turns(redis_client), key=lambda e: e.at)
    assert (first.data["closest"], first.data["closest_confidence"]) == ("faq/delivery", 0.41)
    assert (second.data["closest"], second.data["closest_confidence"]) == ("checkin", 0.2)


async def test_a_message_the_policies_fell_back_on_is_a_fallback(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, published(SENDER, said("今天天气", "greet", 0.7, wecom("wx-5")),
                           ActionExecuted("action_fallback"),
                           answered("要帮你转人工吗？", "utter_offer_human"), listen()))
    [turn] = await turns(redis_client)
    assert turn.data["intent"] == "greet" and turn.data["fallback"] is True


async def test_a_message_from_the_rest_chat_is_named_by_its_conversation_and_time(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, published("sandbox:xiaoming", said("打卡", at=1_800_000_123.5),
                           answered("打卡成功"), listen()))
    [turn] = await turns(redis_client)
    assert turn.eid == "turn:sandbox:xiaoming:1800000123.500000"
    assert (turn.group, turn.user) == ("sandbox", "xiaoming")


async def test_a_direct_message_has_no_group(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, published("alice", said("打卡", metadata=wecom("wx-6", "", "alice", "single")),
                           answered("打卡成功"), listen()))
    [turn] = await turns(redis_client)
    assert (turn.eid, turn.group, turn.user) == ("turn:wx-6", "", "alice")


async def test_long_words_and_answers_are_clipped(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, a_turn("wx-7", text="券" * 1000, reply="好" * 1000))
    [turn] = await turns(redis_client)
    assert turn.data["text"] == "券" * TEXT_LIMIT and turn.data["answer"] == "好" * TEXT_LIMIT


async def test_interleaved_conversations_keep_their_own_answers(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    alice, bob = a_turn("wx-8", reply="给 alice"), a_turn("wx-9", reply="给 bob",
                                                         sender_id="g1:bob")
    for pair in zip(alice, bob, strict=True):
        feed(broker, list(pair))
    by_eid = {t.eid: t.data["answer"] for t in await turns(redis_client)}
    assert by_eid == {"turn:wx-8": "给 alice", "turn:wx-9": "给 bob"}


async def test_a_turn_that_never_reached_listen_is_recorded_when_the_next_message_comes(
    broker: TurnEventBroker, redis_client: AsyncRedis,
) -> None:
    feed(broker, a_turn("wx-10")[:-1])  # the action limit stopped it before action_listen
    feed(broker, a_turn("wx-11"))
    assert sorted(t.eid for t in await turns(redis_client)) == ["turn:wx-10", "turn:wx-11"]


def test_turns_under_way_are_bounded() -> None:
    folded = Turns(max_pending=2)
    for n in range(5):
        [message] = published(f"g1:m{n}", said("打卡", metadata=wecom(f"wx-{n}")))
        assert folded.feed(message) is None
    assert len(folded) == 2
    ended = [folded.feed(published(f"g1:m{n}", listen())[0]) for n in range(5)]
    assert [e.eid for e in ended if e is not None] == ["turn:wx-3", "turn:wx-4"]
    assert len(folded) == 0


def test_publish_never_raises_when_redis_is_gone() -> None:
    gone = TurnEventBroker(redis.Redis(port=1, socket_connect_timeout=0.1), BRAND)
    feed(gone, a_turn("wx-12"))
    feed(gone, [{"event": "user", "sender_id": SENDER, "parse_data": "not a dict"}])
    feed(gone, published(SENDER, listen()))


async def test_endpoints_yml_gives_rasa_this_broker_on_the_tracker_store_s_redis(
    redis_url: str, redis_client: AsyncRedis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = urlparse(redis_url)
    for name, value in (("QZ_REDIS_HOST", url.hostname), ("QZ_REDIS_PORT", str(url.port)),
                        ("QZ_REDIS_DB", "0"), ("QZ_REDIS_PASSWORD", ""),
                        ("QZ_ACTIONS_PORT", "5055"), ("QZ_TRACKER_TTL_S", "60")):
        monkeypatch.setenv(name, value or "")
    endpoints = str(ROOT / "endpoints.yml")
    tracker_section = read_endpoint_config(endpoints, "tracker_store")
    broker_section = read_endpoint_config(endpoints, "event_broker")
    assert tracker_section is not None and broker_section is not None
    assert broker_section.url == tracker_section.url
    assert {k: broker_section.kwargs[k] for k in ("port", "db", "password")} == {
        k: tracker_section.kwargs[k] for k in ("port", "db", "password")}
    made = await EventBroker.create(broker_section)
    assert isinstance(made, TurnEventBroker)
    feed(made, a_turn("wx-13"))
    await made.close()
    assert [t.eid for t in await turns(redis_client)] == ["turn:wx-13"]


async def test_the_tracker_store_streams_each_turn_to_the_broker_once(
    broker: TurnEventBroker, redis_url: str, redis_client: AsyncRedis,
) -> None:
    url = urlparse(redis_url)
    domain = Domain.load(str(ROOT / "domain.yml"))
    store = FastRedisTrackerStore(domain, host=url.hostname, port=url.port, db=0,
                                  key_prefix="evtest", event_broker=broker)
    tracker = DialogueStateTracker(SENDER, domain.slots)
    for event in (ActionExecuted("action_session_start"), SessionStarted(), listen(),
                  said("打卡", metadata=wecom("wx-14")), ActionExecuted("action_check_in"),
                  answered("打卡成功"), listen()):
        tracker.update(event)
    await store.save(tracker)
    again = await store.retrieve(SENDER)
    assert again is not None
    for event in (said("我的积分", "my_points", 0.88, wecom("wx-15")),
                  ActionExecuted("action_my_points"), answered("你有 5 积分", "utter_x"),
                  listen()):
        again.update(event)
    await store.save(again)
    recorded = await turns(redis_client)
    assert [(t.eid, t.data["intent"], t.data["answer"]) for t in recorded] == [
        ("turn:wx-14", "checkin", "打卡成功"), ("turn:wx-15", "my_points", "你有 5 积分")]
