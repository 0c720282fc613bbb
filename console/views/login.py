"""Signing in and out: throttled, a fresh session on every sign-in, CSRF on the form too."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session

from console.auth import csrf_token, needs
from console.keys import ACCOUNTS, AUDIT, THROTTLE
from console.roles import Role

routes = web.RouteTableDef()


def safe_next(target: str) -> str:
    """Only a path on this console after signing in: never //elsewhere, a full URL, or one
    that becomes either once browsers or URL libraries drop tabs, newlines or backslashes."""
    if any(ch in target for ch in "\\\t\r\n ") or any(ord(ch) < 32 for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or \
            parts.path.startswith("//"):
        return "/"
    return target


def client_address(request: web.Request) -> str:
    return request.remote or "?"


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template("login.html", request, {
        "csrf": await csrf_token(request), "next": safe_next(request.query.get("next", "/")),
        "error": "", "name": ""})


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    session = await get_session(request)
    expected = str(session.get("csrf") or "")
    if not expected or str(form.get("_csrf", "")) != expected:
        return await _again(request, name, target, "页面已过期，请重新登录", 403)
    throttle = request.app[THROTTLE]
    address = client_address(request)
    wait = await throttle.attempt(name, address)  # counted before the check: no parallel race
    if wait:
        return await _again(request, name, target,
                            f"尝试次数太多了，请 {max(1, wait // 60)} 分钟后再试", 429)
    account = await request.app[ACCOUNTS].verify(name, password)
    if account is None:
        return await _again(request, name, target, "登录名或密码不对", 401)
    await throttle.succeeded(name, address)
    fresh = await new_session(request)  # a new session id: a planted cookie is worthless
    fresh["user"] = account.name
    fresh["epoch"] = account.epoch  # a re-created account or a new password ends this one
    await request.app[AUDIT].record(account.name, "登录", account.name)
    raise web.HTTPSeeOther(target)


async def _again(request: web.Request, name: str, target: str, error: str,
                 status: int) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template("login.html", request, {
        "csrf": await csrf_token(request), "next": target, "error": error, "name": name})
    response.set_status(status)
    return response


@routes.post("/logout")
@needs(Role.VIEWER)
async def logout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/login")
