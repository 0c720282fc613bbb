"""Deliver the assistant's handoff requests to staff: from the actions' stream to a staff group.

The action server appends each request (member, group, words, recent history) to the
brand's handoff stream; this relay turns each into one post for the staff group, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from bot.common.groups import Directory
from bot.common.names import NameResolver
from bot.common.posts import Post
from bot.common.store import BridgeStore
from bot.common.streams import Entry, StreamConsumer
from bot.common.texts import Texts
from bot.wecom.api import WeComApiError

log = logging.getLogger(__name__)

GROUP = "bridge"
NAME_WAIT_S = 1.5  # then the card goes out with the name the directory has (or the mask)
PostFn = Callable[[Post, str], Awaitable[str]]


def history_lines(raw: str, limit: int = 6) -> str:
    """The last turns of the conversation as quoted lines for staff."""
    try:
        turns = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return ""
    lines = []
    for turn in turns[-limit:]:
        if isinstance(turn, dict):
            who = "🤖" if turn.get("from") == "bot" else "👤"
            lines.append(f"{who} {str(turn.get('text', ''))[:200]}")
        elif isinstance(turn, str):
            lines.append(f"👤 {turn[:200]}")
    return "\n".join(lines)


class HandoffRelay:
    """Reads the brand's handoff stream with a consumer group and posts to staff."""

    def __init__(self, store: BridgeStore, stream: str, directory: Callable[[], Directory],
                 texts: Texts, post: PostFn, consumer: str, names: NameResolver,
                 reclaim_idle_ms: int = 60_000) -> None:
        self._requests = StreamConsumer(store.r, stream, GROUP, consumer,
                                        reclaim_idle_ms=reclaim_idle_ms, read_count=50)
        self._stream = stream
        self._directory = directory
        self._names = names
        self._texts = texts
        self._post = post
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop after the current read."""
        self._stopping.set()

    async def run(self) -> None:
        """Own pending requests first (a restart), a dead relay's by idle time, then new ones.

        A relay that read a request and died before acknowledging it leaves it pending under
        its consumer name; the idle-time reclaim relays it even if that relay never comes
        back under the same name, so a member who asked for a person is never stranded.
        """
        await self._requests.run(self._deliver_all, self._stopping)

    async def _deliver_all(self, batch: list[Entry]) -> None:
        for entry in batch:
            await self.deliver(entry.id, entry.fields)

    async def deliver(self, entry_id: str, fields: dict[str, str]) -> None:
        """One staff post per request (idempotent on the entry id), then acknowledge it."""
        directory = self._directory()
        if fields and directory.staff_chatid:
            group, user = fields.get("group", ""), fields.get("user", "")
            if user:  # staff read names: look this member up now, but never hold the page up
                with contextlib.suppress(asyncio.TimeoutError, WeComApiError):
                    await asyncio.wait_for(self._names.resolve(group, user), NAME_WAIT_S)
            book = self._names.book
            where = await book.group(group) if group else self._texts.say("utter_fmt_direct_chat")
            text = self._texts.say(
                "utter_bridge_handoff_staff",
                group=where,
                user=await book.member(group, user) if user else "-",
                text=fields.get("text", "")[:500],
                history=history_lines(fields.get("history", "")),
            )
            await self._post(
                Post(directory.staff_chatid, "markdown", text, directory.staff_mention),
                f"handoff:{self._stream}:{entry_id}",
            )
        await self._requests.ack(entry_id, delete=False)  # the stream is the actions' log
