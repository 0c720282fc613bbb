"""活动规则: game rules edited in a form, previewed, saved as a commit, live in a second."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from console import gamerules, yamlform
from console.auth import needs
from console.history import HistoryError
from console.keys import REDIS, SETTINGS
from console.roles import Role
from console.trainingdata import Change, TeachError
from console.views.dashboard import page
from console.views.saving import (
    add_form_routes,
    check_version,
    commit,
    form_values,
    version_of,
)
from qunzhu.redisconn import text_of

routes = web.RouteTableDef()
Edit = Callable[[Path, dict[str, str]], tuple[Change, dict[str, list[str]]]]


async def _page(request: web.Request, values: dict[str, str] | None = None, *,
                diff: str = "", error: str = "", new: dict[str, str] | None = None,
                new_diff: str = "", new_error: str = "", status: int = 200,
                seen: str | None = None) -> web.StreamResponse:
    """The page: the form as the file is now (with what was typed), or why it cannot be."""
    root = request.app[SETTINGS].project_root
    try:
        form = gamerules.form_for(root, values or {})
    except TeachError as exc:
        form, error, status = yamlform.Form((), {}), str(exc), max(status, 409)
    return await page(request, "games.html", status=status, form=form, diff=diff, error=error,
                      new_fields=gamerules.NEW_COUPON, new=new or {}, new_diff=new_diff,
                      new_error=new_error,
                      version=seen or version_of(root, gamerules.GAMES_FILE))


async def _save(request: web.Request, edit: Edit, values: dict[str, str], what: str,
                seen: str | None = None) -> str:
    """Commit the edit as the operator (TeachError/HistoryError say why not); its sha."""
    return await commit(request, lambda root: edit(root, values), what=what,
                        target=str(gamerules.GAMES_FILE), guard=gamerules.GAMES_FILE,
                        seen=seen)


@routes.get("/games")
@needs(Role.VIEWER)
async def games_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


add_form_routes(routes, "/games", page=_page, edit=gamerules.edit,
                guard=gamerules.GAMES_FILE, what="修改活动规则")


@routes.post("/games/coupons/preview")
@needs(Role.EDITOR)
async def coupon_preview(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        change, added = (await _coupon_adder(request, {}))(root, values)
    except TeachError as exc:
        return await _page(request, new=values, new_error=str(exc), status=400)
    # The id shown in the diff is the id saved: the confirm form carries it.
    values["id"] = added[gamerules.NEW_ID][1]
    return await _page(request, new=values, new_diff=change.diff(root))


@routes.post("/games/coupons/save")
@needs(Role.EDITOR)
async def coupon_save(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    made: dict[str, str] = {}
    try:
        sha = await _save(request, await _coupon_adder(request, made), values, "新增优惠券")
    except (TeachError, HistoryError) as exc:
        return await _page(request, new=values, new_error=str(exc), status=400)
    await _remember(request, made)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


async def _coupon_adder(request: web.Request, made: dict[str, str]) -> Edit:
    """The new-coupon edit, never giving an id the console gave before; the id goes in `made`."""
    issued = {text_of(i) for i in await request.app[REDIS].smembers(
        gamerules.issued_key(request.app[SETTINGS].brand))}

    def edit(root: Path, values: dict[str, str]) -> tuple[Change, dict[str, list[str]]]:
        change, added = gamerules.add_coupon(root, values, issued)
        made["id"] = added[gamerules.NEW_ID][1]
        return change, added
    return edit


async def _remember(request: web.Request, made: dict[str, str]) -> None:
    """A saved coupon's id is never given again, not even after an undo: it names the
    coupon's stock and claims in Redis."""
    await request.app[REDIS].sadd(gamerules.issued_key(request.app[SETTINGS].brand), made["id"])


# ---------------------------------------------------------------------- the API
def _json(form: yamlform.Form) -> dict[str, Any]:
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


async def _api_edit(request: web.Request, edit: Edit, what: str,
                    saved: Callable[[], Awaitable[None]] | None = None) -> web.StreamResponse:
    """{"values": {key: text}, "dry_run": bool} → the diff, or the commit."""
    root = request.app[SETTINGS].project_root
    try:
        doc = await _body(request)
        raw = doc.get("values")
        if not isinstance(raw, dict):
            raise TeachError("values 应为 {字段: 文字} 的对象")
        values = {str(k): "" if v is None else str(v) for k, v in raw.items()}
        seen = str(doc["version"]) if doc.get("version") else None
        check_version(root, gamerules.GAMES_FILE, seen)
        if doc.get("dry_run"):
            change, changed = edit(root, values)
            return web.json_response({"summary": change.summary, "changed": changed,
                                      "diff": change.diff(root), "commit": None})
        sha = await _save(request, edit, values, what, seen)
    except (TeachError, HistoryError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if saved is not None:
        await saved()
    return web.json_response({"commit": sha})


@routes.get("/api/games")
@needs(Role.VIEWER)
async def games_api(request: web.Request) -> web.StreamResponse:
    root = request.app[SETTINGS].project_root
    try:
        form = gamerules.current(root)
    except TeachError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({**_json(form),
                              "version": version_of(root, gamerules.GAMES_FILE)})


@routes.post("/api/games")
@needs(Role.EDITOR)
async def games_edit_api(request: web.Request) -> web.StreamResponse:
    return await _api_edit(request, gamerules.edit, "修改活动规则")


@routes.post("/api/games/coupons")
@needs(Role.EDITOR)
async def coupon_api(request: web.Request) -> web.StreamResponse:
    made: dict[str, str] = {}
    return await _api_edit(request, await _coupon_adder(request, made), "新增优惠券",
                           saved=lambda: _remember(request, made))
