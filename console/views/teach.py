"""Teaching from the inbox and the history of every change, with undo.

教机器人: a cluster's member wordings become examples of an intent, or a new FAQ with its
answer — previewed as a diff first, then written into data/nlu and domain.yml in the project's
own format and committed as the operator. 改动历史: every change to what operators own, its
diff, and 撤销 (a revert, itself a commit). Taught data reaches members with the next model.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console import history, trainingdata
from console.auth import account, needs
from console.history import HistoryError
from console.keys import AUDIT, SETTINGS
from console.roles import Role
from console.trainingdata import Change, TeachError
from console.views.dashboard import page
from qunzhu.config import load_brand
from qunzhu.yamlconfig import ConfigError

routes = web.RouteTableDef()


def placeholders() -> set[str]:
    """The brand facts an answer may quote as {placeholders}."""
    try:
        return set(load_brand().template_vars())
    except (ConfigError, OSError):
        return set()


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TeachError(f"{field}应为一组文字（列表），例如 [\"团购怎么买\"]")
    return value


def request_of(doc: dict[str, Any]) -> dict[str, Any]:
    """What to teach, from a form or a JSON body; TeachError when it is not shaped right."""
    answers = doc.get("answers")
    if answers is None and isinstance(doc.get("answer"), str):
        answers = [doc["answer"]]
    return {"mode": str(doc.get("mode", "")),
            "texts": _strings(doc.get("texts"), "例句")[:50],
            "intent": str(doc.get("intent", "")), "key": str(doc.get("key", "")),
            "answers": _strings(answers, "回答")[:5]}


def change_for(request: web.Request, ask: dict[str, Any]) -> Change:
    root = request.app[SETTINGS].project_root
    if ask["mode"] == "examples":
        return trainingdata.add_examples(root, ask["intent"], ask["texts"])
    if ask["mode"] == "faq":
        return trainingdata.add_faq(root, ask["key"], ask["texts"], ask["answers"],
                                    placeholders())
    raise TeachError("请选择：加到已有意图，或新建常见问题")


async def teach(request: web.Request, ask: dict[str, Any], *, save: bool
                ) -> tuple[Change, str]:
    """Compute (and, on save, write and commit) the change; the commit's sha or ""."""
    settings, who = request.app[SETTINGS], account(request)
    if save and not await history.available(settings.project_root):
        raise TeachError("这个部署没有 git 历史，不能保存（无法撤销的改动不允许保存）")
    async with history.lock():
        change = change_for(request, ask)
        if not save:
            return change, ""
        sha = await history.save(settings.project_root, change.files, change.summary,
                                 name=who.display, login=who.name)
    target = f"faq/{ask['key']}" if ask["mode"] == "faq" else ask["intent"]
    await request.app[AUDIT].record(who.name, "教机器人", target,
                                    {"commit": [None, sha[:10]],
                                     "examples": [None, len(ask["texts"])]})
    return change, sha


def _form(form: Any) -> dict[str, Any]:
    return request_of({"mode": form.get("mode", ""),
                       "texts": [str(t) for t in form.getall("texts", [])],
                       "intent": form.get("intent", ""), "key": form.get("key", ""),
                       "answers": [str(a) for a in form.getall("answers", []) if str(a).strip()]})


@routes.post("/teach/preview")
@needs(Role.EDITOR)
async def preview(request: web.Request) -> web.StreamResponse:
    ask = _form(await request.post())
    try:
        change, _sha = await teach(request, ask, save=False)
    except TeachError as exc:
        return await page(request, "teach.html", status=400, ask=ask, error=str(exc), diff="",
                          summary="")
    return await page(request, "teach.html", ask=ask, error="", summary=change.summary,
                      diff=change.diff(request.app[SETTINGS].project_root))


@routes.post("/teach/save")
@needs(Role.EDITOR)
async def save(request: web.Request) -> web.StreamResponse:
    ask = _form(await request.post())
    try:
        _change, sha = await teach(request, ask, save=True)
    except (TeachError, HistoryError) as exc:
        return await page(request, "teach.html", status=400, ask=ask, error=str(exc), diff="",
                          summary="")
    raise web.HTTPSeeOther(f"/history?saved={sha[:10]}")


@routes.post("/api/teach")
@needs(Role.EDITOR)
async def teach_api(request: web.Request) -> web.StreamResponse:
    """{"mode": "examples"|"faq", "texts": [...], "intent"|"key", "answers": [...],
    "dry_run": bool} → the diff (and the commit, unless dry_run)."""
    try:
        doc = await request.json()
    except ValueError:
        return web.json_response({"error": "请求体应为 JSON"}, status=400)
    if not isinstance(doc, dict):
        return web.json_response({"error": "请求体应为 JSON 对象"}, status=400)
    try:
        change, sha = await teach(request, request_of(doc), save=not doc.get("dry_run"))
    except (TeachError, HistoryError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"summary": change.summary, "commit": sha or None,
                              "diff": change.diff(request.app[SETTINGS].project_root)
                              if not sha else None})


# ---------------------------------------------------------------------- history
async def _history(request: web.Request) -> list[history.Commit]:
    root = request.app[SETTINGS].project_root
    if not await history.available(root):
        return []
    return await history.log(root)


@routes.get("/history")
@needs(Role.VIEWER)
async def history_page(request: web.Request) -> web.StreamResponse:
    return await page(request, "history.html", commits=await _history(request),
                      saved=request.query.get("saved", "")[:10],
                      live=request.query.get("live") == "1",
                      reverted=request.query.get("reverted", "")[:10], error="")


@routes.get("/history/{sha}")
@needs(Role.VIEWER)
async def change_page(request: web.Request) -> web.StreamResponse:
    sha = request.match_info["sha"]
    try:
        diff = await history.show(request.app[SETTINGS].project_root, sha)
    except HistoryError:
        raise web.HTTPNotFound(text="没有这次改动") from None
    commits = {c.sha: c for c in await _history(request)}
    return await page(request, "change.html", sha=sha, diff=diff, commit=commits.get(sha))


@routes.post("/history/{sha}/revert")
@needs(Role.EDITOR)
async def revert(request: web.Request) -> web.StreamResponse:
    who, sha = account(request), request.match_info["sha"]
    try:
        new = await history.revert(request.app[SETTINGS].project_root, sha, name=who.display,
                                   login=who.name)
    except HistoryError as exc:
        return await page(request, "history.html", status=409, commits=await _history(request),
                          saved="", live=False, reverted="", error=str(exc))
    await request.app[AUDIT].record(who.name, "撤销改动", sha[:10], {"commit": [None, new[:10]]})
    raise web.HTTPSeeOther(f"/history?reverted={sha[:10]}")


@routes.get("/api/history")
@needs(Role.VIEWER)
async def history_api(request: web.Request) -> web.StreamResponse:
    return web.json_response({"changes": [
        {"sha": c.sha, "author": c.author, "by_console": c.by_console, "at": c.at,
         "message": c.message} for c in await _history(request)]})
