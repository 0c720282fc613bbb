"""Log an outage the way an operator wants to read it: when it starts, now and then, when it ends.

A loop that retries every second while Redis is down would otherwise write a warning per
second per loop: hundreds of lines for a two-minute outage, burying everything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class OutageLog:
    """The state of one retried thing (a stream reader, the spool drainer, name lookups)."""

    def __init__(self, what: str, log: logging.Logger, *, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._since: float | None = None
        self._said: float = 0.0

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """An attempt failed: say so at the start, then once every `every_s` while it lasts."""
        now = self._clock()
        if self._since is None:
            self._since = self._said = now
            self._log.warning("%s paused (%s); retrying", self.what, type(exc).__name__)
        elif now - self._said >= self._every_s:
            self._said = now
            self._log.warning("%s still paused after %.0f s (%s)", self.what,
                              now - self._since, type(exc).__name__)

    def ok(self) -> None:
        """An attempt worked: say how long it was down, once."""
        if self._since is not None:
            self._log.warning("%s resumed after %.0f s", self.what, self._clock() - self._since)
            self._since = None
