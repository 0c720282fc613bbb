"""The HTTP API: token, validation, 202 only once queued, idempotency, status."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from bot.common.store import OUTBOX
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import BridgeFactory
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def call(method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as r:
        return r.status, await r.json(content_type=None)


async def test_post_is_202_once_queued_and_idempotent(
    make_bridge: BridgeFactory, redis_client: AsyncRedis
) -> None:
    bridge = await make_bridge()
    url = f"{bridge.url}/api/groups/g1/messages"
    body = {"msgtype": "text", "content": "今晚 8 点直播抽奖 🎁", "mention": ["alice"]}
    headers = {**AUTH, "Idempotency-Key": "live-1123"}
    status, doc = await call("POST", url, json=body, headers=headers)
    assert status == 202 and doc["id"].startswith("p_") and not doc["duplicate"]
    again, doc2 = await call("POST", url, json=body, headers=headers)
    assert again == 202 and doc2["id"] == doc["id"] and doc2["duplicate"]
    assert await redis_client.xlen(OUTBOX) == 1
    status, state = await call("GET", f"{bridge.url}{doc['status_url']}", headers=AUTH)
    assert status == 200 and state["state"] == "queued" and state["group"] == "g1"


@pytest.mark.parametrize(("path", "body", "headers", "expected"), [
    ("/api/groups/g1/messages", {"content": "hi"}, {}, 401),
    ("/api/groups/g1/messages", {"content": "hi"}, {"Authorization": "Bearer wrong"}, 401),
    ("/api/groups/nope/messages", {"content": "hi"}, AUTH, 404),
    ("/api/groups/g1/messages", {"content": ""}, AUTH, 400),
    ("/api/groups/g1/messages", {"msgtype": "voice", "content": "x"}, AUTH, 400),
    ("/api/groups/g1/messages", {"msgtype": "news", "content": []}, AUTH, 400),
    ("/api/groups/g1/messages", {"content": "x" * 20000}, AUTH, 400),
    ("/api/groups/g1/messages", {"content": "hi", "mention": [1]}, AUTH, 400),
    ("/api/groups/g1/messages", ["not", "an", "object"], AUTH, 400),
])
async def test_bad_requests_are_refused_and_queue_nothing(
    make_bridge: BridgeFactory, redis_client: AsyncRedis, path: str, body: Any,
    headers: dict[str, str], expected: int,
) -> None:
    bridge = await make_bridge()
    status, doc = await call("POST", f"{bridge.url}{path}", json=body, headers=headers)
    assert status == expected and doc["error"]
    assert await redis_client.xlen(OUTBOX) == 0
    assert API_TOKEN not in str(doc)


async def test_status_of_unknown_post_is_404_and_metrics_need_the_token(
    make_bridge: BridgeFactory,
) -> None:
    bridge = await make_bridge()
    assert (await call("GET", f"{bridge.url}/api/messages/p_nope", headers=AUTH))[0] == 404
    assert (await call("GET", f"{bridge.url}/api/metrics"))[0] == 401
    status, doc = await call("GET", f"{bridge.url}/api/metrics", headers=AUTH)
    assert status == 200 and "queues" in doc
    assert (await call("GET", f"{bridge.url}/healthz"))[0] == 200
