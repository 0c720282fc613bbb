"""Callback → turn → reply through the simulator: once per message, polite when Rasa fails.

Rasa is played here by a small REST stand-in that counts turns and can be slow; the real
Rasa is exercised in tests/e2e. Everything else — crypto, retries, Redis, response_url —
is the real thing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import Background
from bot.common.clock import RealClock
from bot.common.store import HANDOFFS, INBOX, RELAYS, BridgeStore, turn_key
from bot.common.texts import Texts
from bot.inbound.rasa_client import RasaReplicas
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import Bridge, BridgeFactory, Sim, start_sim
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.redis
TEXTS = Texts.from_domain()
BUSY = TEXTS.variations("utter_busy")


class RasaStandIn:
    """Rasa's REST channel: echoes a check-in reply, counts turns, can be slow."""

    def __init__(self) -> None:
        self.turns: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self.finished = 0
        self.empty_answers = 0  # answer [] this many times: the action server is down

    async def webhook(self, request: web.Request) -> web.Response:
        doc = await request.json()
        self.turns.append(doc)
        await asyncio.sleep(self.delay_s)
        self.finished += 1
        if self.empty_answers > 0:
            self.empty_answers -= 1
            return web.json_response([])
        return web.json_response([{"recipient_id": doc["sender"],
                                   "text": f"打卡成功 ✅ 你说的是「{doc['message']}」"}])


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[RasaStandIn, TestServer]]:
    stand_in = RasaStandIn()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", stand_in.webhook)
    server = TestServer(app)
    await server.start_server()
    yield stand_in, server
    await server.close()


@pytest.fixture
async def live() -> AsyncIterator[Sim]:
    sim = await start_sim(RealClock())
    yield sim
    await sim.callbacks.close()
    await sim.server.close()


async def wired(make_bridge: BridgeFactory, sim: Sim, rasa_url: str, **kw: Any) -> Bridge:
    bridge: Bridge = await make_bridge(
        wecom_api_base=sim.url, clock=RealClock(), rasa_url=rasa_url, rasa_timeout_s=1.0,
        background=Background(turns=True, sender=True, handoff=True), **kw,
    )
    sim.callbacks._bridge = bridge.url  # point the simulator's callbacks at this bridge
    return bridge


def bot_lines(sim: Sim, group: str) -> list[str]:
    return [i.content for i in sim.state.feed if i.group == group and i.sender == "bot"]


async def eventually(check: Any, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.02)


