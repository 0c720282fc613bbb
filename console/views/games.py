"""活动规则: game rules edited in a form, previewed, saved as a commit, live in a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from console import gamerules, yamlform
from console.auth import needs
from console.history import HistoryError
from console.keys import SETTINGS
from console.roles import Role
from console.trainingdata import Change, TeachError
from console.views.dashboard import page
from console.views.saving import (
    AddEdit,
    NewIds,
    add_form_routes,
    check_version,
    commit,
    form_values,
    version_of,
)

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


def _ids(request: web.Request) -> NewIds:
    return NewIds(request, gamerules.issued_key(request.app[SETTINGS].brand), gamerules.NEW_ID)


@routes.post("/games/coupons/preview")
@needs(Role.EDITOR)
async def coupon_preview(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        change, ident = await _ids(request).preview(root, gamerules.add_coupon, values)
    except TeachError as exc:
        return await _page(request, new=values, new_error=str(exc), status=400)
    # The id shown in the diff is the id saved: the confirm form carries it.
    return await _page(request, new={**values, "id": ident}, new_diff=change.diff(root))


@routes.post("/games/coupons/save")
@needs(Role.EDITOR)
async def coupon_save(request: web.Request) -> web.StreamResponse:
    values = form_values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        edit = await _ids(request).reserve(root, gamerules.add_coupon, values)
        sha = await commit(request, edit, what="新增优惠券", target=str(gamerules.GAMES_FILE),
                           guard=gamerules.GAMES_FILE)
    except (TeachError, HistoryError) as exc:
        return await _page(request, new=values, new_error=str(exc), status=400)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


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


async def _api_edit(request: web.Request, edit: Edit | None, what: str,
                    add: tuple[AddEdit, NewIds] | None = None) -> web.StreamResponse:
    """{"values": {key: text}, "dry_run": bool} → the diff, or the commit. `add`: the edit
    adds an item whose id is never one given before (kept in Redis before the save)."""
    root = request.app[SETTINGS].project_root
    try:
        doc = await _body(request)
        raw = doc.get("values")
        if not isinstance(raw, dict):
            raise TeachError("values 应为 {字段: 文字} 的对象")
        values = {str(k): "" if v is None else str(v) for k, v in raw.items()}
        seen = str(doc["version"]) if doc.get("version") else None
        check_version(root, gamerules.GAMES_FILE, seen)
        if add:  # the id is picked now and kept before the save, unless this is a dry run
            adding, ids = add
            given = await ids.given()
            reserved = None if doc.get("dry_run") else await ids.reserve(root, adding, values)

            def edit(root: Path, values: dict[str, str]
                     ) -> tuple[Change, dict[str, list[str]]]:
                return reserved(root) if reserved else adding(root, values, given)
        assert edit is not None, "an edit or an add"
        if doc.get("dry_run"):
            change, changed = edit(root, values)
            return web.json_response({"summary": change.summary, "changed": changed,
                                      "diff": change.diff(root), "commit": None})
        sha = await _save(request, edit, values, what, seen)
    except (TeachError, HistoryError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
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
    return await _api_edit(request, None, "新增优惠券", (gamerules.add_coupon, _ids(request)))
