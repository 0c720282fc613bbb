"""What a handoff request is: a member asked for a person; staff get it once, with context.

The actions send it to the bridge's API (`POST /api/handoffs`, idempotent on the member's
message), the same way they send group posts: one join between the two services. It is
validated here, at the door, and stored as stream fields for the relay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.wecom.webhook import PayloadError

MAX_ID = 128
MAX_TEXT = 2000
MAX_HISTORY = 20
SPEAKERS = ("member", "bot")


@dataclass(frozen=True)
class HistoryLine:
    """One earlier line of the conversation, so staff need not ask again."""

    speaker: str  # "member" or "bot"
    text: str


@dataclass(frozen=True)
class HandoffRequest:
    """A member's request for a person, as the relay reads it."""

    user: str
    group: str  # "" in a direct chat
    text: str
    history: tuple[HistoryLine, ...] = ()
    conversation_id: str = ""

    def fields(self) -> dict[str, str]:
        """Stream fields."""
        history = [{"from": h.speaker, "text": h.text} for h in self.history]
        return {"user": self.user, "group": self.group, "text": self.text,
                "conversation_id": self.conversation_id,
                "history": json.dumps(history, ensure_ascii=False)}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> HandoffRequest:
        """Read a stream entry back (tolerant: a damaged history is left out)."""
        try:
            raw = json.loads(fields.get("history") or "[]")
        except json.JSONDecodeError:
            raw = []
        history = tuple(HistoryLine(str(h.get("from", "member")), str(h.get("text", "")))
                        for h in raw if isinstance(h, dict)) if isinstance(raw, list) else ()
        return cls(fields.get("user", ""), fields.get("group", ""), fields.get("text", ""),
                   history, fields.get("conversation_id", ""))


def _short(doc: dict[str, Any], name: str, limit: int, *, required: bool) -> str:
    value = doc.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise PayloadError(f"{name} must be {need} of at most {limit} characters")
    return value


def parse_handoff(doc: Any) -> HandoffRequest:
    """Validate an API request body into a handoff request (PayloadError says what is wrong)."""
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object")
    user = _short(doc, "user", MAX_ID, required=True)
    group = _short(doc, "group", MAX_ID, required=False)
    conversation_id = _short(doc, "conversation_id", 2 * MAX_ID + 1, required=False)
    text = _short(doc, "text", MAX_TEXT, required=False)
    raw = doc.get("history", [])
    if not isinstance(raw, list) or len(raw) > MAX_HISTORY:
        raise PayloadError(f"history must be a list of at most {MAX_HISTORY} lines")
    history: list[HistoryLine] = []
    for line in raw:
        if (not isinstance(line, dict) or line.get("from") not in SPEAKERS
                or not isinstance(line.get("text"), str) or len(line["text"]) > MAX_TEXT):
            raise PayloadError('each history line must be {"from": "member" or "bot", '
                               f'"text": a string of at most {MAX_TEXT} characters}}')
        history.append(HistoryLine(line["from"], line["text"]))
    return HandoffRequest(user, group, text, tuple(history), conversation_id)
