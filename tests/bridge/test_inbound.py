"""Callbacks in: accepted once into the durable inbox, every bad twin refused with a 4xx."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.common.store import INBOX, BridgeStore, seen_key
from bot.wecom.crypto import WeComCrypto
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import AES_KEY, CORP_ID, TOKEN, BridgeFactory

pytestmark = pytest.mark.redis

NOW = 1_800_000_000.0


def aibot_message(msgid: str = "msg-1", text: str = "@福利官\u2005打卡") -> dict[str, Any]:
    return {"msgid": msgid, "aibotid": "ab1", "chatid": "g1", "chattype": "group",
            "from": {"userid": "alice"}, "response_url": "http://127.0.0.1:9/r",
            "msgtype": "text", "text": {"content": text}}


def sealed_aibot(message: dict[str, Any], *, receive_id: str = "", token: str = TOKEN,
                 at: float = NOW) -> tuple[dict[str, str], bytes]:
    crypto = WeComCrypto(token, AES_KEY, receive_id, clock=lambda: at)
    env = crypto.seal(json.dumps(message, ensure_ascii=False))
    query = {"msg_signature": env.msg_signature, "timestamp": env.timestamp, "nonce": env.nonce}
    return query, json.dumps({"encrypt": env.encrypt}).encode()


def sealed_app(xml: str, *, at: float = NOW) -> tuple[dict[str, str], bytes]:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID, clock=lambda: at)
    env = crypto.seal(xml)
    query = {"msg_signature": env.msg_signature, "timestamp": env.timestamp, "nonce": env.nonce}
    body = (f"<xml><ToUserName>{CORP_ID}</ToUserName>"
            f"<Encrypt><![CDATA[{env.encrypt}]]></Encrypt></xml>")
    return query, body.encode()


class FixedNow:
    """A clock standing at NOW."""

    def now(self) -> float:
        return NOW

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def post(url: str, query: dict[str, str], body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(f"{url}?{urlencode(query)}", data=body) as r:
        return r.status, await r.text()


async def state_of(r: aioredis.Redis) -> tuple[int, list[bytes]]:
    return await r.xlen(INBOX), sorted(await r.keys(seen_key("*")))


# ------------------------------------------------------------------ URL verification
async def test_get_verification_answers_the_plain_echostr(make_bridge: BridgeFactory) -> None:
    bridge = await make_bridge(clock=FixedNow())
    crypto = WeComCrypto(TOKEN, AES_KEY, "", clock=lambda: NOW)
    env = crypto.seal("8172635498761")  # echostr is encrypted like a message
    query = {"msg_signature": env.msg_signature, "timestamp": env.timestamp,
             "nonce": env.nonce, "echostr": env.encrypt}
    async with aiohttp.ClientSession() as s:
        # '+' and '/' in echostr must survive: percent-encoded once, decoded once.
        async with s.get(f"{bridge.url}/wecom/aibot?{urlencode(query)}") as r:
            assert r.status == 200 and await r.read() == b"8172635498761"
        query["msg_signature"] = "0" * 40
        async with s.get(f"{bridge.url}/wecom/aibot?{urlencode(query)}") as r:
            assert r.status == 403 and "-40001" in await r.text()
        async with s.get(f"{bridge.url}/wecom/aibot") as r:
            assert r.status == 400


async def test_query_is_url_decoded_exactly_once(make_bridge: BridgeFactory) -> None:
    bridge = await make_bridge(clock=FixedNow())
    crypto = WeComCrypto(TOKEN, AES_KEY, "", clock=lambda: NOW)
    n = 0
    while "+" not in (env := crypto.seal(f"echo-{n}")).encrypt:  # base64 with a '+' in it
        n += 1
    query = {"msg_signature": env.msg_signature, "timestamp": env.timestamp,
             "nonce": env.nonce, "echostr": env.encrypt}
    async with aiohttp.ClientSession() as s, s.get(
        f"{bridge.url}/wecom/aibot?{urlencode(query)}"  # '+' travels as %2B
    ) as r:
        assert r.status == 200 and await r.text() == f"echo-{n}"


async def test_app_verification_checks_the_corp_id(make_bridge: BridgeFactory) -> None:
    bridge = await make_bridge(clock=FixedNow())
    for receive_id, status in ((CORP_ID, 200), ("", 403)):
        env = WeComCrypto(TOKEN, AES_KEY, receive_id, clock=lambda: NOW).seal("42")
        query = {"msg_signature": env.msg_signature, "timestamp": env.timestamp,
                 "nonce": env.nonce, "echostr": env.encrypt}
        async with aiohttp.ClientSession() as s, s.get(
            f"{bridge.url}/wecom/app?{urlencode(query)}"
        ) as r:
            assert r.status == status


# ------------------------------------------------------------------ accepted once
async def test_message_is_queued_once_even_when_delivered_four_times_at_once(
    make_bridge: BridgeFactory, redis_client: AsyncRedis
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    query, body = sealed_aibot(aibot_message("dup-1"))
    results = await asyncio.gather(*(post(f"{bridge.url}/wecom/aibot", query, body)
                                     for _ in range(4)))
    assert [status for status, _ in results] == [200] * 4
    assert all(text == "" for _, text in results)  # empty 200: WeCom stops retrying
    assert await redis_client.xlen(INBOX) == 1
    entry = (await redis_client.xrange(INBOX))[0][1]
    assert entry[b"kind"] == b"aibot_message" and entry[b"dedupe"] == b"aibot:dup-1"
    payload = json.loads(entry[b"payload"])
    assert payload["userid"] == "alice" and payload["chatid"] == "g1"
    metrics = await BridgeStore(redis_client).metrics()
    assert metrics["callbacks_accepted"] == 1 and metrics["callbacks_duplicate"] == 3


async def test_events_dedupe_on_sender_time_event_and_change_not_time_alone(
    make_bridge: BridgeFactory, redis_client: AsyncRedis
) -> None:
    bridge = await make_bridge(clock=FixedNow())

    def event(chat: str, detail: str) -> str:
        return (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>sys</FromUserName>"
                f"<CreateTime>1800000000</CreateTime><MsgType>event</MsgType>"
                f"<Event>change_external_chat</Event><ChatId>{chat}</ChatId>"
                f"<ChangeType>update</ChangeType><UpdateDetail>{detail}</UpdateDetail>"
                f"<MemChangeCnt>1</MemChangeCnt></xml>")

    for xml in (event("g1", "add_member"), event("g1", "add_member"),
                event("g1", "del_member"), event("g2", "add_member")):
        status, _ = await post(f"{bridge.url}/wecom/app", *sealed_app(xml))
        assert status == 200
    assert await redis_client.xlen(INBOX) == 3  # same second, three distinct events


# ------------------------------------------------------------------ refused, nothing changes
BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<xml><Encrypt>&lol2;</Encrypt></xml>')
DOCTYPE = '<!DOCTYPE xml SYSTEM "http://example.com/x.dtd"><xml><Encrypt>abc</Encrypt></xml>'


def _bad_cases() -> list[tuple[str, str, Any]]:
    good_q, good_b = sealed_aibot(aibot_message("bad-1"))
    stale_q, stale_b = sealed_aibot(aibot_message("bad-2"), at=NOW - 301)
    wrong_id_q, wrong_id_b = sealed_aibot(aibot_message("bad-3"), receive_id=CORP_ID)
    other_token_q, other_token_b = sealed_aibot(aibot_message("bad-4"), token="not-our-token")
    return [
        ("bad signature", "aibot", ({**good_q, "msg_signature": "f" * 40}, good_b)),
        ("stale timestamp", "aibot", (stale_q, stale_b)),
        ("signed by someone else", "aibot", (other_token_q, other_token_b)),
        ("wrong receiveid", "aibot", (wrong_id_q, wrong_id_b)),
        ("not json", "aibot", (good_q, b"<xml/>")),
        ("no encrypt field", "aibot", (good_q, b'{"hello": 1}')),
        ("xml bomb", "app", (good_q, BOMB.encode())),
        ("doctype", "app", (good_q, DOCTYPE.encode())),
        ("malformed xml", "app", (good_q, b"<xml><Encrypt>")),
        ("1 MB body", "aibot", (good_q, b'{"encrypt": "' + b"A" * (1024 * 1024) + b'"}')),
        ("missing query", "aibot", ({}, good_b)),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
async def test_bad_callbacks_get_4xx_and_change_nothing(
    case: tuple[str, str, Any], make_bridge: BridgeFactory, redis_client: AsyncRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _name, kind, (query, body) = case
    bridge = await make_bridge(clock=FixedNow())
    before = await state_of(redis_client)
    with caplog.at_level(logging.DEBUG):
        status, text = await post(f"{bridge.url}/wecom/{kind}", query, body)
    assert 400 <= status < 500, (status, text)
    assert await state_of(redis_client) == before
    for secret in (TOKEN, AES_KEY):
        assert secret not in text and secret not in caplog.text


async def test_the_genuine_twin_of_the_bad_cases_is_accepted(
    make_bridge: BridgeFactory, redis_client: AsyncRedis
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    status, _ = await post(f"{bridge.url}/wecom/aibot", *sealed_aibot(aibot_message("ok-1")))
    assert status == 200 and await redis_client.xlen(INBOX) == 1


async def test_redis_down_answers_503_so_wecom_retries(make_bridge: BridgeFactory) -> None:
    bridge = await make_bridge(clock=FixedNow(), redis_url="redis://127.0.0.1:1/0")
    started = time.monotonic()
    status, text = await post(f"{bridge.url}/wecom/aibot", *sealed_aibot(aibot_message()))
    assert status == 503 and "retry" in text
    assert time.monotonic() - started < 30  # never hangs until WeCom gives up


async def test_unconfigured_callbacks_refuse_with_503(make_bridge: BridgeFactory) -> None:
    bridge = await make_bridge(token="", encoding_aes_key="")
    status, text = await post(f"{bridge.url}/wecom/aibot", *sealed_aibot(aibot_message()))
    assert status == 503 and "WECOM_TOKEN" in text
