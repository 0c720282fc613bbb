"""Time the bridge and simulator share: real by default, virtual in tests (no wall-clock waits)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
