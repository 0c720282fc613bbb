"""Time the bridge and simulator share: real by default, virtual in tests (no wall-clock waits)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Seconds since the epoch, and a way to wait that a test can fast-forward."""

    def now(self) -> float:
        """Current time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait; a virtual clock advances instead."""
        ...


class RealClock:
    """The wall clock and asyncio.sleep."""

    def now(self) -> float:
        """time.time()."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that jumps forward when someone sleeps, so a 60 s window takes no real time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        """The virtual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Advance by the requested time and let other tasks run."""
        self.advance(seconds)
        await asyncio.sleep(0)


class FollowedClock:
    """Another clock's time plus an offset someone else sets (the sandbox's simulated time).

    `refresh` asks for the current offset; until it answers, and whenever it fails, the
    last known offset holds. Time shown by it never runs backwards.
    """

    def __init__(self, base: Clock, offset: Callable[[], Awaitable[float]]) -> None:
        self._base = base
        self._offset_of = offset
        self._offset = 0.0
        self._last = 0.0

    def now(self) -> float:
        """The base time plus the offset (never earlier than the last answer)."""
        self._last = max(self._last, self._base.now() + self._offset)
        return self._last

    async def refresh(self) -> None:
        """Fetch the offset; keep the old one on any failure."""
        try:
            self._offset = float(await self._offset_of())
        except Exception as exc:  # the sandbox's simulator may be restarting
            log.debug("simulated time not refreshed: %s", type(exc).__name__)

    async def sleep(self, seconds: float) -> None:
        """Wait on the base clock, then refresh the offset."""
        await self._base.sleep(seconds)
        await self.refresh()
