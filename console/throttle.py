"""Login throttling: a name (or an address) with too many wrong passwords waits.

Counted in Redis so every console process shares it. While locked, even the right password
is refused, so guessing gains nothing from the lock ending early.
"""

from __future__ import annotations

from dataclasses import dataclass

from qunzhu.redisconn import AsyncRedis

# KEYS[1] the counter  ARGV[1] window seconds; the failures so far in this window
FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class LoginThrottle:
    """At most `per_name` failures per name and `per_address` per address in a window."""

    r: AsyncRedis
    per_name: int = 5
    per_address: int = 20
    window_s: int = 900

    def _keys(self, name: str, address: str) -> tuple[str, str]:
        return (f"qz:{{console}}:fail:n:{name.strip().lower()[:64]}",
                f"qz:{{console}}:fail:a:{address[:64]}")

    async def locked_for(self, name: str, address: str) -> int:
        """Seconds until this name and address may try again (0 = now)."""
        by_name, by_address = self._keys(name, address)
        waits = []
        for key, limit in ((by_name, self.per_name), (by_address, self.per_address)):
            count = await self.r.get(key)
            if count is not None and int(count) >= limit:
                waits.append(max(1, int(await self.r.ttl(key))))
        return max(waits, default=0)

    async def failed(self, name: str, address: str) -> None:
        for key in self._keys(name, address):
            await self.r.eval(FAIL, 1, key, str(self.window_s))

    async def succeeded(self, name: str) -> None:
        await self.r.delete(self._keys(name, "")[0])
