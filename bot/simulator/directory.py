"""WeCom's address-book APIs as the simulator serves them: user/get and externalcontact/get.

The bridge names members from these (and from groupchat/get), so the sandbox exercises the
same lookups as production, with the sandbox's names.
"""

from __future__ import annotations

from aiohttp import web

from bot.simulator.keys import STATE
from bot.simulator.state import SimMember, SimState


def _errcode(state: SimState, code: int, msg: str) -> web.Response:
    state.count_error(code)
    return web.json_response({"errcode": code, "errmsg": msg})


def _find(state: SimState, userid: str) -> SimMember | None:
    for group in state.groups.values():
        if userid in group.members:
            return group.members[userid]
    return None


def _lookup(request: web.Request, query: str, kind: int, api: str,
            missing: tuple[int, str]) -> SimMember | web.Response:
    """The member an address-book call asks about, or WeCom's error answer."""
    state = request.app[STATE]
    if request.query.get("access_token") != state.access_token:
        return _errcode(state, 42001, "access_token expired")
    member = _find(state, request.query.get(query, ""))
    if member is None or member.type != kind:
        return _errcode(state, *missing)
    state.directory_lookups.append((api, member.userid))
    return member


async def user_get(request: web.Request) -> web.Response:
    """GET /cgi-bin/user/get?access_token&userid: an employee (internal member)."""
    found = _lookup(request, "userid", 1, "user/get", (60111, "userid not found"))
    if isinstance(found, web.Response):
        return found
    return web.json_response({"errcode": 0, "errmsg": "ok", "userid": found.userid,
                              "name": found.name})


async def external_contact_get(request: web.Request) -> web.Response:
    """GET /cgi-bin/externalcontact/get?access_token&external_userid: an external contact."""
    found = _lookup(request, "external_userid", 2, "externalcontact/get",
                    (84061, "not external contact"))
    if isinstance(found, web.Response):
        return found
    return web.json_response({"errcode": 0, "errmsg": "ok", "external_contact": {
        "external_userid": found.userid, "name": found.name, "type": 1}})


def add_routes(app: web.Application) -> None:
    """Mount the address-book APIs."""
    app.router.add_get("/cgi-bin/user/get", user_get)
    app.router.add_get("/cgi-bin/externalcontact/get", external_contact_get)
