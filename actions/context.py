"""Who sent a message and where: from WeCom metadata, or derived from the conversation id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker

from actions.store import Turn

DIRECT = ""  # group id of a message that did not come from a group


@dataclass(frozen=True)
class Speaker:
    """The member behind the latest message, the group it came from and its message id."""

    user: str
    group: str
    msgid: str
    chattype: str
    text: str

    @property
    def in_group(self) -> bool:
        """Whether the message came from a group (leaderboards and posts need one)."""
        return bool(self.group)

    def turn(self, now: datetime) -> Turn:
        """This message as the game store keys its steps: member, message id, group, time."""
        return Turn(user=self.user, msgid=self.msgid, now=int(now.timestamp()),
                    group=self.group)


def _clean(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def speaker(tracker: Tracker) -> Speaker:
    """Read userid/chatid/msgid from metadata; fall back to "<chatid>:<userid>" sender ids.

    The WeCom bridge sends metadata; the terminal chat and REST clients may not, so the
    conversation id is split instead, and Rasa's own message id stands in for the msgid.
    """
    latest = tracker.latest_message or {}
    meta = latest.get("metadata") or {}
    if not isinstance(meta, dict):
        meta = {}
    sender = tracker.sender_id or ""
    chat_part, sep, user_part = sender.rpartition(":")
    user = _clean(meta.get("userid")) or (user_part if sep else sender) or "anonymous"
    group = _clean(meta.get("chatid")) or (chat_part if sep else DIRECT)
    chattype = _clean(meta.get("chattype")) or ("group" if group else "single")
    if chattype == "single":
        group = DIRECT
    msgid = _clean(meta.get("msgid")) or _clean(latest.get("message_id"))
    if not msgid:
        # No id at all (a hand-made tracker): the latest event time keeps repeats apart.
        msgid = f"t{tracker.events[-1].get('timestamp', 0) if tracker.events else 0}:{sender}"
    return Speaker(user=user, group=group, msgid=msgid, chattype=chattype,
                   text=_clean(latest.get("text")))
