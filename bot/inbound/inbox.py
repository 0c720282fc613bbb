"""The inbox's record of a callback: the typed WeCom message, stored and restored by kind.

A registry of kinds (as wechatpy keys its message classes by type) turns each typed message
from the parser into stream fields and back, so the turn worker receives the same typed
message the callback parsed — never a loose dict — and a kind it does not know is refused
in one place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from bot.wecom.parser import AibotEvent, AibotMessage, AppEvent, AppMessage

Callback = AibotMessage | AibotEvent | AppMessage | AppEvent

KINDS: dict[str, type[Callback]] = {
    "aibot_message": AibotMessage,
    "aibot_event": AibotEvent,
    "app_message": AppMessage,
    "app_event": AppEvent,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


@dataclass(frozen=True)
class InboxItem:
    """One accepted callback as the turn worker gets it."""

    message: Callback
    dedupe: str
    received_at: float


def to_fields(message: Callback, received_at: float) -> dict[str, str]:
    """The stream fields that store a parsed callback."""
    return {
        "kind": _KIND_OF[type(message)],
        "dedupe": message.dedupe_key,
        "payload": json.dumps(dataclasses.asdict(message), ensure_ascii=False),
        "received_at": f"{received_at:.3f}",
    }


def from_fields(fields: dict[str, str]) -> InboxItem | None:
    """The typed callback back from its stream fields; None for an unknown kind or payload."""
    cls = KINDS.get(fields.get("kind", ""))
    if cls is None:
        return None
    try:
        doc: Any = json.loads(fields.get("payload", ""))
        received_at = float(fields.get("received_at", ""))
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    names = {f.name for f in dataclasses.fields(cls)}  # tolerate fields of another version
    try:
        message = cls(**{k: v for k, v in doc.items() if k in names})
    except TypeError:  # a required field is missing
        return None
    return InboxItem(message, fields.get("dedupe") or message.dedupe_key, received_at)
