"""Fuzzing every route of the bridge: no input yields a 5xx, a traceback or changed state.

Each route gets QZ_FUZZ_EXAMPLES generated inputs in all: 4,000 by default, the same ones
every run (a regression set that keeps `make test` inside its time budget); `make fuzz`
sends 25,000 new ones per route (QZ_FUZZ_RANDOM=1). The callback URLs get half
unauthenticated junk and half signed, encrypted callbacks whose plaintext is arbitrary JSON
or XML; the URL verification half arbitrary parameters and half valid signatures of
arbitrary echo strings; the API bodies of every shape. A 4xx must leave the inbox and the
outbox as they were; nothing may be logged with a traceback.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Background, create_app
from bot.common.store import HANDOFFS, INBOX, OUTBOX
from bot.wecom.crypto import WeComCrypto
from qunzhu import settings as settings_of
from tests.bridge.conftest import AES_KEY, CORP_ID, TOKEN, directory
from tests.bridge.test_inbound import NOW, FixedNow
from tests.conftest import API_TOKEN, RedisTarget, bridge_settings

pytestmark = pytest.mark.redis
PER_ROUTE = int(settings_of.get("QZ_FUZZ_EXAMPLES"))
RANDOM = settings_of.get("QZ_FUZZ_RANDOM").strip() in ("1", "true")


def fuzz(examples: int) -> Any:
    """Hypothesis settings for `examples` inputs, reproducible from run to run."""
    return settings(max_examples=examples, deadline=None, database=None,
                    derandomize=not RANDOM,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


class Tracebacks(logging.Handler):
    """Counts log records that carry a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.seen.append(record.getMessage())


