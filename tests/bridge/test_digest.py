"""Digests stay within WeCom's 4096-byte markdown limit whatever wording the title takes.

The digest's title is one of several domain.yml variations. A title measured with one wording
and built with another, longer one made a full digest 4097+ bytes: WeCom refused it (40058)
and every post in it was dead-lettered (seen once in CI, on the cluster run).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from bot.common.posts import Post
from bot.common.streams import Entry
from bot.common.texts import NEEDED, Texts
from bot.outbound import digest
from bot.wecom.textsplit import utf8_len
from bot.wecom.webhook import MARKDOWN_LIMIT

SHORT = "📮 刚才的群消息合集（{count} 条）"
LONG = "📮 消息有点多，帮大家汇总一下（{count} 条）"


def backlog(n: int, pad: int) -> list[Entry]:
    text = "门店{}号今日新品上架，欢迎来尝～" + "!" * pad
    return [Entry(f"{i}-0", {"group": "g3", **Post("g3", "text", text.format(i)).fields()})
            for i in range(n)]


def test_a_title_that_changes_wording_between_calls_never_makes_a_digest_too_long() -> None:
    """pack itself holds the limit, even against a title that is not stable."""
    wordings = [SHORT, SHORT, LONG]
    for pad, start in itertools.product(range(48), range(3)):  # every fill, every order
        flip = itertools.cycle(wordings[start:] + wordings[:start])

        def title(n: int, wording: Iterator[str] = flip) -> str:
            return next(wording).format(count=n)

        batch, content = digest.pack(backlog(200, pad), title)
        assert utf8_len(content) <= MARKDOWN_LIMIT, (pad, start)
        assert len(batch) > 40  # still a full digest, not a fallback to one post
        lines = content.split("\n")[1:]
        assert len(lines) == len(batch)  # every post packed has its line, and only those


def test_the_sender_keeps_one_wording_for_the_whole_digest() -> None:
    responses = {name: ["x"] for name in NEEDED}
    responses["utter_bridge_digest_title"] = [SHORT, LONG]
    texts = Texts(responses, random.Random(7))
    for _ in range(20):
        wording = texts.wording("utter_bridge_digest_title")
        first = wording(count=9)
        assert wording(count=9) == first  # same wording each call
        assert wording(count=10).replace("10", "9") == first
