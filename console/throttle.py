"""Login throttling: a name (or an address) with too many attempts waits.

An attempt is counted *before* the password is checked, atomically, so thirty guesses sent at
once are thirty attempts, not thirty checks against a count of zero. A right password takes
its attempt back. Counted in Redis so every console process shares it. While locked, even
the right password is refused, so guessing gains nothing from the lock ending early.
"""

from __future__ import annotations

from dataclasses import dataclass

from qunzhu.redisconn import AsyncRedis

# KEYS[1] the counter  ARGV[1] window seconds; the attempts so far in this window
ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""


@dataclass(frozen=True)
class LoginThrottle:
    """At most `per_name` failed attempts per name and `per_address` per address in a window."""

    r: AsyncRedis
    per_name: int = 5
    per_address: int = 20
    window_s: int = 900

    def _keys(self, name: str, address: str) -> tuple[str, str]:
        return (f"qz:{{console}}:fail:n:{name.strip().lower()[:64]}",
                f"qz:{{console}}:fail:a:{address[:64]}")

    async def attempt(self, name: str, address: str) -> int:
        """Count an attempt; seconds to wait when it is over a limit (0 = go ahead)."""
        waits = []
        for key, limit in zip(self._keys(name, address), (self.per_name, self.per_address),
                              strict=True):
            count, ttl = await self.r.eval(ATTEMPT, 1, key, str(self.window_s))
            if int(count) > limit:
                waits.append(max(1, int(ttl)))
        return max(waits, default=0)

    async def succeeded(self, name: str, address: str) -> None:
        """A right password: the name starts afresh, and the address gets its attempt back."""
        by_name, by_address = self._keys(name, address)
        await self.r.delete(by_name)
        await self.r.decr(by_address)
