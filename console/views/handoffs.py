"""转人工: staff see who asked for a person, with the conversation; claim, note, close.

Any signed-in role may work tickets (staff get the weakest account). The wait until a ticket
is first claimed is counted (HANDOFF_TAKEN) for the dashboard's time to first response.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from aiohttp import web

from console.auth import account, needs
from console.keys import AUDIT, REDIS, SETTINGS
from console.roles import Role
from console.views.dashboard import names, page
from qunzhu import events, metrics, tickets
from qunzhu.events import Event, Kind
from qunzhu.names import NameBook
from qunzhu.tickets import Ticket

routes = web.RouteTableDef()
STATES = {"open": "等待中", "taken": "处理中", "closed": "已关闭"}


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, metrics.TZ).strftime("%m-%d %H:%M") if at else ""


async def shown(request: web.Request, found: list[Ticket]) -> list[dict[str, Any]]:
    """Tickets as staff read them: names, waiting time, the conversation."""
    settings, r = request.app[SETTINGS], request.app[REDIS]
    book = NameBook(r, settings.brand)
    group_names = names(request)
    now = time.time()
    out = []
    for t in found:
        member = await book.member(t.group, t.user) if t.user else ""
        group = group_names.get(t.group) or (await book.group(t.group) if t.group else "私聊")
        out.append({
            "id": t.id, "state": t.state, "state_label": STATES.get(t.state, t.state),
            "member": member, "group": group, "text": t.text, "note": t.note,
            "history": [{"who": member if h.get("from") == "member" else "机器人",
                         "text": str(h.get("text", ""))} for h in t.history[-6:]],
            "opened": _when(t.opened_at), "waiting_min": int((now - t.opened_at) // 60),
            "taken_by": t.taken_by, "taken": _when(t.taken_at), "closed": _when(t.closed_at)})
    return out


@routes.get("/handoffs")
@needs(Role.VIEWER)
async def handoffs_route(request: web.Request) -> web.StreamResponse:
    return await handoffs_page(request)


async def handoffs_page(request: web.Request, notice: str = "", error: str = "",
                        status: int = 200) -> web.StreamResponse:
    r, brand = request.app[REDIS], request.app[SETTINGS].brand
    return await page(request, "handoffs.html", status=status,
                      open=await shown(request, await tickets.listed(r, brand)),
                      closed=await shown(request, await tickets.listed(
                          r, brand, closed=True, limit=20)),
                      notice=notice, error=error)


async def _emit(request: web.Request, kind: Kind, ticket: str,
                data: dict[str, events.Value]) -> None:
    """Count what staff did with a ticket, in the member's group (for the dashboard)."""
    r, brand = request.app[REDIS], request.app[SETTINGS].brand
    found = await tickets.get(r, brand, ticket)
    await events.emit(r, brand, Event(
        kind, f"{kind.value}:{ticket}", found.group if found else "",
        found.user if found else "", time.time(), {"ticket": ticket, **data}))


async def _claim(request: web.Request, ticket: str) -> tuple[int, str]:
    r, brand, who = request.app[REDIS], request.app[SETTINGS].brand, account(request)
    done = await tickets.claim(r, brand, ticket, who.name, time.time())
    if done["status"] == "taken":
        await _emit(request, Kind.HANDOFF_TAKEN, ticket,
                    {"wait_s": int(done.get("wait_s") or 0)})
        await request.app[AUDIT].record(who.name, "认领转人工", ticket)
        return 200, "已认领，请尽快联系这位成员"
    return {"already": (409, f"已经被 {done.get('by', '')} 认领了"),
            "closed": (409, "这个请求已经关闭了"),
            "unknown": (404, "没有这个请求")}[str(done["status"])]


async def _close(request: web.Request, ticket: str) -> tuple[int, str]:
    r, brand, who = request.app[REDIS], request.app[SETTINGS].brand, account(request)
    state = await tickets.close(r, brand, ticket, who.name, time.time())
    if state == "closed":
        await _emit(request, Kind.HANDOFF_CLOSED, ticket, {})
        await request.app[AUDIT].record(who.name, "关闭转人工", ticket)
        return 200, "已关闭"
    return (409, "这个请求已经关闭了") if state == "already" else (404, "没有这个请求")


def _said(request: web.Request, status: int, message: str) -> Awaitable[web.StreamResponse]:
    """The list again, with what the action did (or why not) on top."""
    ok = status == 200
    return handoffs_page(request, notice=message if ok else "", error="" if ok else message,
                         status=status)


@routes.post("/handoffs/{ticket}/claim")
@needs(Role.VIEWER)
async def claim_form(request: web.Request) -> web.StreamResponse:
    return await _said(request, *await _claim(request, request.match_info["ticket"]))


@routes.post("/handoffs/{ticket}/note")
@needs(Role.VIEWER)
async def note_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    who, ticket = account(request), request.match_info["ticket"]
    ok = await tickets.note(request.app[REDIS], request.app[SETTINGS].brand, ticket, who.name,
                            str(form.get("note", "")))
    if ok:
        await request.app[AUDIT].record(who.name, "备注转人工", ticket)
    return await _said(request, *((200, "备注已保存") if ok else (404, "没有这个请求")))


@routes.post("/handoffs/{ticket}/close")
@needs(Role.VIEWER)
async def close_form(request: web.Request) -> web.StreamResponse:
    return await _said(request, *await _close(request, request.match_info["ticket"]))


@routes.get("/api/handoffs")
@needs(Role.VIEWER)
async def handoffs_api(request: web.Request) -> web.StreamResponse:
    r, brand = request.app[REDIS], request.app[SETTINGS].brand
    return web.json_response({
        "open": await shown(request, await tickets.listed(r, brand)),
        "closed": await shown(request, await tickets.listed(r, brand, closed=True, limit=50))})


@routes.post("/api/handoffs/{ticket}/claim")
@needs(Role.VIEWER)
async def claim_api(request: web.Request) -> web.StreamResponse:
    return _json(*await _claim(request, request.match_info["ticket"]))


def _json(status: int, message: str) -> web.Response:
    return web.json_response({"message" if status == 200 else "error": message}, status=status)


@routes.post("/api/handoffs/{ticket}/close")
@needs(Role.VIEWER)
async def close_api(request: web.Request) -> web.StreamResponse:
    return _json(*await _close(request, request.match_info["ticket"]))
