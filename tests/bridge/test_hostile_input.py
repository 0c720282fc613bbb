"""Hostile input found by the fault review: each case a clear 4xx (or a safe accept), never 5xx."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.common.store import INBOX, OUTBOX
from bot.wecom.crypto import WeComCrypto, signature
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import AES_KEY, TOKEN, BridgeFactory
from tests.bridge.test_inbound import NOW, FixedNow, aibot_message, post, sealed_aibot
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
DEEP = b"[" * 32_000 + b"]" * 32_000


def _sealed_text(plaintext: str, *, timestamp: str | None = None) -> tuple[dict[str, str], bytes]:
    """Seal a plaintext given as JSON text (so it may carry escapes json.dumps never writes)."""
    crypto = WeComCrypto(TOKEN, AES_KEY, "", clock=lambda: NOW)
    env = crypto.seal(plaintext)
    ts = timestamp or env.timestamp
    query = {"msg_signature": signature(TOKEN, ts, env.nonce, env.encrypt), "timestamp": ts,
             "nonce": env.nonce}
    return query, json.dumps({"encrypt": env.encrypt}).encode()


async def test_deeply_nested_json_without_credentials_is_a_400_and_no_traceback(
    make_bridge: BridgeFactory, redis_client: AsyncRedis, caplog: pytest.LogCaptureFixture,
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    query = {"msg_signature": "x", "timestamp": "1", "nonce": "1"}
    status, text = await post(f"{bridge.url}/wecom/aibot", query, DEEP)
    assert status == 400 and "nested" in text
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    assert await redis_client.xlen(INBOX) == 0


async def test_a_timestamp_of_hundreds_of_digits_is_refused(
    make_bridge: BridgeFactory, redis_client: AsyncRedis,
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    query, body = _sealed_text(json.dumps(aibot_message()), timestamp="9" * 400)
    status, _ = await post(f"{bridge.url}/wecom/aibot", query, body)
    assert 400 <= status < 500
    assert await redis_client.xlen(INBOX) == 0


async def test_a_lone_surrogate_is_stored_safely_and_the_message_is_not_lost(
    make_bridge: BridgeFactory, redis_client: AsyncRedis,
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    text = json.dumps(aibot_message("sur-1")).replace('"content": "', '"content": "\\ud800', 1)
    assert "\\ud800" in text
    query, body = _sealed_text(text)
    status, _ = await post(f"{bridge.url}/wecom/aibot", query, body)
    assert status == 200
    [(_id, fields)] = await redis_client.xrange(INBOX)
    assert "\ufffd" in fields[b"payload"].decode("utf-8")


@pytest.mark.parametrize("item", ["not an object", 42, None, ["x"]])
async def test_a_mixed_message_with_odd_items_is_accepted_without_crashing(
    make_bridge: BridgeFactory, redis_client: AsyncRedis, item: Any,
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    message = aibot_message(f"mixed-{item!r}")
    del message["text"]
    message.update({"msgtype": "mixed", "mixed": {"msg_item": [
        {"msgtype": "text", "text": item}, {"msgtype": "text", "text": {"content": "打卡"}}]}})
    query, body = sealed_aibot(message, at=NOW)
    status, _ = await post(f"{bridge.url}/wecom/aibot", query, body)
    assert status == 200
    assert await redis_client.xlen(INBOX) == 1


@pytest.mark.parametrize("body", [
    DEEP,
    json.dumps({"msgtype": "news", "content": {"articles": "x"}}).encode(),
    json.dumps({"msgtype": "news", "content": [{"title": 1, "url": "u"}]}).encode(),
    json.dumps({"msgtype": "news", "content": "[" * 5000 + "]" * 5000}).encode(),
    json.dumps({"msgtype": "template_card", "content": [1, 2]}).encode(),
    json.dumps({"msgtype": "template_card", "content": "null"}).encode(),
])
async def test_api_bodies_of_the_wrong_shape_are_a_400(
    make_bridge: BridgeFactory, redis_client: AsyncRedis, body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bridge = await make_bridge(clock=FixedNow())
    async with aiohttp.ClientSession() as s, s.post(
            f"{bridge.url}/api/groups/g1/messages", data=body, headers=AUTH) as r:
        assert r.status == 400, await r.text()
        assert "error" in await r.json()
    assert await redis_client.xlen(OUTBOX) == 0
    assert "Traceback" not in caplog.text


async def test_after_a_413_the_connection_is_closed_not_left_hanging(
    make_bridge: BridgeFactory,
) -> None:
    bridge = await make_bridge(clock=FixedNow())
    query = urlencode({"msg_signature": "x", "timestamp": "1", "nonce": "1"})
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{bridge.url}/wecom/aibot?{query}", data=b"x" * 200_000) as r:
            assert r.status == 413
            assert r.headers.get("Connection", "").lower() == "close"
        async with s.get(f"{bridge.url}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
            assert r.status in (200, 503)
