"""Fill the name directory from WeCom in the background, never on a member's turn.

A turn only notes who spoke (one Redis SADD, skipped when this process noted them
recently); this resolver takes the noted members off a shared queue and looks them up:
the group's member list with group nicknames (externalcontact/groupchat/get) when it is
stale, else the person's own name (user/get for employees, externalcontact/get for external
contacts). The groups in data/groups.yml are looked up at start and whenever their lists
go stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from bot.common.groups import Directory
from bot.common.outage import OutageLog
from bot.wecom.api import GroupChat, WeComApi, WeComApiError
from qunzhu.names import NameBook
from qunzhu.redisconn import REDIS_DOWN

log = logging.getLogger(__name__)

GROUP_FRESH_S = 6 * 3600  # refetch a group's member list at most this often
PERSON_FRESH_S = 24 * 3600
RETRY_FRESH_S = 600  # after WeCom refused a lookup, wait this long before asking again
NOTED_TTL_S = 600.0
SWEEP_EVERY_S = 300.0  # how often the configured groups are checked for stale lists
NOTED_MAX = 50_000


class NameResolver:
    """Notes members who speak; looks their names up in a background loop."""

    def __init__(self, book: NameBook, api: WeComApi, directory: Callable[[], Directory], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.book = book
        self._api = api
        self._outage = OutageLog("name lookups", log)
        self._directory = directory
        self._clock = clock
        self._noted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stopping.set()

    async def note(self, chatid: str, userid: str) -> None:
        """A member spoke: queue a lookup unless this process queued one recently."""
        key = (chatid, userid)
        now = self._clock()
        seen = self._noted.get(key)
        if seen is not None and now - seen < NOTED_TTL_S:
            return
        self._noted[key] = now
        self._noted.move_to_end(key)
        while len(self._noted) > NOTED_MAX:
            self._noted.popitem(last=False)
        try:
            await self.book.want(chatid, userid)
        except REDIS_DOWN:  # a name is nice to have; the turn goes on
            self._noted.pop(key, None)

    async def run(self) -> None:
        """Keep the configured groups' lists fresh and look up whoever the turns noted."""
        next_sweep = 0.0
        while not self._stopping.is_set():
            if self._clock() >= next_sweep:
                await self._prewarm()
                next_sweep = self._clock() + SWEEP_EVERY_S
            try:
                batch = await self.book.next_wanted(20)
                self._outage.ok()
            except REDIS_DOWN as exc:
                self._outage.failed(exc)
                await asyncio.sleep(2)
                continue
            if not batch:
                await asyncio.sleep(0.5)
                continue
            for chatid, userid in batch:
                try:
                    await self.resolve(chatid, userid)
                except REDIS_DOWN as exc:
                    log.warning("name lookup of a member postponed (%s)", type(exc).__name__)
                    await asyncio.sleep(1)

    async def _prewarm(self) -> None:
        for robot in self._directory().robots.values():
            try:
                await self.book.remember_group_name(robot.chatid, robot.name)
                if not await self.book.is_fresh(robot.chatid):
                    await self.refresh_group(robot.chatid)
            except REDIS_DOWN as exc:
                log.warning("group names not loaded at start (%s)", type(exc).__name__)
                return

    async def resolve(self, chatid: str, userid: str) -> None:
        """Make sure the directory can name this member (group list first, then the person)."""
        if chatid and not await self.book.is_fresh(chatid):
            await self.refresh_group(chatid)
        if chatid and await self.book.known_in(chatid, userid):
            return
        if chatid and not await self.book.listed_recently(chatid):
            await self.refresh_group(chatid)  # they may have joined since the list was taken
            if await self.book.known_in(chatid, userid):
                return
        if await self.book.person_is_fresh(userid):
            return
        try:
            name = await self._api.person_name(userid)
        except WeComApiError as exc:
            log.info("no name for a member from WeCom (errcode %s)", exc.errcode)
            if not exc.transient:  # refused: do not ask again for a while
                await self.book.remember_person(userid, "", RETRY_FRESH_S)
            return
        await self.book.remember_person(userid, name, PERSON_FRESH_S)

    async def refresh_group(self, chatid: str) -> None:
        """Fetch a group's member list; a group WeCom will not list is left for a while."""
        try:
            chat = await self._api.group_chat(chatid)
        except WeComApiError as exc:
            # Internal groups have no member-list API: their members are named one by one.
            log.info("member list of a group unavailable (errcode %s)", exc.errcode)
            if not exc.transient:
                await self.book.mark_fresh(chatid, RETRY_FRESH_S)
            return
        await self.remember(chat)

    async def remember(self, chat: GroupChat) -> None:
        """Store a member list just fetched (the newcomers' diff fetches one too)."""
        await self.book.remember_group(
            chat.chat_id, self._configured_name(chat.chat_id) or chat.name,
            _display_names(chat), GROUP_FRESH_S)

    def _configured_name(self, chatid: str) -> str:
        robot = self._directory().robot(chatid)
        return robot.name if robot is not None else ""


def _display_names(chat: GroupChat) -> Mapping[str, str]:
    return {m.userid: m.display_name for m in chat.members}
