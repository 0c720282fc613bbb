"""收件箱: what members asked that the bot could not answer, grouped by topic, with names."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from console import trainingdata
from console.auth import needs
from console.clusters import Cluster, cluster
from console.keys import REDIS, SETTINGS
from console.roles import Role
from console.views.dashboard import names, page
from qunzhu import inbox, metrics
from qunzhu.names import NameBook

routes = web.RouteTableDef()
PERIODS = {"1": "今天以来 24 小时", "7": "最近 7 天", "30": "最近 30 天"}


def period_or_400(request: web.Request) -> int:
    days = request.query.get("days", "7")
    if days not in PERIODS:
        raise web.HTTPBadRequest(text="时间范围只能是 1、7 或 30 天")
    return int(days)


async def clusters_of(request: web.Request, days: int) -> list[dict[str, Any]]:
    """The inbox of the last `days` days, clustered, with group and member names."""
    settings, r = request.app[SETTINGS], request.app[REDIS]
    until = time.time()
    items = await inbox.recent(r, settings.brand, until - days * 86400, until)
    found: list[Cluster] = await asyncio.to_thread(cluster, items)
    group_names = names(request)
    book = NameBook(r, settings.brand)
    wanted: dict[str, set[str]] = {}
    for c in found:
        for item in c.examples:
            wanted.setdefault(item.group, set()).add(item.user)
    people = {g: await book.members(g, sorted(users)) for g, users in wanted.items()}
    for g in wanted:
        if g and g not in group_names:
            group_names[g] = await book.group(g)

    def when(at: float) -> str:
        return datetime.fromtimestamp(at, metrics.TZ).strftime("%m-%d %H:%M")

    out = []
    for c in found:
        closest, share = c.closest
        out.append({
            "title": c.title, "messages": c.size, "members": c.members,
            "wordings": c.wordings,
            "groups": [group_names.get(g, g) for g in c.groups][:5],
            "closest": closest, "closest_share": round(share, 2),
            "reasons": [(inbox.REASONS.get(r, r), n) for r, n in c.reasons],
            "examples": [{
                "at": when(i.at), "group": group_names.get(i.group, i.group) if i.group
                else "私聊", "member": people.get(i.group, {}).get(i.user, ""),
                "text": i.text, "answer": i.answer} for i in c.examples],
        })
    return out


@routes.get("/inbox")
@needs(Role.VIEWER)
async def inbox_page(request: web.Request) -> web.StreamResponse:
    days = period_or_400(request)
    found = await clusters_of(request, days)
    root = request.app[SETTINGS].project_root
    return await page(request, "inbox.html", clusters=found, days=days, periods=PERIODS,
                      total=sum(c["messages"] for c in found),
                      intents=await asyncio.to_thread(trainingdata.intents, root))


@routes.get("/api/inbox")
@needs(Role.VIEWER)
async def inbox_api(request: web.Request) -> web.StreamResponse:
    try:
        days = period_or_400(request)
    except web.HTTPBadRequest as exc:
        return web.json_response({"error": exc.text}, status=400)
    return web.json_response({"days": days, "clusters": await clusters_of(request, days)})
