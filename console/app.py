"""The console's aiohttp application: pages, the JSON API, static files and its middlewares."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware

from console import keys
from console.accounts import Accounts
from console.audit import AuditLog
from console.auth import Handler, guard
from console.sessions import ConsoleSessionStorage
from console.settings import ConsoleSettings
from console.throttle import LoginThrottle
from console.views import (
    admin,
    answers,
    api,
    brand,
    campaigns,
    dashboard,
    games,
    groupsettings,
    handoffs,
    inbox,
    login,
    publish,
    redeem,
    teach,
)
from qunzhu.redisconn import REDIS_DOWN, AsyncRedis, async_client

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
ECHARTS = HERE / "node_modules" / "echarts" / "dist" / "echarts.min.js"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No framing, no sniffing, scripts only from the console itself (no CDN, no inline)."""
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def friendly_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refused or failed request gets a page in Chinese (JSON under /api/), never a trace."""
    api_call = request.path.startswith("/api/")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else {
            404: "没有这个页面", 405: "不支持这种请求方式"}.get(exc.status, "请求有误")
        if api_call:
            return web.json_response({"error": message}, status=exc.status)
        response = aiohttp_jinja2.render_template("error.html", request,
                                                  {"status": exc.status, "message": message})
        response.set_status(exc.status)
        return response
    except REDIS_DOWN as exc:
        log.warning("console: Redis %s", type(exc).__name__)
        message = "数据暂时读不到（Redis 连不上），请稍后刷新"
        if api_call:
            return web.json_response({"error": message}, status=503)
        response = aiohttp_jinja2.render_template("error.html", request,
                                                  {"status": 503, "message": message})
        response.set_status(503)
        return response


async def healthz(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def echarts(_request: web.Request) -> web.StreamResponse:
    """Apache ECharts from the npm registry (`make console-assets`), served from here."""
    if not ECHARTS.exists():
        raise web.HTTPNotFound(text="图表库未安装：请运行 make console-assets")
    return web.FileResponse(ECHARTS, headers={"Cache-Control": "public, max-age=86400"})


def create_app(settings: ConsoleSettings, client: AsyncRedis | None = None) -> web.Application:
    """The console; `client` is given by tests, else one is opened from the settings."""
    redis = client or async_client(settings.redis_url, cluster=settings.redis_cluster)
    storage = ConsoleSessionStorage(redis, max_age=settings.session_hours * 3600,
                                    secure=settings.secure_cookie)
    app = web.Application(middlewares=[security_headers, friendly_errors,
                                       session_middleware(storage), guard],
                          client_max_size=256 * 1024)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=jinja2.select_autoescape(default=True))
    app[keys.SETTINGS] = settings
    app[keys.REDIS] = redis
    app[keys.ACCOUNTS] = Accounts(redis)
    app[keys.AUDIT] = AuditLog(redis)
    app[keys.THROTTLE] = LoginThrottle(redis)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/vendor/echarts.min.js", echarts)
    app.router.add_static("/static/", HERE / "static")
    for table in (login.routes, dashboard.routes, admin.routes, api.routes, redeem.routes,
                  inbox.routes, teach.routes, handoffs.routes, brand.routes, publish.routes,
                  answers.routes, games.routes, groupsettings.routes, campaigns.routes):
        app.add_routes(table)

    async def close_redis(app: web.Application) -> AsyncIterator[None]:
        yield
        if client is None:
            await redis.close()

    app.cleanup_ctx.append(close_redis)
    return app


async def first_login(app: web.Application) -> str | None:
    """Create the first admin on an empty console; its generated password, once."""
    return await app[keys.ACCOUNTS].ensure_first_admin()
