"""Who people and groups are, by name: a directory cached in Redis, read by actions and bridge.

People read names, never internal ids (`zhangsan`, `wm…`/`wo…`). The bridge fills this
cache from what WeCom provides (group member lists with group nicknames, the address book,
external contacts) in the background; a member's turn only ever reads it. An id nobody has
named yet is shown with a neutral masked label ("群友·k3f9"), never raw.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qunzhu.redisconn import AsyncRedis, batch

NAMES_TTL_S = 30 * 24 * 3600  # a directory entry nobody refreshed for a month is dropped
MAX_NAME_CHARS = 32
RELIST_AFTER_S = 300  # a member missing from a list older than this asks for a new list


def masked(userid: str, label: str = "群友") -> str:
    """A neutral, stable stand-in for an unnamed id that reveals nothing of it."""
    digest = hashlib.sha256(userid.encode("utf-8", "surrogatepass")).digest()
    return f"{label}·{base64.b32encode(digest).decode()[:4].lower()}"


# Names are chosen by members and land in markdown (leaderboards, staff cards): characters
# markdown acts on become their full-width look-alikes, so a name never becomes a link.
_MARKDOWN_SAFE = str.maketrans("[]()<>*#`_~|", "［］（）＜＞＊＃｀＿～｜")


def masked_group(chatid: str) -> str:
    """A group nobody has named yet, as people are shown it."""
    return masked(chatid, "群聊")


def clean_name(name: object) -> str:
    """A display name as people see it: one line, trimmed, bounded, inert in markdown."""
    text = " ".join(str(name or "").split()).translate(_MARKDOWN_SAFE)
    return text[:MAX_NAME_CHARS]


@dataclass(frozen=True)
class NameKeys:
    """The directory's Redis keys for one brand."""

    brand: str

    @property
    def prefix(self) -> str:
        """All directory keys share the brand's prefix."""
        return f"qz:{{{self.brand}}}:dir"

    def group_members(self, chatid: str) -> str:
        """Hash userid → the name a member shows in this group (group nickname first)."""
        return f"{self.prefix}:group:{chatid}"

    @property
    def people(self) -> str:
        """Hash userid → the person's name from the address book or external contact."""
        return f"{self.prefix}:people"

    @property
    def groups(self) -> str:
        """Hash chatid → the group's name."""
        return f"{self.prefix}:groups"

    def fresh(self, chatid: str) -> str:
        """Present while a group's member list is fresh (its TTL is the refresh interval)."""
        return f"{self.prefix}:fresh:{chatid}"

    def listed(self, chatid: str) -> str:
        """Present for a few minutes after a group's list was fetched (newcomers re-list)."""
        return f"{self.prefix}:listed:{chatid}"

    def person_fresh(self, userid: str) -> str:
        """Present while a person's name is fresh."""
        return f"{self.prefix}:pfresh:{userid}"

    @property
    def wanted(self) -> str:
        """Set of "chatid\\x1fuserid" the bridge should look up in the background."""
        return f"{self.prefix}:wanted"


WANTED_SEP = "\x1f"


class NameBook:
    """Read (and, for the bridge, write) the directory of one brand."""

    def __init__(self, client: AsyncRedis, brand: str) -> None:
        self._r = client
        self.keys = NameKeys(brand)

    async def members(self, group: str, userids: Iterable[str]) -> dict[str, str]:
        """Display names of these members in this group (masked where unknown)."""
        ids = list(dict.fromkeys(userids))
        if not ids:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            if group:
                pipe.hmget(self.keys.group_members(group), ids)
            pipe.hmget(self.keys.people, ids)
            rows = await pipe.execute()
        in_group = rows[0] if group else [None] * len(ids)
        people = rows[-1]
        names: dict[str, str] = {}
        for userid, nick, person in zip(ids, in_group, people, strict=True):
            names[userid] = _text(nick) or _text(person) or masked(userid)
        return names

    async def member(self, group: str, userid: str) -> str:
        """One member's display name in a group."""
        return (await self.members(group, [userid]))[userid]

    async def group(self, chatid: str) -> str:
        """A group's name (masked when unknown)."""
        if not chatid:
            return ""
        return _text(await self._r.hget(self.keys.groups, chatid)) or masked_group(chatid)

    # ------------------------------------------------------------ writes (the bridge)
    async def remember_group(self, chatid: str, name: str, members: Mapping[str, str],
                             fresh_s: int) -> None:
        """A group's name and its members' display names, as WeCom listed them just now."""
        key = self.keys.group_members(chatid)
        async with batch(self._r) as pipe:
            if clean_name(name):
                pipe.hset(self.keys.groups, chatid, clean_name(name))
                pipe.expire(self.keys.groups, NAMES_TTL_S)
            named = {u: clean_name(n) for u, n in members.items() if u and clean_name(n)}
            pipe.delete(key)
            if named:
                pipe.hset(key, mapping=named)
                pipe.expire(key, NAMES_TTL_S)
            pipe.set(self.keys.fresh(chatid), "1", ex=max(1, fresh_s))
            pipe.set(self.keys.listed(chatid), "1", ex=RELIST_AFTER_S)
            await pipe.execute()

    async def listed_recently(self, chatid: str) -> bool:
        """Whether this group's member list was fetched in the last few minutes."""
        return bool(await self._r.exists(self.keys.listed(chatid)))

    async def remember_group_name(self, chatid: str, name: str) -> None:
        """A group's name from configuration (data/groups.yml)."""
        if clean_name(name):
            await self._r.hset(self.keys.groups, chatid, clean_name(name))
            await self._r.expire(self.keys.groups, NAMES_TTL_S)

    async def remember_person(self, userid: str, name: str, fresh_s: int) -> None:
        """A person's own name (address book or external contact)."""
        async with batch(self._r) as pipe:
            if clean_name(name):
                pipe.hset(self.keys.people, userid, clean_name(name))
                pipe.expire(self.keys.people, NAMES_TTL_S)
            pipe.set(self.keys.person_fresh(userid), "1", ex=max(1, fresh_s))
            await pipe.execute()

    async def mark_fresh(self, chatid: str, fresh_s: int) -> None:
        """Leave a group's list alone for a while (WeCom would not list it just now)."""
        await self._r.set(self.keys.fresh(chatid), "1", ex=max(1, fresh_s))

    async def is_fresh(self, chatid: str) -> bool:
        """Whether this group's member list was fetched recently."""
        return bool(await self._r.exists(self.keys.fresh(chatid)))

    async def person_is_fresh(self, userid: str) -> bool:
        """Whether this person's own name was looked up recently."""
        return bool(await self._r.exists(self.keys.person_fresh(userid)))

    async def known_in(self, chatid: str, userid: str) -> bool:
        """Whether the group's list names this member."""
        return bool(await self._r.hexists(self.keys.group_members(chatid), userid))

    async def want(self, chatid: str, userid: str) -> None:
        """Ask the bridge's background resolver to look this member up."""
        await self._r.sadd(self.keys.wanted, f"{chatid}{WANTED_SEP}{userid}")

    async def next_wanted(self, count: int) -> list[tuple[str, str]]:
        """Take up to `count` lookups off the queue (each is taken by one process)."""
        raw = await self._r.spop(self.keys.wanted, count)
        pairs = []
        for item in raw or []:
            chatid, _sep, userid = _text(item).partition(WANTED_SEP)
            if userid:
                pairs.append((chatid, userid))
        return pairs


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def mention(userid: str) -> str:
    """WeCom markdown's mention of a member: rendered as @name and notifies them."""
    return f"<@{userid}>"
