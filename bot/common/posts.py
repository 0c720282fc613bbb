"""What a post is: validated at the door, stored as stream fields, turned into webhook payloads.

A post is accepted (HTTP 202) only once it is in the Redis stream; from then on it is
never lost. Validation happens before that, so the sender only meets posts WeCom accepts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.wecom import safejson, webhook
from bot.wecom.webhook import PayloadError

MSGTYPES = ("text", "markdown", "markdown_v2", "image", "news", "template_card")
MAX_CONTENT_BYTES = 16 * 1024  # longer text is split into several posts; cap what we accept
MAX_MENTIONS = 50


@dataclass(frozen=True)
class Post:
    """A post as the stream stores it."""

    group: str
    msgtype: str
    content: str  # text/markdown body, base64 image, or JSON for news/template_card
    mention: tuple[str, ...] = ()
    source: str = ""  # the campaign that queued it ("" for replies and the bridge's own)

    def fields(self) -> dict[str, str]:
        """Stream fields (the group is added by the store)."""
        out = {"msgtype": self.msgtype, "content": self.content,
               "mention": ",".join(self.mention)}
        if self.source:
            out["source"] = self.source
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Post:
        """Read a stream entry back."""
        mention = tuple(m for m in fields.get("mention", "").split(",") if m)
        return cls(fields.get("group", ""), fields.get("msgtype", "text"),
                   fields.get("content", ""), mention, fields.get("source", ""))

    def payloads(self) -> list[dict[str, Any]]:
        """The webhook payloads that deliver this post (text and markdown may be split)."""
        if self.msgtype == "text":
            return webhook.text(self.content, mentioned_list=list(self.mention))
        if self.msgtype == "markdown":
            prefix = "".join(f"<@{m}>" for m in self.mention)
            return webhook.markdown((prefix + " " if prefix else "") + self.content)
        if self.msgtype == "markdown_v2":
            return webhook.markdown(self.content, v2=True)
        if self.msgtype == "image":
            return [webhook.image(base64.b64decode(self.content))]
        if self.msgtype == "news":
            return [webhook.news(safejson.loads(self.content))]
        if self.msgtype == "template_card":
            return [webhook.template_card(safejson.loads(self.content))]
        raise PayloadError(f"unsupported msgtype {self.msgtype}")

    def digest_line(self) -> str | None:
        """How this post reads inside a digest; None when it cannot be merged (image, card)."""
        if self.msgtype not in ("text", "markdown"):
            return None
        mentions = "".join(f"<@{m}>" for m in self.mention)
        return f"{mentions} {self.content}".strip() if mentions else self.content


PostKind = Literal["service", "promotional", "reaction"]
KINDS: tuple[PostKind, ...] = ("service", "promotional", "reaction")


def post_kind(doc: Any) -> PostKind:
    """What the anti-spam budget counts a post as: a service post (the default), a
    promotion, or a reaction to a member's message in that group (the actions' streak and
    big-win announcements): not held by the quiet hours, but capped per day on its own."""
    kind = doc.get("kind", "service") if isinstance(doc, dict) else "service"
    for known in KINDS:
        if kind == known:
            return known
    raise PayloadError(f"kind must be one of {', '.join(KINDS)}")


def parse_request(group: str, doc: Any) -> tuple[Post, str]:
    """Validate an API request body into a post and its idempotency key."""
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object")
    msgtype = doc.get("msgtype", "text")
    if msgtype not in MSGTYPES:
        raise PayloadError(f"msgtype must be one of {', '.join(MSGTYPES)}")
    mention = doc.get("mention", [])
    if isinstance(mention, str):
        mention = [mention]
    if not isinstance(mention, list) or not all(isinstance(m, str) and m for m in mention):
        raise PayloadError("mention must be a list of userids")
    if len(mention) > MAX_MENTIONS:
        raise PayloadError(f"at most {MAX_MENTIONS} mentions")
    content = doc.get("content")
    if msgtype in ("news", "template_card") and not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    if not isinstance(content, str) or not content.strip():
        raise PayloadError("content must be a non-empty string")
    if msgtype in ("text", "markdown", "markdown_v2") and len(content.encode()) > MAX_CONTENT_BYTES:
        raise PayloadError(f"content is over {MAX_CONTENT_BYTES} bytes")
    if msgtype == "image":
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError("image content must be base64") from None
    idem = doc.get("idempotency_key", "")
    if not isinstance(idem, str) or len(idem) > 200:
        raise PayloadError("idempotency_key must be a string of at most 200 characters")
    post = Post(group, msgtype, content, tuple(m.replace(",", "") for m in mention))
    try:
        post.payloads()  # refuse now what WeCom would refuse later
    except (ValueError, KeyError, TypeError) as exc:
        raise PayloadError(str(exc)) from None
    return post, idem


# How a part of the bridge queues a post: (post, idempotency key) -> the post's id in the outbox
PostFn = Callable[[Post, str], Awaitable[str]]
