"""The bridge's operator files, watched: reloaded within a second, mistakes told to staff once.

The bridge serves with the last good brand, games and groups files whatever an operator
saves (qunzhu.liveconfig). An invalid file is logged with file:line:field, posted once to
the staff group, listed in /api/metrics and makes /healthz say "degraded".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.common import logsafe
from bot.common.groups import Directory, load_directory
from bot.common.posts import Post, PostFn
from bot.common.texts import Texts
from qunzhu.campaigns import CampaignsFile, campaigns_file, load_campaigns
from qunzhu.config import Brand, Games, brand_file, brand_loader, games_file, load_games
from qunzhu.liveconfig import LiveFile, Problem
from qunzhu.redisconn import REDIS_DOWN
from qunzhu.settings import shown_path

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class OperatorFiles:
    """The live operator files the bridge reads."""

    brand: LiveFile[Brand]
    games: LiveFile[Games]
    groups: LiveFile[Directory]
    campaigns: LiveFile[CampaignsFile]

    @classmethod
    def load(cls, groups_file: Path) -> OperatorFiles:
        """Load them all (ConfigError only for a file that never had a good version)."""
        # Only ConfigWatch reloads (check_every_s=inf): a request never parses a file.
        never = math.inf
        return cls(
            brand=LiveFile("brand", brand_file(), brand_loader(), check_every_s=never),
            games=LiveFile("games", games_file(), load_games, check_every_s=never),
            groups=LiveFile("groups", groups_file, load_groups, check_every_s=never),
            campaigns=LiveFile("campaigns", campaigns_file(), load_campaigns_text,
                               check_every_s=never),
        )

    def all(self) -> Sequence[LiveFile[Any]]:
        """Every watched file."""
        return (self.brand, self.games, self.groups, self.campaigns)


def load_campaigns_text(path: Path, text: str) -> CampaignsFile:
    """The campaigns file (the schedule and the anti-spam budget's tightening)."""
    return load_campaigns(path, text)


def load_groups(path: Path, text: str) -> Directory:
    """The groups file; every webhook key it names is redacted from logs from now on."""
    directory = load_directory(path, text=text)
    logsafe.remember(r.key for r in directory.robots.values())
    return directory


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
            try:
                for live in self._files:
                    live.refresh()
                await self.announce()
            except Exception:  # a bug here must not end the watching
                log.exception("checking the operator files failed; trying again")
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
            except REDIS_DOWN as exc:
                log.warning("config problem not yet posted to staff (%s)", type(exc).__name__)
                continue
            self._announced.add(problem.fingerprint)
