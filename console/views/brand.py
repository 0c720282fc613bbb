"""品牌信息: the facts answers quote, edited in a form, previewed, saved as a commit, live."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console import brandfacts
from console.auth import needs
from console.keys import SETTINGS
from console.roles import Role
from console.views.dashboard import page
from console.views.saving import (
    add_form_routes,
    form_values,
    version_of,
)

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


add_form_routes(routes, "/brand", page=_page, edit=brandfacts.edit,
                guard=brandfacts.BRAND_FILE, what="修改品牌信息", values_of=_values)
