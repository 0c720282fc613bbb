"""Big read-only tables that several trained components store, held once per process."""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

Table = TypeVar("Table")

# Restored tables still in use, by content: the intent classifier and the FAQ selector (and
# every model a publisher trains in one process) each store their own copy of a table.
_RESTORED: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def restored_once(arrays: dict[str, Any], names: Sequence[str],
                  build: Callable[[], Table]) -> Table:
    """The table built from these arrays, or the one already in memory with the same content."""
    digest = hashlib.blake2b(digest_size=16)
    for name in names:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    key = digest.hexdigest()
    restored: Table | None = _RESTORED.get(key)
    if restored is None:
        restored = build()
        _RESTORED[key] = restored
    return restored
