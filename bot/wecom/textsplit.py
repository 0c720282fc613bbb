"""Split text to the webhook's byte limits at grapheme boundaries (never inside 👨‍👩‍👧 or é)."""

from __future__ import annotations

import regex

GRAPHEME = regex.compile(r"\X")


def utf8_len(text: str) -> int:
    """WeCom's limits are UTF-8 bytes, not characters."""
    return len(text.encode("utf-8"))


def split_bytes(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` UTF-8 bytes, preferring to break after a newline."""
    if limit < 4:
        raise ValueError("limit must fit one UTF-8 character")
    if utf8_len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    last_newline = -1  # index in `current` just after the last newline
    for grapheme in GRAPHEME.findall(text):
        g_size = utf8_len(grapheme)
        if g_size > limit:  # one absurd cluster (e.g. thousands of combining marks)
            grapheme = grapheme.encode("utf-8")[:limit].decode("utf-8", "ignore")
            g_size = utf8_len(grapheme)
        if size + g_size > limit:
            cut = last_newline if last_newline > 0 else len(current)
            chunks.append("".join(current[:cut]))
            current = current[cut:]
            size = sum(utf8_len(g) for g in current)
            last_newline = -1
        current.append(grapheme)
        size += g_size
        if grapheme.endswith("\n"):
            last_newline = len(current)
    if current:
        chunks.append("".join(current))
    return [c for c in chunks if c]
