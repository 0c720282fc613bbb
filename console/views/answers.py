"""常见问题: each FAQ's answers edited in a form, previewed, saved as a commit, live.

The list and each FAQ's page are for everyone signed in; editors change the answer wordings
(console.answers writes them into domain.yml), see the diff, and save as themselves. The
action server reads domain.yml live, so members get the new wording within a second or two,
without retraining. Question wordings are shown, not edited: they are taught from 收件箱 and
reach members with the next 发布. The same edit is in the JSON API for scripts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web

from console import answers
from console.answers import Faq
from console.auth import needs
from console.history import HistoryError
from console.keys import SETTINGS
from console.roles import Role
from console.trainingdata import Change, TeachError
from console.views.dashboard import page
from console.views.saving import STALE, commit, seen_version

routes = web.RouteTableDef()
NEW_ROWS = 2  # empty boxes under the answers, for new wordings


def _root(request: web.Request) -> Path:
    return request.app[SETTINGS].project_root


def _key(request: web.Request) -> str:
    return request.match_info["key"][:64]


def _view(faq: Faq) -> dict[str, Any]:
    """One FAQ as the API shows it."""
    return {"key": faq.key, "title": faq.title, "questions": list(faq.questions),
            "answers": list(faq.answers), "version": _version(faq)}


async def _list(request: web.Request, *, error: str = "",
                status: int = 200) -> web.StreamResponse:
    try:
        found = answers.faqs(_root(request))
    except TeachError as exc:
        found, error = [], str(exc)
    return await page(request, "answers.html", status=status, faqs=found, short=answers.short,
                      error=error)


def _version(faq: Faq) -> str:
    """The answers' version: a save from a page drawn before someone else's edit of the
    same answers is refused instead of undoing it (other FAQs' edits do not matter)."""
    return hashlib.sha256("\n\x00".join(faq.answers).encode()).hexdigest()[:16]


def _check(root: Path, key: str, seen: str | None) -> None:
    faq = answers.find(root, key)
    if seen is not None and faq is not None and _version(faq) != seen:
        raise TeachError(STALE)


async def _page(request: web.Request, faq: Faq, rows: list[str], *, diff: str = "",
                error: str = "", status: int = 200, seen: str | None = None
                ) -> web.StreamResponse:
    return await page(request, "answer.html", status=status, faq=faq, rows=rows, diff=diff,
                      error=error, placeholders=answers.placeholder_help(),
                      new_rows=NEW_ROWS, version=seen or _version(faq))


def _submitted(form: Any) -> list[str]:
    return [str(a) for a in form.getall("answers", [])]


async def _form(request: web.Request, rows: list[str], *, diff: str = "", error: str = "",
                status: int = 200, seen: str | None = None) -> web.StreamResponse:
    """The FAQ's form with these rows (the FAQ list instead when the key itself is wrong)."""
    try:
        faq = answers.find(_root(request), _key(request))
    except TeachError as exc:
        faq, error = None, str(exc)
    if faq is None:
        return await _list(request, error=error or "没有这个常见问题", status=400)
    return await _page(request, faq, rows, diff=diff, error=error, status=status, seen=seen)


async def change_answers(request: web.Request, key: str, rows: list[str], *, save: bool,
                         seen: str | None = None) -> tuple[Change, str]:
    """Compute (and, on save, write, commit and audit) the edit; the commit's sha or "".
    With `seen`, refused when the answers are no longer the version the form showed."""
    if not save:
        _check(_root(request), key, seen)
        change, _changed = answers.edit(_root(request), key, rows)
        return change, ""
    made: list[Change] = []

    def edit(root: Path) -> tuple[Change, dict[str, Any]]:
        _check(root, key, seen)  # under the history lock, like the write
        change, changed = answers.edit(root, key, rows)
        made.append(change)
        return change, changed

    sha = await commit(request, edit, what="修改常见问题回答", target=f"faq/{key}")
    return made[0], sha


@routes.get("/answers")
@needs(Role.VIEWER)
async def answers_page(request: web.Request) -> web.StreamResponse:
    return await _list(request)


@routes.get("/answers/{key}")
@needs(Role.VIEWER)
async def answer_page(request: web.Request) -> web.StreamResponse:
    try:
        faq = answers.find(_root(request), _key(request))
    except TeachError as exc:
        return await _list(request, error=str(exc))
    if faq is None:
        raise web.HTTPNotFound(text="没有这个常见问题")
    return await _page(request, faq, [*faq.answers, *[""] * NEW_ROWS])


@routes.post("/answers/{key}/preview")
@needs(Role.EDITOR)
async def preview(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    rows, seen = _submitted(form), seen_version(form)
    try:
        change, _sha = await change_answers(request, _key(request), rows, save=False,
                                            seen=seen)
    except TeachError as exc:
        return await _form(request, rows, error=str(exc), status=400, seen=seen)
    return await _form(request, rows, diff=change.diff(_root(request)), seen=seen)


@routes.post("/answers/{key}/save")
@needs(Role.EDITOR)
async def save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    rows, seen = _submitted(form), seen_version(form)
    try:
        _change, sha = await change_answers(request, _key(request), rows, save=True,
                                            seen=seen)
    except (TeachError, HistoryError) as exc:
        return await _form(request, rows, error=str(exc), status=400, seen=seen)
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}&live=1")


# ------------------------------------------------------------------------------ JSON API
def _json_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


@routes.get("/api/answers")
@needs(Role.VIEWER)
async def answers_api(request: web.Request) -> web.StreamResponse:
    try:
        found = answers.faqs(_root(request))
    except TeachError as exc:
        return _json_error(str(exc), 409)
    return web.json_response({"faqs": [_view(f) for f in found],
                              "placeholders": answers.PLACEHOLDERS})


@routes.get("/api/answers/{key}")
@needs(Role.VIEWER)
async def answer_api(request: web.Request) -> web.StreamResponse:
    try:
        faq = answers.find(_root(request), _key(request))
    except TeachError as exc:
        return _json_error(str(exc), 409)
    if faq is None:
        return _json_error("没有这个常见问题", 404)
    return web.json_response(_view(faq))


@routes.post("/api/answers/{key}")
@needs(Role.EDITOR)
async def edit_api(request: web.Request) -> web.StreamResponse:
    """{"answers": [...], "dry_run": bool} → the new answers and the commit (or the diff)."""
    try:
        doc = await request.json()
    except ValueError:
        return _json_error("请求体应为 JSON")
    rows = doc.get("answers") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(a, str) for a in rows):
        return _json_error("回答：answers 应为一组文字（列表），例如 [\"我们 9 点开门\"]")
    key, dry_run = _key(request), bool(doc.get("dry_run"))
    try:
        seen = str(doc["version"]) if doc.get("version") else None
        change, sha = await change_answers(request, key, rows, save=not dry_run, seen=seen)
    except (TeachError, HistoryError) as exc:
        return _json_error(str(exc))
    return web.json_response({"key": key, "answers": answers.cleaned(rows),
                              "summary": change.summary, "commit": sha or None,
                              "diff": change.diff(_root(request)) if dry_run else None})
