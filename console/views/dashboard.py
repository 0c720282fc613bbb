"""The brand's and each group's numbers: overview, group list by health, group page, CSV."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from console.auth import account, csrf_token, needs
from console.keys import REDIS, SETTINGS
from console.ranges import RangeError, parse_health, parse_range
from console.reports import COLUMNS, SORTS, health_rows, report
from console.roles import Role
from qunzhu import metrics
from qunzhu.groupsfile import group_names

routes = web.RouteTableDef()


def names(request: web.Request) -> dict[str, str]:
    """Group names from the groups file, read per request so an edit shows at once."""
    return group_names(request.app[SETTINGS].groups_file)


def range_or_400(request: web.Request) -> Any:
    try:
        return parse_range(dict(request.query))
    except RangeError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def page(request: web.Request, template: str, *, status: int = 200,
               **context: Any) -> web.StreamResponse:
    """Render a signed-in page with what every page needs (who, CSRF token, brand)."""
    settings = request.app[SETTINGS]
    return aiohttp_jinja2.render_template(template, request, {
        "me": account(request), "csrf": await csrf_token(request), "Role": Role,
        "brand_name": settings.brand_name, "path": request.path, **context}, status=status)


async def _dashboard(request: web.Request, group: str) -> web.StreamResponse:
    span = range_or_400(request)
    settings = request.app[SETTINGS]
    found = await report(request.app[REDIS], settings.brand, span, group)
    data = found.as_json()
    title = names(request).get(group, group) if group else "全部群"
    return await page(request, "dashboard.html", title=title, group=group, span=span,
                      kpis=data["kpis"], days=found.stats.days, columns=COLUMNS,
                      total=found.stats.total, active_total=found.stats.active,
                      charts=json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"))


@routes.get("/")
@needs(Role.VIEWER)
async def overview(request: web.Request) -> web.StreamResponse:
    return await _dashboard(request, "")


@routes.get("/groups/{group}")
@needs(Role.VIEWER)
async def group_page(request: web.Request) -> web.StreamResponse:
    return await _dashboard(request, request.match_info["group"])


@routes.get("/groups")
@needs(Role.VIEWER)
async def group_list(request: web.Request) -> web.StreamResponse:
    try:
        window, last = parse_health(dict(request.query))
    except RangeError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    sort = request.query.get("sort", "trend")
    rows = await health(request, window, sort, last)
    return await page(request, "groups.html", rows=rows, window=window, sort=sort,
                      sorts=[(k, label) for k, (label, _f) in SORTS.items()],
                      first=last - timedelta(days=window - 1), last=last)


async def health(request: web.Request, window: int, sort: str,
                 last: date) -> list[dict[str, Any]]:
    """The group list over the `window` days ending `last`, against the window before."""
    settings = request.app[SETTINGS]
    listed = names(request)
    found = await metrics.group_health(request.app[REDIS], settings.brand, last, window,
                                       groups=listed)
    return health_rows(found, listed, sort)


@routes.get("/export.csv")
@needs(Role.VIEWER)
async def export_csv(request: web.Request) -> web.StreamResponse:
    span = range_or_400(request)
    group = request.query.get("group", "")
    found = await report(request.app[REDIS], request.app[SETTINGS].brand, span, group)
    filename = f"qunzhu-{group or 'all'}-{span.first}-{span.last}.csv"
    return web.Response(body=found.csv().encode("utf-8"), content_type="text/csv",
                        charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
