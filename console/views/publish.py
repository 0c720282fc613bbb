"""发布: put what operators taught in front of members, safely, and take it back in one click.

The console only queues the job (qunzhu.models); the publisher process trains, tests and swaps
(qunzhu.tools.publisher) while this page shows its progress. Publishers and admins may publish
or roll back; everyone signed in may watch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from console import history
from console.auth import account, needs
from console.keys import AUDIT, REDIS, SETTINGS
from console.roles import Role
from console.views.dashboard import page
from qunzhu import metrics
from qunzhu.models import Busy, Job, ModelRegistry, Release

routes = web.RouteTableDef()
STATES = {"queued": "排队中", "running": "进行中", "live": "已上线", "refused": "没通过，未发布",
          "failed": "没完成，未发布"}


def _registry(request: web.Request) -> ModelRegistry:
    return ModelRegistry(request.app[REDIS], request.app[SETTINGS].brand)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, metrics.TZ).strftime("%Y-%m-%d %H:%M") if at else ""


def release_view(rel: Release | None) -> dict[str, Any] | None:
    """A release as the page and the API show it."""
    if rel is None:
        return None
    return {"id": rel.id, "by": rel.by, "at": _when(rel.at), "commit": rel.commit[:10],
            "summary": rel.summary,
            "intent_accuracy": rel.intent_accuracy, "faq_accuracy": rel.faq_accuracy}


def job_view(job: Job) -> dict[str, Any]:
    """A job as the page and the API show it."""
    return {"id": job.id, "kind": job.kind, "kind_label": "回滚" if job.kind == "rollback"
            else "发布", "by": job.by, "state": job.state,
            "state_label": STATES.get(job.state, job.state), "stage": job.stage,
            "stage_label": job.stage_label, "percent": job.percent, "message": job.message,
            "details": job.details, "created": _when(job.created),
            "finished": _when(job.finished), "release": job.release,
            "finished_yet": job.finished_yet}


async def overview(request: web.Request) -> dict[str, Any]:
    """What is live, what would be published, what is under way."""
    registry = _registry(request)
    live, previous = await registry.live(), await registry.previous()
    jobs = await registry.jobs(15)
    current = next((j for j in jobs if not j.finished_yet), None)
    root = request.app[SETTINGS].project_root
    pending = await history.unpublished(
        root, after_commit=live.commit if live else "",
        after_time=live.at if live is not None and not live.commit else 0.0)
    return {"live": release_view(live), "previous": release_view(previous),
            "current": job_view(current) if current else None,
            "jobs": [job_view(j) for j in jobs],
            "pending": [{"sha": c.sha, "author": c.author, "at": c.local_time,
                         "message": c.message} for c in pending]}


@routes.get("/publish")
@needs(Role.VIEWER)
async def publish_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _page(request: web.Request, *, notice: str = "", error: str = "",
                status: int = 200) -> web.StreamResponse:
    return await page(request, "publish.html", status=status, notice=notice, error=error,
                      **await overview(request))


async def _submit(request: web.Request, kind: str) -> tuple[int, str, Job | None]:
    who = account(request)
    registry = _registry(request)
    target = ""
    if kind == "rollback":
        found = await _target(request)
        if found is None:
            return 400, "请求格式不对：release 应是版本号（字符串）", None
        target = found
        if target and await registry.release(target) is None:
            return 404, "没有这个版本", None
        if not target and await registry.previous() is None:
            return 409, "还没有可以回滚到的上一个模型", None
    try:
        job = await registry.submit("rollback" if kind == "rollback" else "publish", who.name,
                                    target)
    except Busy:
        return 409, "已经有一次发布或回滚在进行，等它结束再试", None
    what = "回滚" if kind == "rollback" else "发布"
    await request.app[AUDIT].record(who.name, what, job.id,
                                    {"release": target} if target else None)
    return 202, f"{what}已开始，进度见下方", job


async def _target(request: web.Request) -> str | None:
    """The release a rollback names (form field or JSON `release`); "" = the previous one;
    None = a body that is not what the API takes."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("release", ""), str):
            return None
        return str(body.get("release", "")).strip()[:64]
    form = await request.post()
    return str(form.get("release", "")).strip()[:64]


async def _form(request: web.Request, kind: str) -> web.StreamResponse:
    """A button on the page: back to the page (its progress), or the page with why not."""
    status, message, _job = await _submit(request, kind)
    if status == 202:
        raise web.HTTPSeeOther("/publish")
    return await _page(request, error=message, status=status)


@routes.post("/publish")
@needs(Role.PUBLISHER)
async def publish_form(request: web.Request) -> web.StreamResponse:
    return await _form(request, "publish")


@routes.post("/publish/rollback")
@needs(Role.PUBLISHER)
async def rollback_form(request: web.Request) -> web.StreamResponse:
    return await _form(request, "rollback")


@routes.get("/api/publish")
@needs(Role.VIEWER)
async def publish_api(request: web.Request) -> web.StreamResponse:
    return web.json_response(await overview(request))


async def _submit_api(request: web.Request, kind: str) -> web.Response:
    status, message, job = await _submit(request, kind)
    if job is None:
        return web.json_response({"error": message}, status=status)
    return web.json_response({"message": message, "job": job_view(job)}, status=202)


@routes.post("/api/publish")
@needs(Role.PUBLISHER)
async def publish_start_api(request: web.Request) -> web.StreamResponse:
    return await _submit_api(request, "publish")


@routes.post("/api/publish/rollback")
@needs(Role.PUBLISHER)
async def rollback_api(request: web.Request) -> web.StreamResponse:
    return await _submit_api(request, "rollback")


@routes.get("/api/publish/jobs/{job}")
@needs(Role.VIEWER)
async def job_api(request: web.Request) -> web.StreamResponse:
    job_id = request.match_info["job"]
    job = await _registry(request).job(job_id) if len(job_id) <= 64 else None
    if job is None:
        return web.json_response({"error": "没有这次发布"}, status=404)
    return web.json_response(job_view(job))
