"""Welcome people who join a group: the event has no joiner ids, so fetch the list and diff.

WeCom's `change_external_chat` add_member event says only that members joined (doc 96361);
who joined comes from `externalcontact/groupchat/get`, compared with the list we saw last.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.common.groups import Directory
from bot.common.names import NameResolver
from bot.common.posts import Post
from bot.common.store import BridgeStore
from bot.common.texts import Texts
from bot.wecom.api import Member, WeComApi, WeComApiError
from qunzhu.redisconn import REDIS_DOWN

log = logging.getLogger(__name__)

PostFn = Callable[[Post, str], Awaitable[str]]
MAX_NAMES = 10
SNAPSHOT_TTL_S = 90 * 24 * 3600


class Newcomers:
    """Diffs member lists and queues one welcome per join event."""

    def __init__(
        self, store: BridgeStore, api: WeComApi, directory: Callable[[], Directory],
        texts: Texts, post: PostFn, bot_name: Callable[[], str], names: NameResolver,
    ) -> None:
        self._store = store
        self._api = api
        self._directory = directory
        self._texts = texts
        self._post = post
        self._bot_name = bot_name
        self._names = names

    async def joined(self, chat_id: str, event_time: int, count: int) -> list[Member]:
        """Members present now and absent from the last snapshot (which is then replaced)."""
        chat = await self._api.group_chat(chat_id)
        await self._names.remember(chat)  # the list has everyone's names: keep them
        members = chat.members
        known = await self._store.member_snapshot(chat_id)
        if known:
            new = [m for m in members if m.userid not in known]
        else:  # first event for this group: trust join times, newest first, at most `count`
            recent = sorted((m for m in members if m.join_time >= event_time - 60),
                            key=lambda m: m.join_time, reverse=True)
            new = recent[: max(1, count)] if count else recent
        await self._store.replace_member_snapshot(chat_id, [m.userid for m in members],
                                                  SNAPSHOT_TTL_S)
        return new

    async def welcome(self, chat_id: str, event_time: int, count: int) -> None:
        """Queue a welcome naming the newcomers, if the bot can post in this group."""
        robot = self._directory().robot(chat_id)
        if robot is None or not robot.welcome_newcomers:
            return
        try:
            new = await self.joined(chat_id, event_time, count)
        except WeComApiError as exc:
            log.warning("member list of %s unavailable: %s", chat_id, exc)
            return
        except REDIS_DOWN:
            raise
        if not new:
            return
        names = "、".join(m.display_name for m in new[:MAX_NAMES])
        if len(new) > MAX_NAMES:
            names += "…"
        text = self._texts.say("utter_bridge_welcome", names=names, group=robot.name or "",
                               bot=self._bot_name())
        await self._post(Post(chat_id, "text", text),
                         f"welcome:{chat_id}:{event_time}:{','.join(m.userid for m in new)}")