async def test_four_concurrent_deliveries_make_one_turn_and_one_reply(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    stand_in, server = rasa
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    msgid, statuses = await live.callbacks.member_says(
        "g1", "alice", "打卡", base_url=live.url, bot_name="福利官", copies=4)
    assert statuses == [200] * 4
    await eventually(lambda: len(bot_lines(live, "g1")) >= 1)
    await asyncio.sleep(0.5)  # would a second reply come?
    assert len(stand_in.turns) == 1
    turn = stand_in.turns[0]
    assert turn["sender"] == "g1:alice" and turn["message"] == "打卡"  # @福利官 stripped
    assert turn["metadata"] == {"msgid": msgid, "chatid": "g1", "userid": "alice",
                                "chattype": "group"}
    [reply] = bot_lines(live, "g1")
    assert reply.startswith("<@alice> ") and "打卡成功" in reply


async def test_slow_rasa_never_delays_the_callback(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    stand_in, server = rasa
    stand_in.delay_s = 0.8
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    _msgid, statuses = await live.callbacks.member_says(
        "g1", "bob", "领券", base_url=live.url, bot_name="福利官")
    assert statuses == [200]
    assert stand_in.finished == 0  # WeCom had its 200 while Rasa was still thinking
    await eventually(lambda: len(bot_lines(live, "g1")) == 1)


async def test_rasa_down_gets_a_polite_reply_and_is_counted(
    make_bridge: BridgeFactory, live: Sim, redis_client: AsyncRedis,
) -> None:
    await wired(make_bridge, live, "http://127.0.0.1:9", turn_fresh_s=2.5)
    await live.callbacks.member_says("g2", "alice", "打卡", base_url=live.url, bot_name="福利官")
    await eventually(lambda: len(bot_lines(live, "g2")) == 1)
    reply = bot_lines(live, "g2")[0]
    assert any(reply.endswith(b) for b in BUSY)
    metrics = await BridgeStore(redis_client).metrics()
    assert metrics["rasa_failures"] == 1  # one member answered busy …
    assert metrics["turn_retries"] >= 1  # … after asking again while it was fresh


async def test_lost_action_events_are_a_failure_retried_until_the_member_is_answered(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
    redis_client: AsyncRedis,
) -> None:
    stand_in, server = rasa
    stand_in.empty_answers = 3  # Rasa says 200 [] while the action server is down
    # Entries idle for 200 ms count as a dead worker's: the retrying one must not be taken.
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"), reclaim_idle_ms=200)
    await live.callbacks.member_says("g6", "alice", "打卡", base_url=live.url, bot_name="福利官")
    await eventually(lambda: len(bot_lines(live, "g6")) == 1)
    await asyncio.sleep(2.0)  # a second worker taking the entry would answer again by now
    [reply] = bot_lines(live, "g6")
    assert "打卡成功" in reply  # the real answer, not silence and not the busy reply
    assert len(stand_in.turns) == 4
    assert {t["metadata"]["msgid"] for t in stand_in.turns} == {stand_in.turns[0]["metadata"][
        "msgid"]}  # the same message each time: the game scripts replay, never pay twice
    metrics = await BridgeStore(redis_client).metrics()
    assert metrics["rasa_empty_turns"] == 3 and "rasa_failures" not in metrics


async def test_an_image_gets_a_kind_text_only_reply_without_a_turn(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    stand_in, server = rasa
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    body, params = live.callbacks.aibot_request({
        "msgid": "img-1", "chatid": "g3", "chattype": "group", "from": {"userid": "bob"},
        "response_url": live.state.new_response_url(live.url, "g3", "bob"),
        "msgtype": "image", "image": {"url": "https://example.com/x.png"}})
    assert await live.callbacks.deliver("/wecom/aibot", body, params, "img-1") == 200
    await eventually(lambda: len(bot_lines(live, "g3")) == 1)
    assert stand_in.turns == []
    assert any(bot_lines(live, "g3")[0].endswith(t) for t in TEXTS.variations(
        "utter_bridge_text_only"))


async def test_a_bare_mention_gets_a_greeting_with_what_the_bot_can_do(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    stand_in, server = rasa
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    await live.callbacks.member_says("g4", "bob", "", base_url=live.url, bot_name="福利官")
    await eventually(lambda: len(bot_lines(live, "g4")) == 1)
    reply = bot_lines(live, "g4")[0]
    assert any(reply.endswith(t) for t in TEXTS.variations("utter_bridge_hello"))
    assert "打卡" in reply and "看不懂" not in reply
    assert stand_in.turns == []


async def test_a_reclaimed_turn_replies_once_without_asking_rasa_again(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
    redis_client: AsyncRedis,
) -> None:
    stand_in, server = rasa
    # A worker crashed after saving the turn's replies but before replying.
    await redis_client.hset(turn_key("aibot:crashed-1"),
                            mapping={"replies": json.dumps(["已保存的回复"])})
    payload = {"msgid": "crashed-1", "chattype": "group", "chatid": "g4", "userid": "alice",
               "msgtype": "text", "text": "打卡",
               "response_url": live.state.new_response_url(live.url, "g4", "alice")}
    await redis_client.xgroup_create(INBOX, "workers", id="0", mkstream=True)
    await redis_client.xadd(INBOX, {
        "kind": "aibot_message", "dedupe": "aibot:crashed-1",
        "payload": json.dumps(payload, ensure_ascii=False), "received_at": "0"})
    await redis_client.xreadgroup("workers", "dead-worker", {INBOX: ">"})
    await asyncio.sleep(0.3)  # idle past reclaim_idle_ms (200 ms in tests)
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    await eventually(lambda: len(bot_lines(live, "g4")) == 1)
    await asyncio.sleep(0.5)
    assert bot_lines(live, "g4") == ["<@alice> 已保存的回复"]
    assert stand_in.turns == []


async def test_newcomers_are_welcomed_by_name_after_a_member_list_diff(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    from bot.simulator.state import SimMember

    _stand_in, server = rasa
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    group = live.state.groups["g5"]
    group.members["wm_new"] = SimMember("wm_new", "新来的朵朵", int(live.state.clock.now()))
    assert await live.callbacks.members_joined("g5", 1) == 200
    await eventually(lambda: len(bot_lines(live, "g5")) == 1)
    assert "新来的朵朵" in bot_lines(live, "g5")[0]
    assert "Alice" not in bot_lines(live, "g5")[0]  # old members are not welcomed again
    await asyncio.sleep(1.1)  # identical events within one second are one event to WeCom
    group.members["wm_two"] = SimMember("wm_two", "阿杰", int(live.state.clock.now()))
    await live.callbacks.members_joined("g5", 1)
    await eventually(lambda: len(bot_lines(live, "g5")) == 2)
    assert "阿杰" in bot_lines(live, "g5")[1] and "朵朵" not in bot_lines(live, "g5")[1]


async def test_handoff_requests_reach_the_staff_group_once(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
    redis_client: AsyncRedis,
) -> None:
    _stand_in, server = rasa
    bridge = await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    request = {"user": "alice", "group": "g1", "conversation_id": "g1:alice", "text": "转人工",
               "history": [{"from": "member", "text": "券用不了"}, {"from": "bot", "text": "抱歉"}]}
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": "xiaoman:alice:m1"}
    async with aiohttp.ClientSession() as s:
        for _ in range(2):  # the action retried: still one request, one staff post
            async with s.post(f"{bridge.url}/api/handoffs", json=request,
                              headers=headers) as resp:
                assert resp.status == 202
        async with s.post(f"{bridge.url}/api/handoffs", json={"user": ""},
                          headers=headers) as resp:
            assert resp.status == 400 and "user" in (await resp.json())["error"]
    await eventually(lambda: len(bot_lines(live, "staff")) == 1)
    await asyncio.sleep(0.3)
    [post] = bot_lines(live, "staff")
    assert "<@kefu01>" in post and "券用不了" in post
    assert "成员：Alice" in post and "群：测试群g1" in post and "alice" not in post  # names


async def test_app_message_is_answered_one_to_one_through_message_send(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    stand_in, server = rasa
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    xml = ("<xml><ToUserName>wwtestcorp01</ToUserName><FromUserName>alice</FromUserName>"
           "<CreateTime>1800000000</CreateTime><MsgType>text</MsgType><Content>我的积分</Content>"
           "<MsgId>9001</MsgId><AgentID>1000002</AgentID></xml>")
    body, params = live.callbacks.app_request(xml)
    assert await live.callbacks.deliver("/wecom/app", body, params, "9001") == 200
    await eventually(lambda: len(live.state.app_messages) == 1)
    sent = live.state.app_messages[0]
    assert sent["touser"] == "alice" and sent["agentid"] == 1000002
    assert "我的积分" in sent["text"]["content"]
    assert stand_in.turns[0]["sender"] == "alice"
    assert stand_in.turns[0]["metadata"]["chattype"] == "single"


async def test_turns_spread_over_rasa_replicas_each_member_sticks_and_a_dead_one_is_skipped(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
) -> None:
    first, first_server = rasa
    second = RasaStandIn()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", second.webhook)
    second_server = TestServer(app)
    await second_server.start_server()
    dead = TestServer(web.Application())
    await dead.start_server()
    dead_url = str(dead.make_url("")).rstrip("/")
    await dead.close()  # nothing listens there any more: connections are refused
    urls = [str(s.make_url("")).rstrip("/") for s in (first_server, second_server)]
    try:
        await wired(make_bridge, live, ",".join([*urls, dead_url]))
        members = [f"m{i}" for i in range(12)]
        for _round in range(2):
            for member in members:
                await live.callbacks.member_says("g1", member, "打卡", base_url=live.url,
                                                 bot_name="福利官")
        await eventually(lambda: len(bot_lines(live, "g1")) >= 24)
        assert len(first.turns) + len(second.turns) == 24  # every turn answered once
        assert first.turns and second.turns  # both replicas took turns
        for stand_in in (first, second):  # a member's two turns went to the same replica
            senders = [t["sender"] for t in stand_in.turns]
            assert all(senders.count(s) == 2 for s in senders)
        assert not any(busy in line for busy in BUSY for line in bot_lines(live, "g1"))
        replicas = RasaReplicas.parse(",".join([*urls, dead_url]))
        assert any(replicas.for_conversation(f"g1:{m}")[0] == dead_url for m in members)
    finally:
        await second_server.close()


def test_rasa_url_lists_are_checked() -> None:
    replicas = RasaReplicas.parse(" http://a:5005/ , http://b:5005 ")
    assert replicas.urls == ("http://a:5005", "http://b:5005")
    order = replicas.for_conversation("g1:alice")
    assert sorted(order) == sorted(replicas.urls)
    assert replicas.for_conversation("g1:alice") == order  # stable
    for bad in ("", " , ", "a:5005", "http://a:5005,ftp://b"):
        with pytest.raises(ValueError, match="RASA_URL"):
            RasaReplicas.parse(bad)


async def test_redis_that_comes_back_empty_does_not_leave_the_bridge_stuck(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
    redis_client: AsyncRedis,
) -> None:
    _stand_in, server = rasa
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))
    await live.callbacks.member_says("g5", "alice", "打卡", base_url=live.url, bot_name="福利官")
    await eventually(lambda: len(bot_lines(live, "g5")) == 1)
    await redis_client.flushdb()  # restarted without its data: streams and groups are gone
    await asyncio.sleep(1.5)
    await live.callbacks.member_says("g5", "bob", "打卡", base_url=live.url, bot_name="福利官")
    await eventually(lambda: len(bot_lines(live, "g5")) == 2)
    await redis_client.xadd(HANDOFFS, {
        "user": "bob", "group": "g5", "conversation_id": "g5:bob", "text": "转人工",
        "history": "[]"})
    await eventually(lambda: len(bot_lines(live, "staff")) == 1)


async def test_a_handoff_left_pending_by_a_dead_relay_still_reaches_staff(
    make_bridge: BridgeFactory, live: Sim, rasa: tuple[RasaStandIn, TestServer],
    redis_client: AsyncRedis,
) -> None:
    _stand_in, server = rasa
    stream = HANDOFFS
    await redis_client.xgroup_create(stream, RELAYS, id="0", mkstream=True)
    await redis_client.xadd(stream, {"user": "alice", "group": "g7", "conversation_id": "g7:alice",
                                     "text": "转人工", "history": "[]"})
    # A relay read it and died before posting: the request is pending under its name.
    read = await redis_client.xreadgroup(RELAYS, "bridge-otherhost-5080", {stream: ">"})
    assert read and len(read[0][1]) == 1
    await wired(make_bridge, live, str(server.make_url("")).rstrip("/"))  # another consumer
    await eventually(lambda: len(bot_lines(live, "staff")) == 1)
    assert "转人工" in bot_lines(live, "staff")[0]
    for _ in range(100):  # acknowledged right after the post
        if (await redis_client.xpending(stream, RELAYS))["pending"] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await redis_client.xpending(stream, RELAYS))["pending"] == 0


def test_a_restarted_bridge_keeps_its_consumer_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.common.settings import BridgeSettings

    monkeypatch.setenv("BRIDGE_PORT", "5081")
    first, second = BridgeSettings.from_env(), BridgeSettings.from_env()
    assert first.consumer == second.consumer and first.consumer.endswith("-5081")
    monkeypatch.setenv("BRIDGE_CONSUMER", "turns-a")
    assert BridgeSettings.from_env().consumer == "turns-a"
