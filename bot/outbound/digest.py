"""A backlog of text posts merged into markdown digests of at most 4096 bytes.

When a group's posts cannot drain within a minute (20 per robot per minute), its text
posts are merged, oldest first, into as few digests as fit WeCom's markdown limit.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.common.posts import Post
from bot.common.streams import Entry
from bot.wecom import webhook
from bot.wecom.textsplit import utf8_len

Title = Callable[[int], str]  # the digest's heading for N posts (domain.yml wording)


def mergeable(entries: list[Entry]) -> list[Entry]:
    """The posts that can go into a digest (text and markdown; not images or cards)."""
    return [e for e in entries if Post.from_fields(e.fields).digest_line()]


def pack(entries: list[Entry], title: Title) -> tuple[list[Entry], str]:
    """As many posts, oldest first, as fit one markdown digest; the digest's text."""
    lines: list[str] = []
    batch: list[Entry] = []
    for entry in entries:
        line = Post.from_fields(entry.fields).digest_line() or ""
        candidate = "\n".join([f"**{title(len(batch) + 1)}**", *lines, line])
        if batch and utf8_len(candidate) > webhook.MARKDOWN_LIMIT:
            break
        if not batch and utf8_len(candidate) > webhook.MARKDOWN_LIMIT:
            line = line.encode()[: webhook.MARKDOWN_LIMIT - 200].decode("utf-8", "ignore")
        lines.append(line)
        batch.append(entry)
    content = "\n".join([f"**{title(len(batch))}**", *lines])
    while len(batch) > 1 and utf8_len(content) > webhook.MARKDOWN_LIMIT:
        # A title that reads longer for the final count than it did while measuring: the
        # last posts wait for the next digest rather than the digest be refused (40058).
        batch.pop()
        lines.pop()
        content = "\n".join([f"**{title(len(batch))}**", *lines])
    return batch, content
