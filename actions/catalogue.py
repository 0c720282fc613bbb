"""Find which coupon campaign or shop reward a member named, from the live YAML.

Matching happens here, against the current operator config, rather than with entities
learned at training time: an operator who adds a campaign makes it claimable by name at
once, with no retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from qunzhu.textnorm import normalise


class Named(Protocol):
    """Anything with a display name and aliases."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> list[str]: ...


T = TypeVar("T", bound=Named)


def find_named(items: Sequence[T], text: str) -> T | None:
    """The item whose name or alias appears in the text; the longest match wins."""
    haystack = normalise(text).lower().replace(" ", "")
    best: T | None = None
    best_len = 0
    for item in items:
        for label in (item.name, *item.aliases):
            needle = normalise(label).lower().replace(" ", "")
            if needle and needle in haystack and len(needle) > best_len:
                best, best_len = item, len(needle)
    return best