class Bridge:
    """The real bridge app on a loopback port, in its own thread and event loop."""

    def __init__(self, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.redis_url = redis_url
        self.port = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = create_app(bridge_settings(self.redis_url, token=TOKEN, encoding_aes_key=AES_KEY,
                                         corp_id=CORP_ID),
                         clock=FixedNow(), directory=directory(),
                         background=Background(False, False, False))
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> Bridge:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def bridge(single_redis: RedisTarget,
           ) -> Iterator[tuple[redis.Redis, http.client.HTTPConnection, Tracebacks]]:
    # Hostile input is about parsing, not storage: one server is enough.
    redis_url = single_redis.url
    watch = Tracebacks()
    logging.getLogger().addHandler(watch)
    with Bridge(redis_url) as running:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
        yield redis.Redis.from_url(redis_url), conn, watch
        conn.close()
    logging.getLogger().removeHandler(watch)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> int:
    """One request on the kept-alive connection (reopened if the server closed it)."""
    for attempt in range(2):
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
            return response.status
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def depths(r: redis.Redis) -> tuple[int, int, int]:
    inbox, outbox, handoffs = (r.pipeline(transaction=False).xlen(INBOX).xlen(OUTBOX)
                               .xlen(HANDOFFS).execute())
    return int(inbox), int(outbox), int(handoffs)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
query_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


def _check(status: int, before: tuple[int, int, int], r: redis.Redis,
           watch: Tracebacks) -> None:
    assert status < 500, status
    if 400 <= status < 500:
        assert depths(r) == before
    assert not watch.seen, watch.seen[:1]


@fuzz(PER_ROUTE // 2)
@given(params=st.dictionaries(st.sampled_from(["msg_signature", "timestamp", "nonce", "x"]),
                              query_values, max_size=4),
       body=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
def test_unauthenticated_callbacks(bridge: Any, params: dict[str, str],
                                   body: bytes) -> None:
    r, conn, watch = bridge
    before = depths(r)
    for kind in ("aibot", "app"):
        status = request(conn, "POST", f"/wecom/{kind}?{urlencode(params)}", body)
        _check(status, before, r, watch)


AIBOT_CRYPTO = WeComCrypto(TOKEN, AES_KEY, "", clock=lambda: NOW)
APP_CRYPTO = WeComCrypto(TOKEN, AES_KEY, CORP_ID, clock=lambda: NOW)


def _signed(crypto: WeComCrypto, plaintext: str) -> tuple[str, str]:
    """The signed query string and the encrypt field of a callback carrying `plaintext`."""
    env = crypto.seal(plaintext.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    query = urlencode({"msg_signature": env.msg_signature, "timestamp": env.timestamp,
                       "nonce": env.nonce})
    return query, env.encrypt
messages = st.fixed_dictionaries(
    {"msgid": st.text(max_size=12) | json_values, "msgtype": st.sampled_from(
        ["text", "mixed", "image", "voice", "file", "event", "stream", "x"]) | json_values},
    optional={"from": json_values | st.fixed_dictionaries({"userid": json_values}),
              "chatid": json_values, "chattype": json_values, "text": json_values,
              "mixed": json_values, "voice": json_values, "event": json_values,
              "response_url": json_values, "quote": json_values})


@fuzz(PER_ROUTE // 2)
@given(plaintext=messages.map(lambda m: json.dumps(m)) | json_values.map(json.dumps)
       | st.text(max_size=300))
def test_signed_aibot_callbacks_with_any_plaintext(bridge: Any, plaintext: str) -> None:
    r, conn, watch = bridge
    before = depths(r)
    query, encrypt = _signed(AIBOT_CRYPTO, plaintext)
    status = request(conn, "POST", f"/wecom/aibot?{query}",
                     json.dumps({"encrypt": encrypt}).encode())
    _check(status, before, r, watch)


xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
app_plaintexts = st.builds(
    lambda fields: "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    + "</xml>",
    st.dictionaries(st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType",
                                     "Content", "MsgId", "AgentID", "Event", "ChangeType",
                                     "UpdateDetail", "ChatId", "MemChangeCnt"]),
                    xml_text.filter(lambda t: "]]>" not in t), max_size=8),
) | st.text(max_size=300)


@fuzz(PER_ROUTE // 2)
@given(plaintext=app_plaintexts)
def test_signed_app_callbacks_with_any_plaintext(bridge: Any, plaintext: str) -> None:
    r, conn, watch = bridge
    before = depths(r)
    query, encrypt = _signed(APP_CRYPTO, plaintext)
    body = f"<xml><ToUserName>{CORP_ID}</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    status = request(conn, "POST", f"/wecom/app?{query}", body.encode())
    _check(status, before, r, watch)


@fuzz(PER_ROUTE // 2)
@given(params=st.dictionaries(st.sampled_from(["msg_signature", "timestamp", "nonce",
                                               "echostr"]), query_values, max_size=4),
       signed_echo=st.text(max_size=100))
def test_url_verification(bridge: Any, params: dict[str, str],
                          signed_echo: str) -> None:
    r, conn, watch = bridge
    before = depths(r)
    status = request(conn, "GET", f"/wecom/aibot?{urlencode(params)}")
    _check(status, before, r, watch)
    env = AIBOT_CRYPTO.seal(signed_echo)
    query = urlencode({"msg_signature": env.msg_signature, "timestamp": env.timestamp,
                       "nonce": env.nonce, "echostr": env.encrypt})
    assert request(conn, "GET", f"/wecom/aibot?{query}") == 200


@fuzz(PER_ROUTE)
@given(group=st.sampled_from(["g1", "nosuch", "%E4%B8%AD", "g1%00"]),
       body=json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({"msgtype": st.sampled_from(
           ["text", "markdown", "markdown_v2", "image", "news", "template_card", "file"])
           | json_values}, optional={"content": json_values, "mention": json_values,
                                     "idempotency_key": json_values}).map(
           lambda v: json.dumps(v).encode())
       | st.binary(max_size=500))
def test_api_bodies(bridge: Any, group: str, body: bytes) -> None:
    r, conn, watch = bridge
    before = depths(r)
    status = request(conn, "POST", f"/api/groups/{group}/messages", body,
                     {"Authorization": f"Bearer {API_TOKEN}",
                      "Content-Type": "application/json"})
    _check(status, before, r, watch)


@fuzz(PER_ROUTE)
@given(idem=st.sampled_from(["", "k" * 201, "xiaoman:alice:m1"]),
       body=json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({"user": json_values}, optional={
           "group": json_values, "text": json_values, "conversation_id": json_values,
           "history": st.lists(st.fixed_dictionaries({"from": json_values},
                                                     optional={"text": json_values}),
                               max_size=3) | json_values}).map(
           lambda v: json.dumps(v).encode())
       | st.binary(max_size=500))
def test_api_handoff_bodies(bridge: Any, idem: str, body: bytes) -> None:
    r, conn, watch = bridge
    before = depths(r)
    status = request(conn, "POST", "/api/handoffs", body,
                     {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": idem,
                      "Content-Type": "application/json"})
    _check(status, before, r, watch)
