"""The HTTP API: everything the console shows, as JSON (or CSV), for a script with a token.

`Authorization: Bearer <token>` (a token from 我的账号). Errors are JSON: {"error": "…"}.
"""

from __future__ import annotations

from aiohttp import web

from console.auth import account, needs
from console.keys import ACCOUNTS, AUDIT, REDIS, SETTINGS
from console.ranges import RangeError, parse_health, parse_range
from console.reports import report
from console.roles import Role
from console.views.dashboard import export_csv, health

routes = web.RouteTableDef()


def bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


@routes.get("/api/me")
@needs(Role.VIEWER)
async def me(request: web.Request) -> web.StreamResponse:
    who = account(request)
    return web.json_response({"name": who.name, "display": who.display,
                              "role": who.role.name.lower()})


@routes.get("/api/stats")
@needs(Role.VIEWER)
async def stats(request: web.Request) -> web.StreamResponse:
    try:
        span = parse_range(dict(request.query))
    except RangeError as exc:
        return bad_request(str(exc))
    found = await report(request.app[REDIS], request.app[SETTINGS].brand, span,
                         request.query.get("group", ""))
    return web.json_response(found.as_json())


@routes.get("/api/stats.csv")
@needs(Role.VIEWER)
async def stats_csv(request: web.Request) -> web.StreamResponse:
    try:
        parse_range(dict(request.query))
    except RangeError as exc:
        return bad_request(str(exc))
    return await export_csv(request)


@routes.get("/api/groups")
@needs(Role.VIEWER)
async def groups(request: web.Request) -> web.StreamResponse:
    try:
        window, last = parse_health(dict(request.query))
    except RangeError as exc:
        return bad_request(str(exc))
    rows = await health(request, window, request.query.get("sort", "trend"), last)
    return web.json_response({"window_days": window, "to": last.isoformat(), "groups": rows})


@routes.get("/api/accounts")
@needs(Role.ADMIN)
async def accounts(request: web.Request) -> web.StreamResponse:
    found = await request.app[ACCOUNTS].all()
    return web.json_response({"accounts": [
        {"name": a.name, "display": a.display, "role": a.role.name.lower()} for a in found]})


@routes.get("/api/audit")
@needs(Role.ADMIN)
async def audit(request: web.Request) -> web.StreamResponse:
    entries = await request.app[AUDIT].latest()
    return web.json_response({"entries": [
        {"at": e.at, "who": e.who, "action": e.action, "target": e.target, "diff": e.diff}
        for e in entries]})
