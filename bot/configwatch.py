"""The bridge's operator files, watched: reloaded within a second, mistakes told to staff once.

The bridge serves with the last good brand, games and groups files whatever an operator
saves (qunzhu.liveconfig). An invalid file is logged with file:line:field, posted once to
the staff group, listed in /api/metrics and makes /healthz say "degraded".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from bot import logsafe
from bot.groups import Directory, load_directory
from bot.outbox import Post
from bot.texts import Texts
from qunzhu.config import Brand, Games, brand_file, games_file, load_brand, load_games
from qunzhu.liveconfig import LiveFile, Problem
from qunzhu.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

PostFn = Callable[[Post, str], Awaitable[str]]


@dataclass(frozen=True)
class OperatorFiles:
    """The live operator files the bridge reads."""

    brand: LiveFile[Brand]
    games: LiveFile[Games]
    groups: LiveFile[Directory]

    @classmethod
    def load(cls, groups_file: Path) -> OperatorFiles:
        """Load all three (ConfigError only for a file that never had a good version)."""
        return cls(
            brand=LiveFile("brand", brand_file(), load_brand),
            games=LiveFile("games", games_file(), load_games),
            groups=LiveFile("groups", groups_file,
                            lambda path, text: load_directory(path, text=text)),
        )

    def all(self) -> Sequence[LiveFile[Any]]:
        """Every watched file."""
        return (self.brand, self.games, self.groups)


def shown_path(path: Path) -> str:
    """A path as an operator knows it: relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


class ConfigWatch:
    """Checks the files every second and tells staff about each new problem once."""

    def __init__(self, files: Sequence[LiveFile[Any]], texts: Texts,
                 directory: Callable[[], Directory], post: PostFn,
                 interval_s: float = 1.0) -> None:
        self._files = files
        self._texts = texts
        self._directory = directory
        self._post = post
        self._interval_s = interval_s
        self._announced: set[str] = set()
        self._stopping = asyncio.Event()

    def problems(self) -> list[Problem]:
        """The files that are invalid now (their last good versions are serving)."""
        return [f.problem for f in self._files if f.problem is not None]

    def stop(self) -> None:
        """Stop after the current check."""
        self._stopping.set()

    async def run(self) -> None:
        """Reload changed files and announce new problems until stopped."""
        while not self._stopping.is_set():
            for live in self._files:
                if live.refresh() and isinstance(live.value, Directory):
                    # A reloaded groups file may name new webhook keys: never log them.
                    logsafe.remember(r.key for r in live.value.robots.values())
            await self.announce()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)

    async def announce(self) -> None:
        """Post each problem not yet announced to the staff group (once, across processes)."""
        staff = self._directory().staff_chatid
        for problem in self.problems():
            if problem.fingerprint in self._announced or not staff:
                continue
            text = self._texts.say("utter_bridge_config_error", file=shown_path(problem.path),
                                   error=problem.message.replace(str(problem.path),
                                                                 shown_path(problem.path)))
            try:
                await self._post(Post(staff, "markdown", text[:1200]),
                                 f"config-error:{problem.fingerprint}")
            except (RedisError, OSError) as exc:
                log.warning("config problem not yet posted to staff (%s)", type(exc).__name__)
                continue
            self._announced.add(problem.fingerprint)
