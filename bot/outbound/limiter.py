"""Each robot's budget (≤ 20 posts in any 60 s), shared in Redis by every sender process.

A lane asks for a slot before each webhook call and idles until one frees; lanes asking in
the same loop tick share one round trip. WeCom's 45009 blocks the robot for at least a
minute, for every sender.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.common.clock import Clock
from bot.common.coalesce import Coalescer
from bot.common.store import BridgeStore

Idle = Callable[[float], Awaitable[None]]


class RobotLimiter:
    """Sliding-window slots per robot, asked for in batches."""

    def __init__(self, store: BridgeStore, clock: Clock, *, limit: int, window_s: float,
                 rate_limited_backoff_s: float) -> None:
        self._store = store
        self._clock = clock
        self._limit = limit
        self._window_s = window_s
        self._backoff_s = rate_limited_backoff_s
        self._slots: Coalescer[str, float] = Coalescer(self._take_slots)

    async def _take_slots(self, robot_ids: list[str]) -> list[float]:
        return await self._store.take_slots(robot_ids, self._clock.now(), self._window_s,
                                            self._limit)

    async def wait_for_slot(self, robot_id: str, idle: Idle) -> None:
        """Take a slot in the robot's window, idling (through `idle`) until one frees."""
        while True:
            wait = await self._slots.submit(robot_id)
            if wait <= 0:
                return
            await idle(wait)

    async def rate_limited(self, robot_id: str) -> None:
        """WeCom said 45009: no sender posts to this robot for the back-off time."""
        now = self._clock.now()
        await self._store.block(robot_id, now + self._backoff_s, now)
