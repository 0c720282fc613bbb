"""群设置: group names, welcomes and handoff mentions in a form, saved as a commit, live."""

from __future__ import annotations

from aiohttp import web

from console import groupsettings
from console.auth import needs
from console.keys import SETTINGS
from console.roles import Role
from console.trainingdata import TeachError
from console.views.dashboard import page
from console.views.saving import (
    add_form_routes,
    version_of,
)

routes = web.RouteTableDef()
PRIVATE_FILE = ("这个部署的群配置在单独的文件里（BRIDGE_GROUPS_FILE），运营台改不到它，"
                "请联系部署的同事修改")


async def _page(request: web.Request, values: dict[str, str] | None = None, *,
                diff: str = "", error: str = "", status: int = 200,
                seen: str | None = None) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    root = settings.project_root
    try:
        sections, current = groupsettings.current(root)
    except TeachError as exc:
        sections, current, error, status = (), {}, str(exc), max(status, 409)
    shown = {**current, **{k: v for k, v in (values or {}).items() if k in current}}
    can_edit = groupsettings.editable(root, settings.groups_file)
    return await page(request, "groupsettings.html", status=status, sections=sections,
                      values=shown, diff=diff, error=error, can_edit=can_edit,
                      private_note="" if can_edit else PRIVATE_FILE,
                      version=seen or version_of(root, groupsettings.GROUPS_FILE))


def _check_editable(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    if not groupsettings.editable(settings.project_root, settings.groups_file):
        raise TeachError(PRIVATE_FILE)


@routes.get("/group-settings")
@needs(Role.VIEWER)
async def settings_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


add_form_routes(routes, "/group-settings", page=_page, edit=groupsettings.edit,
                guard=groupsettings.GROUPS_FILE, what="修改群设置", check=_check_editable)
