"""Async client for the group-robot webhook (消息推送, docs 91770/99398), every documented type.

Bodies are raw UTF-8 JSON (`\\uXXXX` escapes are refused with 40033); limits are UTF-8
bytes; errors come back as HTTP 200 with an errcode, which is what we branch on. The key
is the only credential: it appears in the request URL and nowhere else — not in logs,
exceptions or reprs.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.wecom.textsplit import split_bytes

TEXT_LIMIT = 2048
MARKDOWN_LIMIT = 4096
IMAGE_LIMIT = 2 * 1024 * 1024
NEWS_MAX_ARTICLES = 8
DEFAULT_BASE = "https://qyapi.weixin.qq.com"

RATE_LIMITED = 45009
BUSY = -1


class Outcome(enum.Enum):
    """What the sender does next with a post."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # back off ≥ 60 s, retry
    TRANSIENT = "transient"  # retry, bounded
    PERMANENT = "permanent"  # dead-letter


def classify(errcode: int) -> Outcome:
    """Branch on errcode, never on errmsg."""
    if errcode == 0:
        return Outcome.OK
    if errcode == RATE_LIMITED:
        return Outcome.RATE_LIMITED
    if errcode == BUSY:
        return Outcome.TRANSIENT
    # 93000 invalid key, 40008 bad msgtype, 4000x media, 40033 escapes, and anything unknown:
    # retrying cannot help, so dead-letter and count it.
    return Outcome.PERMANENT


@dataclass(frozen=True)
class SendResult:
    """WeCom's answer (or the transport failure, as errcode -2 / -3)."""

    errcode: int
    errmsg: str
    outcome: Outcome

    @classmethod
    def of(cls, errcode: int, errmsg: str) -> SendResult:
        """Classify a WeCom answer."""
        return cls(errcode, errmsg, classify(errcode))


TRANSPORT_ERROR = -2  # connection reset, DNS, HTTP 5xx: nothing known to have been posted
TIMEOUT_ERROR = -3  # no answer in time: WeCom may have posted it (at-least-once)


class PayloadError(ValueError):
    """A message that WeCom would refuse (too big, wrong type): refused before sending."""


# ------------------------------------------------------------------ payload builders
def text(
    content: str,
    *,
    mentioned_list: list[str] | None = None,
    mentioned_mobile_list: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Text posts, split at 2048 bytes; mentions ride on the first chunk."""
    if not content.strip():
        raise PayloadError("text content is empty")
    payloads: list[dict[str, Any]] = []
    for i, chunk in enumerate(split_bytes(content, TEXT_LIMIT)):
        body: dict[str, Any] = {"content": chunk}
        if i == 0 and mentioned_list:
            body["mentioned_list"] = list(mentioned_list)
        if i == 0 and mentioned_mobile_list:
            body["mentioned_mobile_list"] = list(mentioned_mobile_list)
        payloads.append({"msgtype": "text", "text": body})
    return payloads


def markdown(content: str, *, v2: bool = False) -> list[dict[str, Any]]:
    """markdown (`<@userid>` mentions, colours) or markdown_v2 (tables), split at 4096 bytes."""
    if not content.strip():
        raise PayloadError("markdown content is empty")
    msgtype = "markdown_v2" if v2 else "markdown"
    return [
        {"msgtype": msgtype, msgtype: {"content": chunk}}
        for chunk in split_bytes(content, MARKDOWN_LIMIT)
    ]


def image(data: bytes) -> dict[str, Any]:
    """An image post: base64 and md5 of the raw bytes, jpg/png up to 2 MB."""
    if len(data) > IMAGE_LIMIT:
        raise PayloadError("image is over 2 MB")
    if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
        raise PayloadError("image must be JPG or PNG")
    return {
        "msgtype": "image",
        "image": {
            "base64": base64.b64encode(data).decode("ascii"),
            "md5": hashlib.md5(data).hexdigest(),  # WeCom's checksum of the raw bytes
        },
    }


def news(articles: Any) -> dict[str, Any]:
    """A news post of 1–8 articles, each with a title and url (or {"articles": [...]})."""
    if isinstance(articles, dict):
        articles = articles.get("articles")
    if not isinstance(articles, list) or not 1 <= len(articles) <= NEWS_MAX_ARTICLES:
        raise PayloadError("news needs a list of 1 to 8 articles")
    for article in articles:
        if not isinstance(article, dict) or not all(
                isinstance(article.get(k), str) and article[k] for k in ("title", "url")):
            raise PayloadError("every article needs a title and a url (strings)")
        if not all(isinstance(v, str) for v in article.values()):
            raise PayloadError("article fields must be strings")
    return {"msgtype": "news", "news": {"articles": articles}}


def template_card(card: Any) -> dict[str, Any]:
    """A display-only template card (text_notice or news_notice)."""
    if not isinstance(card, dict) or card.get("card_type") not in ("text_notice", "news_notice"):
        raise PayloadError("template_card card_type must be text_notice or news_notice")
    return {"msgtype": "template_card", "template_card": card}


def encode(payload: dict[str, Any]) -> bytes:
    """Raw UTF-8 JSON: WeCom refuses \\uXXXX escapes."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------ the client
class WebhookClient:
    """Posts to robots by key through one shared ClientSession."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = DEFAULT_BASE,
        timeout_s: float = 5.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        """Say where we post, never with which key."""
        return f"WebhookClient(base_url={self._base!r})"

    async def send(self, key: str, payload: dict[str, Any]) -> SendResult:
        """Post one message; transport failures become errcodes, never exceptions with the key."""
        url = f"{self._base}/cgi-bin/webhook/send"
        return await self._post_json(url, {"key": key}, encode(payload))

    async def _post_json(self, url: str, params: dict[str, str], body: bytes) -> SendResult:
        """POST raw JSON; map timeouts, resets and 5xx to retryable errcodes without the URL."""
        try:
            async with self._session.post(
                url,
                params=params,
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
            ) as resp:
                if resp.status >= 500:
                    return SendResult(TRANSPORT_ERROR, f"http {resp.status}", Outcome.TRANSIENT)
                doc = await resp.json(content_type=None)
        except asyncio.TimeoutError:
            return SendResult(TIMEOUT_ERROR, "timeout", Outcome.TRANSIENT)
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            return SendResult(TRANSPORT_ERROR, type(exc).__name__, Outcome.TRANSIENT)
        if not isinstance(doc, dict) or "errcode" not in doc:
            return SendResult(TRANSPORT_ERROR, "answer without errcode", Outcome.TRANSIENT)
        return SendResult.of(int(doc["errcode"]), str(doc.get("errmsg", "")))
