"""Saving an operator's edit: computed from the files as they are, committed as them, audited.

Every settings page (品牌信息, 常见问题, 活动规则, 群设置) saves the same way: refuse when the
deployment has no git history (a change that cannot be undone is not allowed), compute the
new files while holding the history lock (so no other save lands in between and is
overwritten), commit them as the operator, and record the change in the audit log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from console import history
from console.auth import account, needs
from console.history import HistoryError
from console.keys import AUDIT, REDIS, SETTINGS
from console.roles import Role
from console.trainingdata import Change, TeachError
from qunzhu.redisconn import text_of

Edit = Callable[[Path], tuple[Change, dict[str, Any]]]
FormEdit = Callable[..., tuple[Change, dict[str, Any]]]  # (root, values, **context)
# (request, values, *, diff=, error=, status=, seen=) → the page drawn again
Page = Callable[..., Awaitable[web.StreamResponse]]
MAX_FIELD = 2001  # characters kept of a submitted field (the forms refuse over 2000)
VERSION = "_version"  # the file's version when the form was drawn (hidden in every form)
STALE = "这一页打开以后，有人改过这个文件：请刷新页面，在最新的内容上重新修改（这次没有保存）"


def form_values(form: Mapping[str, Any]) -> dict[str, str]:
    """A submitted form's text fields (the last value of a repeated name: a ticked box)."""
    return {k: str(v)[:MAX_FIELD] for k, v in form.items()
            if isinstance(v, str) and k not in ("_csrf", VERSION)}


def version_of(root: Path, rel: Path) -> str:
    """The file's version: a form carries it, so a save never undoes a change it never saw."""
    try:
        return hashlib.sha256((root / rel).read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def seen_version(form: Mapping[str, Any]) -> str | None:
    """The version the operator's form was drawn from (None: an API call that gave none)."""
    seen = form.get(VERSION)
    return str(seen)[:64] if isinstance(seen, str) and seen else None


def check_version(root: Path, rel: Path, seen: str | None) -> None:
    """Refuse an edit computed from a version of the file that is no longer current."""
    if seen is not None and seen != version_of(root, rel):
        raise TeachError(STALE)


def preview_edit(root: Path, edit: Edit, *, guard: Path, seen: str | None) -> Change:
    """The edit computed for a preview (nothing written), refused like a save would be when
    `guard` is no longer the version `seen`."""
    check_version(root, guard, seen)
    return edit(root)[0]


async def commit(request: web.Request, edit: Edit, *, what: str, target: str,
                 guard: Path | None = None, seen: str | None = None) -> str:
    """Apply `edit` to the project and commit it as the signed-in operator; the sha.

    With `guard`, the edit is refused unless that file is still the version `seen`.
    TeachError (the edit is refused) and HistoryError (git failed; files restored) say why.
    """
    settings, who = request.app[SETTINGS], account(request)
    if not await history.available(settings.project_root):
        raise TeachError("这个部署没有 git 历史，不能保存（无法撤销的改动不允许保存）")
    async with history.lock():
        if guard is not None:
            check_version(settings.project_root, guard, seen)
        change, changed = edit(settings.project_root)
        sha = await history.save(settings.project_root, change.files, change.summary,
                                 name=who.display, login=who.name)
    await request.app[AUDIT].record(who.name, what, target, changed)
    return sha


def _anywhere(request: web.Request) -> None:
    """Every deployment may edit this file."""


def _nothing(request: web.Request) -> dict[str, Any]:
    """The edit needs nothing from the request."""
    return {}


def add_form_routes(routes: web.RouteTableDef, path: str, *, page: Page, edit: FormEdit,
                    guard: Path, what: str,
                    check: Callable[[web.Request], None] = _anywhere,
                    values_of: Callable[[Mapping[str, Any]], dict[str, str]] = form_values,
                    context: Callable[[web.Request], dict[str, Any]] = _nothing,
                    ) -> None:
    """A settings page's POST `<path>/preview` and `<path>/save`: the edit computed from the
    version the form showed, shown as a diff, or committed as the operator and audited; a
    refusal draws the page again with what was typed and why (`check` may refuse first;
    `context` gives the edit what it needs of the request as keyword arguments)."""

    @routes.post(f"{path}/preview")
    @needs(Role.EDITOR)
    async def preview(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        values, seen = values_of(form), seen_version(form)
        root = request.app[SETTINGS].project_root
        try:
            check(request)
            extra = context(request)
            change = preview_edit(root, lambda root: edit(root, values, **extra), guard=guard,
                                  seen=seen)
        except TeachError as exc:
            return await page(request, values, error=str(exc), status=400, seen=seen)
        return await page(request, values, diff=change.diff(root), seen=seen)

    @routes.post(f"{path}/save")
    @needs(Role.EDITOR)
    async def save(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        values, seen = values_of(form), seen_version(form)
        try:
            check(request)
            extra = context(request)
            sha = await commit(request, lambda root: edit(root, values, **extra), what=what,
                               target=str(guard), guard=guard, seen=seen)
        except (TeachError, HistoryError) as exc:
            return await page(request, values, error=str(exc), status=400, seen=seen)
        raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


# An edit adding an item whose id names state in Redis: (root, values, ids never to give).
AddEdit = Callable[[Path, dict[str, str], Collection[str]], tuple[Change, dict[str, Any]]]


class NewIds:
    """Ids the console gave to new items (coupons, campaigns), kept in a Redis set: an id names
    the item's state in Redis (stock, claims, posts), so none is ever given twice — not after
    an undo, not from an old confirm form sent again."""

    def __init__(self, request: web.Request, key: str, label: str) -> None:
        self._r = request.app[REDIS]
        self._key = key
        self._label = label  # the audit entry that names the new id

    async def given(self) -> set[str]:
        """Every id given so far."""
        return {text_of(i) for i in await self._r.smembers(self._key)}

    async def preview(self, root: Path, add: AddEdit, values: dict[str, str]
                      ) -> tuple[Change, str]:
        """The edit as a preview would show it, and the id it would give (not kept yet)."""
        change, added = add(root, values, await self.given())
        return change, str(added[self._label][1])

    async def reserve(self, root: Path, add: AddEdit, values: dict[str, str]) -> Edit:
        """Pick the id and keep it before anything is saved (a save whose id Redis cannot keep
        is no save); the edit that then uses exactly that id."""
        given = await self.given()
        _change, added = add(root, values, given)
        ident = str(added[self._label][1])
        await self._r.sadd(self._key, ident)
        chosen = {**values, "id": ident}
        return lambda root: add(root, chosen, given - {ident})
