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


async def user_get(request: web.Request) -> web.Response:
    """GET /cgi-bin/user/get?access_token&userid: an employee (internal member)."""
    state = request.app[STATE]
    if request.query.get("access_token") != state.access_token:
        return _errcode(state, 42001, "access_token expired")
    member = _find(state, request.query.get("userid", ""))
    if member is None or member.type != 1:
        return _errcode(state, 60111, "userid not found")
    state.directory_lookups.append(("user/get", member.userid))
    return web.json_response({"errcode": 0, "errmsg": "ok", "userid": member.userid,
                              "name": member.name})


async def external_contact_get(request: web.Request) -> web.Response:
    """GET /cgi-bin/externalcontact/get?access_token&external_userid: an external contact."""
    state = request.app[STATE]
    if request.query.get("access_token") != state.access_token:
        return _errcode(state, 42001, "access_token expired")
    member = _find(state, request.query.get("external_userid", ""))
    if member is None or member.type != 2:
        return _errcode(state, 84061, "not external contact")
    state.directory_lookups.append(("externalcontact/get", member.userid))
    return web.json_response({"errcode": 0, "errmsg": "ok", "external_contact": {
        "external_userid": member.userid, "name": member.name, "type": 1}})


def add_routes(app: web.Application) -> None:
    """Mount the address-book APIs."""
    app.router.add_get("/cgi-bin/user/get", user_get)
    app.router.add_get("/cgi-bin/externalcontact/get", external_contact_get)
