"""Welcome people who join a group: the event has no joiner ids, so fetch the list and diff.

WeCom's `change_external_chat` add_member event says only that members joined (doc 96361);
who joined comes from `externalcontact/groupchat/get`, compared with the list we saw last.
Who left (del_member) comes the same way. Each join and departure in a group the bridge
serves is also recorded as an analytics event (JOINED / LEFT), named by the group, the member
and the time, so the same change found twice (a retried event) is counted once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

from bot.common.budget import Gate
from bot.common.clock import Clock, RealClock
from bot.common.groups import Directory
from bot.common.names import NameResolver
from bot.common.posts import Post, PostFn
from bot.common.store import BridgeStore
from bot.common.texts import Texts
from bot.wecom.api import Member, WeComApi, WeComApiError
from qunzhu.campaigns import fill_welcome
from qunzhu.config import SHANGHAI
from qunzhu.events import Event, Kind
from qunzhu.redisconn import REDIS_DOWN

log = logging.getLogger(__name__)

MAX_NAMES = 10
SNAPSHOT_TTL_S = 90 * 24 * 3600


def change_eid(kind: Kind, chat_id: str, userid: str, at: int) -> str:
    """The same member joining (or leaving) a group at the same time is one event."""
    digest = hashlib.sha256(f"{chat_id}\n{userid}\n{at}".encode()).hexdigest()[:24]
    return f"{kind.value}:{digest}"


class Newcomers:
    """Diffs member lists, queues one welcome per join event, and records joins and leaves."""

    def __init__(
        self, store: BridgeStore, api: WeComApi, directory: Callable[[], Directory],
        texts: Texts, post: PostFn, bot_name: Callable[[], str], names: NameResolver,
        brand: str = "", *, welcome_text: Callable[[str], str | None] = lambda _chat: None,
        gate: Gate | None = None, clock: Clock | None = None,
    ) -> None:
        """`brand` names the analytics streams; "" records no events (tests, tools).

        `welcome_text` is the operators' welcome for a group (campaigns.yml `welcomes:`;
        None: domain.yml's), and `gate` the anti-spam budget a welcome passes as a reaction
        to the people who just joined: under the group's daily cap of reactions, never at
        the expense of its service posts; one it holds back is dropped (a late welcome
        greets nobody)."""
        self._store = store
        self._api = api
        self._directory = directory
        self._texts = texts
        self._post = post
        self._bot_name = bot_name
        self._names = names
        self._brand = brand
        self._welcome_text = welcome_text
        self._gate = gate
        self._clock = clock or RealClock()

    async def _listed(self, chat_id: str) -> tuple[list[Member], set[str]]:
        """The group's members now (their names kept) and the ids we listed last time."""
        chat = await self._api.group_chat(chat_id)
        await self._names.remember(chat)  # the list has everyone's names: keep them
        return chat.members, await self._store.member_snapshot(chat_id)

    async def joined(self, chat_id: str, event_time: int,
                     count: int) -> tuple[list[Member], list[str]]:
        """Members present now and absent from the last snapshot, and those gone from it
        meanwhile; the list then replaces the snapshot."""
        members, known = await self._listed(chat_id)
        if known:
            new = [m for m in members if m.userid not in known]
        else:  # first event for this group: trust join times, newest first, at most `count`
            recent = sorted((m for m in members if m.join_time >= event_time - 60),
                            key=lambda m: m.join_time, reverse=True)
            new = recent[: max(1, count)] if count else recent
        gone = sorted(known.difference(m.userid for m in members))
        await self._store.replace_member_snapshot(chat_id, [m.userid for m in members],
                                                  SNAPSHOT_TTL_S)
        return new, gone

    async def left(self, chat_id: str) -> list[str]:
        """Members of the last snapshot absent now. Only they leave the snapshot: a member
        who just joined stays new for the add_member event that may be handled after this."""
        members, known = await self._listed(chat_id)
        present = {m.userid for m in members}
        gone = sorted(known - present)
        if gone:
            await self._store.replace_member_snapshot(chat_id, sorted(known & present),
                                                      SNAPSHOT_TTL_S)
        return gone

    async def welcome(self, chat_id: str, event_time: int, count: int) -> None:
        """Record who joined a group the bridge serves; welcome them if the bot may post."""
        robot = self._directory().robot(chat_id)
        greets = robot is not None and robot.welcome_newcomers
        if robot is None or not (greets or self._brand):
            return
        try:
            new, gone = await self.joined(chat_id, event_time, count)
        except WeComApiError as exc:
            log.warning("member list of %s unavailable: %s", chat_id, exc)
            return
        except REDIS_DOWN:
            raise
        for member in new:
            await self._record(Kind.JOINED, chat_id, member.userid,
                               member.join_time or event_time)
        for userid in gone:  # left without a del_member event handled yet: it finds nobody
            await self._record(Kind.LEFT, chat_id, userid, event_time)
        if not greets or not new:
            return
        names = "、".join(m.display_name for m in new[:MAX_NAMES])
        if len(new) > MAX_NAMES:
            names += "…"
        idem = f"welcome:{chat_id}:{event_time}:{','.join(m.userid for m in new)}"
        if self._gate is not None:
            now = datetime.fromtimestamp(self._clock.now(), SHANGHAI)
            verdict = await self._gate.allow(chat_id, idem, "reaction", now)
            if not verdict.sent:
                log.info("welcome in %s held back by the budget (%s): not sent", chat_id,
                         verdict.reason)
                await self._store.incr("welcomes_held")
                return
        own = self._welcome_text(chat_id)
        group, bot = robot.name or "", self._bot_name()
        text = (fill_welcome(own, newcomers=names, group=group, bot=bot) if own
                else self._texts.say("utter_bridge_welcome", names=names, group=group, bot=bot))
        await self._post(Post(chat_id, "text", text), idem)

    async def farewell(self, chat_id: str, event_time: int) -> None:
        """Record who left a group the bridge serves (nothing is posted: only counted).

        The first list of a group has nothing to compare with: nobody is known to have left.
        """
        if not self._brand or self._directory().robot(chat_id) is None:
            return
        try:
            gone = await self.left(chat_id)
        except WeComApiError as exc:
            log.warning("member list of %s unavailable: %s", chat_id, exc)
            return
        for userid in gone:
            await self._record(Kind.LEFT, chat_id, userid, event_time)

    async def _record(self, kind: Kind, chat_id: str, userid: str, at: int) -> None:
        """One JOINED or LEFT event; a Redis failure loses the count, never the welcome."""
        if self._brand:
            await self._store.emit(self._brand,
                       Event(kind, change_eid(kind, chat_id, userid, at), chat_id, userid,
                             float(at)))
