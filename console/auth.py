"""Who is asking, and may they: sessions or API tokens, roles per route, CSRF on every form.

A route states the weakest role it needs with `@needs(Role.…)`; a route without it is refused
to everyone but the public ones (login, static files, health). Browsers authenticate with a
session cookie and must send the session's CSRF token with every unsafe request; scripts
authenticate with `Authorization: Bearer <token>` and carry no cookie, so CSRF cannot reach
them.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import get_session

from console.accounts import Account
from console.keys import ACCOUNTS
from console.roles import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROLE_ATTR = "__qz_role__"
PUBLIC_PREFIXES = ("/static/", "/login", "/healthz")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ACCOUNT = "account"  # request key of the signed-in account
VIA_TOKEN = "via_token"


def needs(role: Role) -> Callable[[Handler], Handler]:
    """Mark a handler with the weakest role that may use it."""
    def mark(handler: Handler) -> Handler:
        setattr(handler, ROLE_ATTR, role)
        return handler
    return mark


def account(request: web.Request) -> Account:
    """The signed-in account (routes behind `needs` always have one)."""
    found: Account = request[ACCOUNT]
    return found


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, made on first use."""
    session = await get_session(request)
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _error(status: int, message: str) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        401: web.HTTPUnauthorized, 403: web.HTTPForbidden}
    return kinds[status](text=message)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, check the route's role, and check CSRF on unsafe browser requests."""
    if request.path.startswith(PUBLIC_PREFIXES) or request.path == "/favicon.ico":
        return await handler(request)
    accounts = request.app[ACCOUNTS]
    header = request.headers.get("Authorization", "")
    who: Account | None = None
    if header.startswith("Bearer "):
        who = await accounts.by_token(header[7:].strip())
        request[VIA_TOKEN] = True
        if who is None:
            return web.json_response({"error": "API 令牌无效或已撤销"}, status=401)
    else:
        session = await get_session(request)
        name = session.get("user")
        who = await accounts.get(str(name)) if name else None
        if who is not None and session.get("epoch") != who.epoch:
            who = None  # the account was re-created, or its password changed elsewhere
        if who is None:
            if _wants_json(request):
                return web.json_response({"error": "请先登录，或在 Authorization 里带上 API 令牌"},
                                         status=401)
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
        if request.method in UNSAFE and not await _csrf_ok(request):
            raise _error(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
    request[ACCOUNT] = who
    route_handler: Any = getattr(request.match_info, "handler", None)
    role = getattr(route_handler, ROLE_ATTR, None)
    if role is None:
        if isinstance(request.match_info.http_exception, web.HTTPException):
            return await handler(request)  # 404/405: let aiohttp answer
        raise _error(403, "这个页面没有开放")
    if who.role < role:
        if _wants_json(request):
            return web.json_response({"error": f"需要“{role.label}”及以上权限"}, status=403)
        raise _error(403, f"需要“{role.label}”及以上权限，请联系管理员")
    return await handler(request)


async def _csrf_ok(request: web.Request) -> bool:
    session = await get_session(request)
    expected = str(session.get("csrf") or "")
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded",
                                             "multipart/form-data"):
        sent = str((await request.post()).get("_csrf", ""))
    return bool(expected) and hmac.compare_digest(expected, sent)
