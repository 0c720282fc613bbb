"""Members who asked campaigns not to @-mention them ("别@我了"), and groups that said "too much".

The actions write both when a member says so; the campaign scheduler reads the opt-outs
before it @-mentions anyone, and the console shows the "群里消息太多了" signals per group.
An opt-out is brand-wide (a member who is tired of being @-ed is tired of it everywhere)
and lasts until the member says "恢复提醒". Both live on the brand's own slot.
"""

from __future__ import annotations

from collections.abc import Iterable

from qunzhu.redisconn import AsyncRedis, text_of


def optouts_key(brand: str) -> str:
    """Set of userids campaigns never @-mention."""
    return f"qz:{{{brand}:optout}}:members"


def too_many_key(brand: str) -> str:
    """Hash chatid → how many times members said the group gets too many posts."""
    return f"qz:{{{brand}:optout}}:too_many"


class OptOuts:
    """Read and write one brand's opt-outs."""

    def __init__(self, client: AsyncRedis, brand: str) -> None:
        self._r = client
        self._brand = brand

    async def choose(self, user: str, out: bool) -> bool:
        """Opt a member out (or back in); True when that changed anything."""
        key = optouts_key(self._brand)
        changed = await (self._r.sadd(key, user) if out else self._r.srem(key, user))
        return bool(changed)

    async def is_out(self, user: str) -> bool:
        """Whether campaigns must leave this member alone."""
        return bool(await self._r.sismember(optouts_key(self._brand), user))

    async def which(self, users: Iterable[str]) -> set[str]:
        """Those of `users` who opted out."""
        ids = list(dict.fromkeys(users))
        if not ids:
            return set()
        flags = await self._r.smismember(optouts_key(self._brand), ids)
        return {user for user, flag in zip(ids, flags, strict=True) if int(flag)}

    async def count(self) -> int:
        """How many members opted out."""
        return int(await self._r.scard(optouts_key(self._brand)))

    async def too_many(self, group: str) -> int:
        """Count one more "too many posts" from a group; the new total."""
        return int(await self._r.hincrby(too_many_key(self._brand), group, 1))

    async def too_many_by_group(self) -> dict[str, int]:
        """Every group's "too many posts" count."""
        raw = await self._r.hgetall(too_many_key(self._brand))
        return {text_of(k): int(v) for k, v in raw.items()}
