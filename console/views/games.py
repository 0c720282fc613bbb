"""活动规则: game rules edited in a form, previewed, saved as a commit, live in a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from console import gamerules
from console.auth import needs
from console.history import HistoryError
from console.keys import SETTINGS
from console.roles import Role
from console.trainingdata import Change, TeachError
from console.views.dashboard import page
from console.views.saving import commit, form_values

routes = web.RouteTableDef()
Edit = Callable[[Path, dict[str, str]], tuple[Change, dict[str, list[str]]]]


async def _page(request: web.Request, form: gamerules.Form, *, diff: str = "",
                error: str = "", new: dict[str, str] | None = None, new_diff: str = "",
                new_error: str = "", status: int = 200) -> web.StreamResponse:
    return await page(request, "games.html", status=status, form=form, diff=diff, error=error,
                      new_fields=gamerules.NEW_COUPON, new=new or {}, new_diff=new_diff,
                      new_error=new_error)


async def _save(request: web.Request, edit: Edit, values: dict[str, str], what: str) -> str:
    """Commit the edit as the operator (TeachError/HistoryError say why not); its sha."""
    return await commit(request, lambda root: edit(root, values), what=what,
                        target=str(gamerules.GAMES_FILE))


@routes.get("/games")
@needs(Role.VIEWER)
async def games_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, gamerules.current(request.app[SETTINGS].project_root))


@routes.post("/games/preview")
@needs(Role.EDITOR)
async def preview(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        change, _changed = gamerules.edit(root, values)
    except TeachError as exc:
        return await _page(request, gamerules.form_for(root, values), error=str(exc),
                           status=400)
    return await _page(request, gamerules.form_for(root, values), diff=change.diff(root))


@routes.post("/games/save")
@needs(Role.EDITOR)
async def save(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    try:
        sha = await _save(request, gamerules.edit, values, "修改活动规则")
    except (TeachError, HistoryError) as exc:
        root = request.app[SETTINGS].project_root
        return await _page(request, gamerules.form_for(root, values), error=str(exc),
                           status=400)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


@routes.post("/games/coupons/preview")
@needs(Role.EDITOR)
async def coupon_preview(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        change, _added = gamerules.add_coupon(root, values)
    except TeachError as exc:
        return await _page(request, gamerules.current(root), new=values, new_error=str(exc),
                           status=400)
    return await _page(request, gamerules.current(root), new=values,
                       new_diff=change.diff(root))


@routes.post("/games/coupons/save")
@needs(Role.EDITOR)
async def coupon_save(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    try:
        sha = await _save(request, gamerules.add_coupon, values, "新增优惠券")
    except (TeachError, HistoryError) as exc:
        root = request.app[SETTINGS].project_root
        return await _page(request, gamerules.current(root), new=values, new_error=str(exc),
                           status=400)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


# ---------------------------------------------------------------------- the API
def _json(form: gamerules.Form) -> dict[str, Any]:
    return {"sections": [{"title": s.title, "note": s.note,
                          "fields": [{"key": f.key, "label": f.label, "kind": f.kind,
                                      "optional": f.optional, "value": form.values[f.key]}
                                     for f in s.fields]} for s in form.sections]}


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = await request.json()
    except ValueError:
        raise TeachError("请求体应为 JSON") from None
    if not isinstance(doc, dict):
        raise TeachError("请求体应为 JSON 对象")
    return doc


async def _api_edit(request: web.Request, edit: Edit, what: str) -> web.StreamResponse:
    """{"values": {key: text}, "dry_run": bool} → the diff, or the commit."""
    root = request.app[SETTINGS].project_root
    try:
        doc = await _body(request)
        raw = doc.get("values")
        if not isinstance(raw, dict):
            raise TeachError("values 应为 {字段: 文字} 的对象")
        values = {str(k): "" if v is None else str(v) for k, v in raw.items()}
        if doc.get("dry_run"):
            change, changed = edit(root, values)
            return web.json_response({"summary": change.summary, "changed": changed,
                                      "diff": change.diff(root), "commit": None})
        sha = await _save(request, edit, values, what)
    except (TeachError, HistoryError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"commit": sha})


@routes.get("/api/games")
@needs(Role.VIEWER)
async def games_api(request: web.Request) -> web.StreamResponse:
    return web.json_response(_json(gamerules.current(request.app[SETTINGS].project_root)))


@routes.post("/api/games")
@needs(Role.EDITOR)
async def games_edit_api(request: web.Request) -> web.StreamResponse:
    return await _api_edit(request, gamerules.edit, "修改活动规则")


@routes.post("/api/games/coupons")
@needs(Role.EDITOR)
async def coupon_api(request: web.Request) -> web.StreamResponse:
    return await _api_edit(request, gamerules.add_coupon, "新增优惠券")
