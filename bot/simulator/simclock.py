"""Simulated time for the sandbox: fast-forward to the sandbox group's next campaign post.

The simulator keeps an offset over the wall clock (forward only); `make run` points the
bridge's campaign scheduler at `GET /sim/clock` (BRIDGE_SANDBOX_CLOCK_URL), so a demo does
not wait until 09:00 for the check-in reminder. WeCom's own timestamps (callbacks,
signatures) keep the real time. Production never sets the URL.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from qunzhu.campaigns import CampaignsFile, campaigns_file, load_campaigns, next_due
from qunzhu.config import SHANGHAI
from qunzhu.groupsfile import GroupsFile
from qunzhu.sandbox import SANDBOX_GROUP
from qunzhu.settings import project_path
from qunzhu.yamlconfig import ConfigError, load_yaml, validate

log = logging.getLogger(__name__)
LEAD_S = 5  # a fast-forward lands this long before the post is due
MAX_ADVANCE_S = 8 * 24 * 3600


class SimClock:
    """Wall clock + a forward-only offset, kept in a file so a restarted simulator goes on
    from the same simulated time (the scheduler's cursor in Redis already went there)."""

    def __init__(self, keep: Path | None = None) -> None:
        self._keep = keep
        self.offset_s = 0.0
        if keep is not None:
            with contextlib.suppress(OSError, ValueError):  # none kept yet: real time
                self.offset_s = max(0.0, float(keep.read_text(encoding="utf-8")))

    def now(self) -> datetime:
        """The simulated time."""
        return datetime.fromtimestamp(time.time() + self.offset_s, tz=SHANGHAI)

    def advance(self, seconds: float) -> None:
        """Move time forward (never back: a scheduler's cursor only moves forward)."""
        self.offset_s += max(0.0, seconds)
        if self._keep is not None:
            try:
                self._keep.parent.mkdir(parents=True, exist_ok=True)
                self._keep.write_text(f"{self.offset_s:.3f}", encoding="utf-8")
            except OSError as exc:  # a demo aid: the time still moves in memory
                log.warning("simulated time not kept: %s", type(exc).__name__)


CLOCK: web.AppKey[SimClock] = web.AppKey("sim_clock", SimClock)


def _campaigns() -> CampaignsFile | None:
    try:
        return load_campaigns(campaigns_file())
    except ConfigError:
        return None


def _sandbox_tags() -> list[str]:
    path = project_path("BRIDGE_GROUPS_FILE")
    try:
        parsed: GroupsFile = validate(path, load_yaml(path, None), GroupsFile, None)
    except (ConfigError, OSError):
        return []
    return next((g.tags for g in parsed.groups if g.chatid == SANDBOX_GROUP), [])


def _next(now: datetime) -> dict[str, Any] | None:
    file = _campaigns()
    found = next_due(file, SANDBOX_GROUP, _sandbox_tags(), now) if file else None
    if found is None:
        return None
    campaign, due = found
    return {"campaign": campaign.id, "name": campaign.name, "due": due.isoformat()}


async def get_clock(request: web.Request) -> web.Response:
    """The simulated time, its offset, and the sandbox group's next campaign post."""
    clock = request.app[CLOCK]
    now = clock.now()
    return web.json_response({"offset_s": clock.offset_s, "now": now.isoformat(),
                              "next": _next(now)})


async def set_clock(request: web.Request) -> web.Response:
    """{"advance_s": N} or {"to": "next_post"}: move the simulated time forward."""
    clock = request.app[CLOCK]
    try:
        doc = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be JSON"}, status=400)
    if not isinstance(doc, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    if doc.get("to") == "next_post":
        upcoming = _next(clock.now())
        if upcoming is None:
            return web.json_response({"error": "沙盒群接下来一周没有定时推送"}, status=404)
        gap = (datetime.fromisoformat(upcoming["due"]) - clock.now()).total_seconds() - LEAD_S
        clock.advance(gap)
    else:
        step = doc.get("advance_s")
        if (not isinstance(step, int | float) or isinstance(step, bool)
                or not 0 < step <= MAX_ADVANCE_S):
            return web.json_response(
                {"error": f"advance_s must be a number of seconds in (0, {MAX_ADVANCE_S}]"},
                status=400)
        clock.advance(float(step))
    return await get_clock(request)


def add_routes(app: web.Application, keep: Path | None = None) -> None:
    """Mount /sim/clock (`keep`: where the offset survives a restart)."""
    app[CLOCK] = SimClock(keep)
    app.router.add_get("/sim/clock", get_clock)
    app.router.add_post("/sim/clock", set_clock)


__all__ = ["CLOCK", "SimClock", "add_routes"]
