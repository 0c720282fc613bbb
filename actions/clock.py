"""Dates for games are Asia/Shanghai calendar days, whatever the server's timezone is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    """Anything that can tell the current time; injectable so tests can cross midnight."""

    def now(self) -> datetime:
        """Return the current time as an aware datetime."""
        ...


class SystemClock:
    """The real clock; honours QZ_FAKE_NOW (ISO time) so end-to-end runs can pin a day."""

    def now(self) -> datetime:
        """Return the current time in Asia/Shanghai."""
        fake = os.environ.get("QZ_FAKE_NOW")
        if fake:
            parsed = datetime.fromisoformat(fake)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)
        return datetime.now(SHANGHAI)


@dataclass
class FixedClock:
    """A clock that stays where a test puts it."""

    current: datetime

    def now(self) -> datetime:
        """Return the pinned time."""
        return self.current

    def advance(self, **delta: float) -> None:
        """Move the clock forward, e.g. advance(minutes=1)."""
        self.current = self.current + timedelta(**delta)


def local_day(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of a moment (00:00 Shanghai is 16:00 UTC)."""
    return moment.astimezone(SHANGHAI).date()
