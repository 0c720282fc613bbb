"""核销: the clerk's form, and `POST /api/coupons/{code}/redeem` for a POS.

Every role may redeem (a store's clerk gets the weakest account, 查看, or its POS a token);
each redemption is in the audit log.
"""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from console.auth import account, needs
from console.keys import AUDIT, REDIS, SETTINGS
from console.redemption import redeem, stores
from console.roles import Role
from console.views.dashboard import page

routes = web.RouteTableDef()


async def _redeem(request: web.Request, code: str, store: str, key: str
                  ) -> tuple[int, bool, str, dict[str, object]]:
    who = account(request)
    answer, done = await redeem(request.app[REDIS], request.app[SETTINGS].brand, code, store,
                                clerk=who.name, key=key)
    if done is not None and done.status == "redeemed" and not done.again:
        await request.app[AUDIT].record(who.name, "核销", done.code, {"store": [None, store]})
    return answer.http, answer.ok, answer.message, answer.body


@routes.get("/redeem")
@needs(Role.VIEWER)
async def redeem_page(request: web.Request) -> web.StreamResponse:
    return await page(request, "redeem.html", stores=stores(), result=None, store="",
                      request_id=secrets.token_hex(8))


@routes.post("/redeem")
@needs(Role.VIEWER)
async def redeem_form(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    store = str(form.get("store", ""))
    status, ok, message, body = await _redeem(
        request, str(form.get("code", ""))[:64], store, str(form.get("request_id", ""))[:64])
    return await page(request, "redeem.html", status=status, stores=stores(), store=store,
                      result={"ok": ok, "message": message, **body},
                      request_id=secrets.token_hex(8))


@routes.post("/api/coupons/{code}/redeem")
@needs(Role.VIEWER)
async def redeem_api(request: web.Request) -> web.StreamResponse:
    """Body {"store": "<store id>"}; `Idempotency-Key` makes a retried request safe."""
    try:
        doc = await request.json() if request.can_read_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "请求体应为 JSON，例如 {\"store\": \"guomao\"}"},
                                 status=400)
    if not isinstance(doc, dict):
        return web.json_response({"error": "请求体应为 JSON 对象"}, status=400)
    key = request.headers.get("Idempotency-Key", "")[:64]
    status, _ok, _message, body = await _redeem(
        request, request.match_info["code"][:64], str(doc.get("store", "")), key)
    return web.json_response(body, status=status)
