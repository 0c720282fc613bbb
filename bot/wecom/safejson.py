"""JSON from strangers: nesting bounded before parsing, strings made safe to store.

`json.loads` recurses once per level, so 32,000 `[` raise RecursionError (a 500 and a
traceback for free, without any credentials). Text with a lone surrogate escape
(`"\\ud800"`) parses into a str that cannot be encoded as UTF-8, so storing it fails later.
Both are refused or repaired here, at the edge, once.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # WeCom's callbacks nest 4 levels; the API's bodies 3
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The document is not JSON, or nests deeper than allowed."""


def _depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (scanned only when it could)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _repair(value: Any) -> Any:
    """Replace lone surrogates in every string with U+FFFD (bounded: depth is checked)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, list):
        return [_repair(v) for v in value]
    if isinstance(value, dict):
        return {_repair(k): _repair(v) for k, v in value.items()}
    return value


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON: JsonRefused for bad UTF-8, bad JSON or deep nesting."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise JsonRefused("not UTF-8") from exc
    if _depth_exceeds(text, max_depth):
        raise JsonRefused(f"nested deeper than {max_depth} levels")
    try:
        return _repair(json.loads(text))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise JsonRefused("not JSON") from exc
