"""WeCom callbacks in: verify → decrypt → dedupe → durable inbox → 200, in milliseconds.

The callback never waits on NLU: once the message is in the Redis inbox (atomically with
its dedupe mark) WeCom gets an empty 200 and the turn runs in the background. If Redis does
not answer within a moment, the message goes to the durable disk spool instead (fsynced
before the 200) and moves into the inbox, with the same dedupe, when Redis is back. While
anything waits in the spool, new messages queue behind it so a member's order holds. Only
a full spool (or no spool configured) answers 503, so WeCom's retry keeps the message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

from aiohttp import web

from bot.common import spooled
from bot.common.clock import Clock
from bot.common.spool import Spool, SpoolFull
from bot.common.store import BridgeStore
from bot.inbound import inbox
from bot.wecom import errors
from bot.wecom.crypto import WeComCrypto
from bot.wecom.parser import (
    aibot_encrypt_field,
    app_encrypt_field,
    parse_aibot,
    parse_app,
)
from qunzhu.redisconn import REDIS_DOWN_OR_SLOW

log = logging.getLogger(__name__)

Kind = Literal["aibot", "app"]
MAX_QUERY_VALUE = 1024


def _error(status: int, exc: errors.WeComCryptoError | str) -> web.Response:
    """A short plain-text error naming the errcode, never a secret or the body."""
    if isinstance(exc, errors.WeComCryptoError):
        text = f"{type(exc).__name__}: {exc.reason} (errcode {exc.errcode})"
    else:
        text = exc
    return web.Response(status=status, text=text + "\n")


def _status_for(exc: errors.WeComCryptoError) -> int:
    """Signature/timestamp/receiveid failures are 403; malformed input 400."""
    if isinstance(exc, (errors.SignatureError, errors.ReceiveIdError)):
        return 403
    return 400


def _query(request: web.Request, *names: str) -> list[str] | None:
    """Query parameters as aiohttp decoded them — exactly once; None when one is missing."""
    values = [request.query.get(name, "") for name in names]
    if not all(values) or any(len(v) > MAX_QUERY_VALUE for v in values):
        return None
    return values


class CallbackHandler:
    """One callback URL (智能机器人 JSON or app XML) with its crypto and the inbox."""

    def __init__(
        self, kind: Kind, crypto: WeComCrypto | None, store: Callable[[], BridgeStore],
        clock: Clock, dedupe_ttl_s: int, *,
        spool: Callable[[], Spool | None] = lambda: None, redis_wait_s: float = 2.0,
    ) -> None:
        self.kind = kind
        self._crypto = crypto
        self._store = store  # created at startup, after the routes
        self._spool = spool
        self._redis_wait_s = redis_wait_s
        self._clock = clock
        self._ttl = dedupe_ttl_s

    async def verify(self, request: web.Request) -> web.Response:
        """GET URL verification: the decrypted echostr as plain text, nothing else."""
        if self._crypto is None:
            return _error(503, "callback not configured (WECOM_TOKEN / WECOM_ENCODING_AES_KEY)")
        params = _query(request, "msg_signature", "timestamp", "nonce", "echostr")
        if params is None:
            return _error(400, "missing msg_signature, timestamp, nonce or echostr")
        try:
            plain = self._crypto.verify_url(*params)
        except errors.WeComCryptoError as exc:
            log.warning("%s URL verification refused: %s", self.kind, exc)
            return _error(_status_for(exc), exc)
        return web.Response(body=plain.encode("utf-8"), content_type="text/plain")

    async def receive(self, request: web.Request) -> web.Response:
        """POST callback: verify, decrypt, accept once, answer 200 with an empty body."""
        if self._crypto is None:
            return _error(503, "callback not configured (WECOM_TOKEN / WECOM_ENCODING_AES_KEY)")
        params = _query(request, "msg_signature", "timestamp", "nonce")
        if params is None:
            return _error(400, "missing msg_signature, timestamp or nonce")
        body = await request.read()
        try:
            encrypt = aibot_encrypt_field(body) if self.kind == "aibot" else app_encrypt_field(body)
            plain = self._crypto.open(params[0], params[1], params[2], encrypt)
            parsed = parse_aibot(plain) if self.kind == "aibot" else parse_app(plain)
        except errors.WeComCryptoError as exc:
            log.warning("%s callback refused: %s", self.kind, exc)
            return _error(_status_for(exc), exc)
        fields = inbox.to_fields(parsed, self._clock.now())
        spool = self._spool()
        if spool is not None and spool.pending:  # behind what waits, to keep the order
            return await self._to_spool(spool, parsed.dedupe_key, fields)
        try:
            entry = await asyncio.wait_for(
                self._store().accept(parsed.dedupe_key, fields, self._ttl), self._redis_wait_s)
        except REDIS_DOWN_OR_SLOW as exc:
            if spool is not None:
                log.warning("inbox unavailable (%s); spooling the callback to disk",
                            type(exc).__name__)
                return await self._to_spool(spool, parsed.dedupe_key, fields)
            log.error("inbox unavailable, asking WeCom to retry: %s", type(exc).__name__)
            return _error(503, "temporarily unavailable, retry")
        if entry is None:
            log.info("duplicate callback %s ignored", parsed.dedupe_key)
        return web.Response(status=200, body=b"")

    async def _to_spool(self, spool: Spool, dedupe: str, fields: dict[str, str]) -> web.Response:
        """200 once the callback is fsynced to disk; 503 (WeCom retries) if the spool is full."""
        try:
            await spool.put(spooled.callback_record(dedupe, fields, self._ttl))
        except SpoolFull as exc:
            log.error("callback refused, asking WeCom to retry: %s", exc)
            return _error(503, "temporarily unavailable, retry")
        return web.Response(status=200, body=b"")

