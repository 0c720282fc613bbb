"""The campaigns' API: what runs, and what each campaign did in every group, with reasons.

`GET /api/campaigns` lists the campaigns with their next scheduled time and today's tally;
`GET /api/campaigns/{id}?days=7&group=<chatid>` gives one campaign's sent / deferred /
dropped / skipped counts, the reasons, each group's tally and last outcome, and what
followed its posts (`qunzhu.campaign_effect`). Both need
the bridge's bearer token, like the rest of its API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from bot.common import appkeys
from bot.common.auth import authorised
from qunzhu.campaign_effect import effect
from qunzhu.campaign_status import StatusBook
from qunzhu.campaigns import CEILING, Campaign
from qunzhu.config import SHANGHAI
from qunzhu.names import masked_group
from qunzhu.redisconn import REDIS_DOWN

MAX_DAYS = 35
MAX_GROUPS = 500  # groups listed in one answer (the totals count them all)


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _now(app: web.Application) -> datetime:
    return datetime.fromtimestamp(app[appkeys.CLOCK].now(), tz=SHANGHAI)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _describe(campaign: Campaign, app: web.Application, now: datetime) -> dict[str, Any]:
    """A campaign as operators read it: what, where, when next."""
    groups = app[appkeys.GROUPS]().tags()
    return {"id": campaign.id, "name": campaign.name, "text": campaign.text,
            "promotional": campaign.promotional, "enabled": campaign.enabled,
            "groups": len(campaign.targets(groups)),
            "next": _iso(campaign.next_run(now))}


async def list_campaigns(request: web.Request) -> web.Response:
    """Every campaign, its next time and today's tally."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    app = request.app
    file, now = app[appkeys.CAMPAIGNS](), _now(app)
    book = StatusBook(app[appkeys.REDIS], app[appkeys.BRAND_ID])
    out = []
    try:
        for campaign in file.campaigns:
            counts = await book.counts(campaign.id, now.date())
            out.append(_describe(campaign, app, now)
                       | {"today": {s: counts.get(s, 0) for s in ("sent", "deferred",
                                                                  "dropped", "skipped")}})
    except REDIS_DOWN:
        return _problem(503, "campaign status unavailable, retry")
    return web.json_response({"campaigns": out, "ceiling": {
        "promo_per_day": CEILING.promo_per_day, "promo_gap_minutes": CEILING.promo_gap_minutes,
        "quiet_hours": f"{CEILING.quiet_start:%H:%M}-{CEILING.quiet_end:%H:%M}",
        "service_per_day": CEILING.service_per_day}})


async def campaign_status(request: web.Request) -> web.Response:
    """One campaign: per-group sent / deferred / dropped / skipped, with reasons."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    app = request.app
    file = app[appkeys.CAMPAIGNS]()
    campaign = next((c for c in file.campaigns if c.id == request.match_info["campaign"]), None)
    if campaign is None:
        return _problem(404, f"no campaign {request.match_info['campaign']!r} in the campaigns "
                             "file")
    try:
        days = int(request.query.get("days", "7"))
    except ValueError:
        return _problem(400, "days must be a whole number")
    if not 1 <= days <= MAX_DAYS:
        return _problem(400, f"days must be between 1 and {MAX_DAYS}")
    only = request.query.get("group", "")
    now = _now(app)
    book = StatusBook(app[appkeys.REDIS], app[appkeys.BRAND_ID])
    try:
        summary = await book.summary(campaign.id, now.date(), days)
        helped = await effect(app[appkeys.REDIS], app[appkeys.BRAND_ID], campaign, book,
                              now.date(), now, days)
    except REDIS_DOWN:
        return _problem(503, "campaign status unavailable, retry")
    directory = app[appkeys.GROUPS]()
    groups = summary["groups"]
    if only:
        groups = {only: groups[only]} if only in groups else {}
    listed = dict(sorted(groups.items())[:MAX_GROUPS])
    for chatid, row in listed.items():
        robot = directory.robot(chatid)
        row["name"] = robot.name if robot and robot.name else masked_group(chatid)
    return web.json_response(_describe(campaign, app, now) | {
        "days": days, "totals": summary["totals"], "reasons": summary["reasons"],
        "groups_total": len(groups), "groups_detail": listed, "effect": helped.to_json()})


def add_routes(app: web.Application) -> None:
    """Mount the campaigns' API."""
    app.router.add_get("/api/campaigns", list_campaigns)
    app.router.add_get("/api/campaigns/{campaign}", campaign_status)
