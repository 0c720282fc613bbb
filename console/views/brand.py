"""品牌信息: the facts answers quote, edited in a form, previewed, saved as a commit, live."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console import brandfacts
from console.auth import needs
from console.history import HistoryError
from console.keys import SETTINGS
from console.roles import Role
from console.trainingdata import TeachError
from console.views.dashboard import page
from console.views.saving import commit, form_values, preview_edit, seen_version, version_of

routes = web.RouteTableDef()


async def _page(request: web.Request, values: dict[str, str], *, diff: str = "",
                error: str = "", status: int = 200, seen: str | None = None
                ) -> web.StreamResponse:
    root = request.app[SETTINGS].project_root
    return await page(request, "brand.html", status=status, fields=brandfacts.FIELDS,
                      values=values, diff=diff, error=error,
                      version=seen or version_of(root, brandfacts.BRAND_FILE))


def _values(form: Any) -> dict[str, str]:
    keys = {f.key for f in brandfacts.FIELDS}
    return {k: v for k, v in form_values(form).items() if k in keys}


@routes.get("/brand")
@needs(Role.VIEWER)
async def brand_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, brandfacts.current(request.app[SETTINGS].project_root))


@routes.post("/brand/preview")
@needs(Role.EDITOR)
async def preview(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values, seen = _values(form), seen_version(form)
    root = request.app[SETTINGS].project_root
    try:
        change = preview_edit(root, lambda root: brandfacts.edit(root, values),
                              guard=brandfacts.BRAND_FILE, seen=seen)
    except TeachError as exc:
        return await _page(request, values, error=str(exc), status=400, seen=seen)
    return await _page(request, values, diff=change.diff(root), seen=seen)


@routes.post("/brand/save")
@needs(Role.EDITOR)
async def save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values, seen = _values(form), seen_version(form)
    try:
        sha = await commit(request, lambda root: brandfacts.edit(root, values),
                           what="修改品牌信息", target=str(brandfacts.BRAND_FILE),
                           guard=brandfacts.BRAND_FILE, seen=seen)
    except (TeachError, HistoryError) as exc:
        return await _page(request, values, error=str(exc), status=400, seen=seen)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")
