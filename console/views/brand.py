"""品牌信息: the facts answers quote, edited in a form, previewed, saved as a commit, live."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console import brandfacts, history
from console.auth import account, needs
from console.history import HistoryError
from console.keys import AUDIT, SETTINGS
from console.roles import Role
from console.trainingdata import TeachError
from console.views.dashboard import page

routes = web.RouteTableDef()


async def _page(request: web.Request, values: dict[str, str], *, diff: str = "",
                error: str = "", status: int = 200) -> web.StreamResponse:
    return await page(request, "brand.html", status=status, fields=brandfacts.FIELDS,
                      values=values, diff=diff, error=error)


def _values(form: Any) -> dict[str, str]:
    return {f.key: str(form.get(f.key, ""))[:2000] for f in brandfacts.FIELDS if f.key in form}


@routes.get("/brand")
@needs(Role.VIEWER)
async def brand_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, brandfacts.current(request.app[SETTINGS].project_root))


@routes.post("/brand/preview")
@needs(Role.EDITOR)
async def preview(request: web.Request) -> web.StreamResponse:
    values = _values(await request.post())
    root = request.app[SETTINGS].project_root
    try:
        change, _changed = brandfacts.edit(root, values)
    except TeachError as exc:
        return await _page(request, values, error=str(exc), status=400)
    return await _page(request, values, diff=change.diff(root))


@routes.post("/brand/save")
@needs(Role.EDITOR)
async def save(request: web.Request) -> web.StreamResponse:
    values = _values(await request.post())
    settings, who = request.app[SETTINGS], account(request)
    try:
        if not await history.available(settings.project_root):
            raise TeachError("这个部署没有 git 历史，不能保存（无法撤销的改动不允许保存）")
        async with history.lock():
            change, changed = brandfacts.edit(settings.project_root, values)
            sha = await history.save(settings.project_root, change.files, change.summary,
                                     name=who.display, login=who.name)
    except (TeachError, HistoryError) as exc:
        return await _page(request, values, error=str(exc), status=400)
    await request.app[AUDIT].record(who.name, "修改品牌信息", "data/brand.yml", changed)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")
