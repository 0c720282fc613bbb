"""Deliver members' requests for a person to staff: from the handoff stream to a staff group.

The action server sends each request (member, group, words, recent history) to the
bridge's API, which appends it to the bridge's handoff stream once per member message;
this relay turns each into one post for the staff group, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.common.groups import Directory
from bot.common.names import NameResolver
from bot.common.posts import Post, PostFn
from bot.common.store import RELAYS, BridgeStore
from bot.common.streams import Entry
from bot.common.texts import Texts
from bot.outbound.handoffs import HandoffRequest, HistoryLine
from bot.wecom.api import WeComApiError

log = logging.getLogger(__name__)

NAME_WAIT_S = 1.5  # then the card goes out with the name the directory has (or the mask)


def history_lines(history: tuple[HistoryLine, ...], limit: int = 6) -> str:
    """The last turns of the conversation as quoted lines for staff."""
    return "\n".join(f"{'🤖' if line.speaker == 'bot' else '👤'} {line.text[:200]}"
                     for line in history[-limit:])


class HandoffRelay:
    """Reads the brand's handoff stream with a consumer group and posts to staff."""

    def __init__(self, store: BridgeStore, stream: str, directory: Callable[[], Directory],
                 texts: Texts, post: PostFn, consumer: str, names: NameResolver,
                 reclaim_idle_ms: int = 60_000) -> None:
        self._requests = store.consumer(stream, RELAYS, consumer, reclaim_idle_ms=reclaim_idle_ms,
                                        read_count=50)
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
            request = HandoffRequest.from_fields(fields)
            group, user = request.group, request.user
            if user:  # staff read names: look this member up now, but never hold the page up
                with contextlib.suppress(asyncio.TimeoutError, WeComApiError):
                    await asyncio.wait_for(self._names.resolve(group, user), NAME_WAIT_S)
            book = self._names.book
            where = await book.group(group) if group else self._texts.say("utter_fmt_direct_chat")
            text = self._texts.say(
                "utter_bridge_handoff_staff",
                group=where,
                user=await book.member(group, user) if user else "-",
                text=request.text[:500],
                history=history_lines(request.history),
            )
            await self._post(
                Post(directory.staff_chatid, "markdown", text, directory.staff_mention),
                f"handoff:{self._stream}:{entry_id}",
            )
        await self._requests.ack(entry_id)
