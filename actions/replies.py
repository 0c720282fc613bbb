"""Render domain.yml responses inside actions: group posts and list lines for replies.

Member-facing Chinese lives in domain.yml only; actions that build lists (stores, coupons,
leaderboard rows) format each line with a `utter_fmt_*` response so operators can edit
the wording too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render(domain: Mapping[str, Any], response: str, **values: Any) -> str | None:
    """Pick one variation of a domain response and fill its {placeholders}."""
    variations = (domain.get("responses") or {}).get(response) or []
    texts = [v["text"] for v in variations if isinstance(v, dict) and v.get("text")]
    if not texts:
        return None
    template = random.choice(texts)
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def lines(domain: Mapping[str, Any], response: str, rows: Iterable[Mapping[str, Any]],
          sep: str = "\n") -> str:
    """Format each row with a `utter_fmt_*` response and join them."""
    return sep.join(render(domain, response, **row) or "" for row in rows)
