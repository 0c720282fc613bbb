"""Webhook payloads: byte limits at grapheme boundaries, raw UTF-8, errcode classes."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from bot.wecom import webhook
from bot.wecom.textsplit import split_bytes, utf8_len
from bot.wecom.webhook import Outcome, PayloadError, classify

FAMILY = "👨\u200d👩\u200d👧"  # one grapheme, 18 bytes


@pytest.mark.parametrize("text", ["福" * 700, "😀" * 600, FAMILY * 150, "é" * 1500,
                                  ("第一行内容\n" * 300)])
def test_split_never_exceeds_the_limit_or_breaks_a_grapheme(text: str) -> None:
    chunks = split_bytes(text, 2048)
    assert "".join(chunks) == text
    assert all(utf8_len(c) <= 2048 for c in chunks)
    if FAMILY in text:
        assert all(c.count("\u200d") == 2 * c.count("👨") for c in chunks)


def test_split_prefers_line_breaks() -> None:
    text = ("一" * 300 + "\n") * 5  # 901 bytes per line
    chunks = split_bytes(text, 2048)
    assert all(c.endswith("\n") for c in chunks)


def test_2048_bytes_is_682_cjk_characters() -> None:
    [first, second] = split_bytes("福" * 683, 2048)
    assert len(first) == 682 and len(second) == 1


def test_text_mentions_ride_on_the_first_chunk_and_json_is_raw_utf8() -> None:
    parts = webhook.text("福" * 1000, mentioned_list=["alice"])
    assert len(parts) == 2 and parts[0]["text"]["mentioned_list"] == ["alice"]
    assert "mentioned_list" not in parts[1]["text"]
    raw = webhook.encode(parts[0])
    assert b"\\u" not in raw and "福".encode() in raw
    assert json.loads(raw) == parts[0]


def test_markdown_v2_and_markdown_limits() -> None:
    assert len(webhook.markdown("长" * 2000)) == 2
    assert webhook.markdown("| a | b |", v2=True)[0]["msgtype"] == "markdown_v2"


def test_image_news_card_validation() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    payload = webhook.image(png)
    assert payload["image"]["md5"] == hashlib.md5(png).hexdigest()
    assert base64.b64decode(payload["image"]["base64"]) == png
    with pytest.raises(PayloadError):
        webhook.image(b"GIF89a....")
    with pytest.raises(PayloadError):
        webhook.news([])
    assert webhook.news([{"title": "新品", "url": "https://example.com"}])["msgtype"] == "news"
    with pytest.raises(PayloadError):
        webhook.template_card({"card_type": "vote_interaction"})
    with pytest.raises(PayloadError):
        webhook.text("   ")


@pytest.mark.parametrize(("errcode", "outcome"), [
    (0, Outcome.OK), (45009, Outcome.RATE_LIMITED), (-1, Outcome.TRANSIENT),
    (93000, Outcome.PERMANENT), (40008, Outcome.PERMANENT), (40033, Outcome.PERMANENT),
    (40058, Outcome.PERMANENT),
])
def test_errcodes_are_classified_by_code(errcode: int, outcome: Outcome) -> None:
    assert classify(errcode) is outcome
