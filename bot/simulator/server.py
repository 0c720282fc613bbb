"""The simulator's HTTP side: WeCom's webhook and APIs as documented, plus the sandbox page.

Webhook: 20 posts/min per key (sliding) → 45009, byte limits → 40058, unknown key → 93000,
`\\uXXXX` escapes → 40033, unknown msgtype → 40008. response_url: once, for an hour.
Faults (latency, 5xx, -1, 45009, timeouts, resets) are injected through /sim/faults.
Harnesses add members quietly (/sim/members) and read each message's answer (/sim/replies).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.simulator import customer, directory, simclock
from bot.simulator.callbacks import CallbackSender
from bot.simulator.keys import STATE
from bot.simulator.state import SimMember, SimState

STATIC = Path(__file__).resolve().parent / "static"
CALLBACKS = web.AppKey("callbacks", CallbackSender)
CONFIG = web.AppKey("config", dict)
ESCAPE = re.compile(rb"\\u[0-9a-fA-F]{4}")
LIMITS = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}
TYPES = ("text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card")


def _errcode(state: SimState, code: int, msg: str) -> web.Response:
    state.count_error(code)
    return web.json_response({"errcode": code, "errmsg": msg})


async def _inject(state: SimState, request: web.Request) -> web.StreamResponse | None:
    """Apply a configured fault; None means handle the call normally."""
    f = state.faults
    if f.latency_s:
        await asyncio.sleep(f.latency_s)
    kinds = [k for k in ("resets", "http_5xx", "errcode_busy", "errcode_45009", "timeouts")
             if getattr(f, k) > 0]
    kind = kinds[0] if kinds else None
    if kind is None and f.fault_rate and random.random() < f.fault_rate:
        kind = random.choice(("resets", "http_5xx", "errcode_busy", "errcode_45009"))
    elif kind is not None:
        setattr(f, kind, getattr(f, kind) - 1)
    if kind == "resets":
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("simulated reset")
    if kind == "http_5xx":
        return web.Response(status=502, text="bad gateway")
    if kind == "errcode_busy":
        return _errcode(state, -1, "system busy")
    if kind == "errcode_45009":
        return _errcode(state, 45009, "api freq out of limit")
    if kind == "timeouts":
        request["post_then_hang"] = True
    return None


async def webhook_send(request: web.Request) -> web.StreamResponse:
    """POST /cgi-bin/webhook/send?key=KEY."""
    state = request.app[STATE]
    fault = await _inject(state, request)
    if fault is not None:
        return fault
    group = state.group_by_key(request.query.get("key", ""))
    if group is None:
        return _errcode(state, 93000, "invalid webhook url")
    raw = await request.read()
    if ESCAPE.search(raw):
        return _errcode(state, 40033, "invalid charset: use raw UTF-8, not \\u escapes")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _errcode(state, 40035, "invalid json")
    msgtype = payload.get("msgtype") if isinstance(payload, dict) else None
    if msgtype not in TYPES or not isinstance(payload.get(msgtype), dict):
        return _errcode(state, 40008, "invalid message type")
    body: dict[str, Any] = payload[msgtype]
    if msgtype in LIMITS:
        content = body.get("content")
        if not isinstance(content, str) or not content:
            return _errcode(state, 40035, "content missing")
        if len(content.encode("utf-8")) > LIMITS[msgtype]:
            return _errcode(state, 40058, f"content exceeds {LIMITS[msgtype]} bytes")
    now = state.clock.now()
    times = [t for t in state.webhook_calls.get(group.webhook_key, [])
             if t > now - state.RATE_WINDOW_S]
    if len(times) >= state.RATE_LIMIT:
        state.webhook_calls[group.webhook_key] = times
        return _errcode(state, 45009, "api freq out of limit")
    times.append(now)
    state.webhook_calls[group.webhook_key] = times
    state.webhook_log.append((now, group.chatid, payload))
    _show(state, group.chatid, msgtype, body)
    if request.get("post_then_hang"):
        await asyncio.sleep(30)  # posted, but the client gives up first
    return web.json_response({"errcode": 0, "errmsg": "ok"})


def _show(state: SimState, chatid: str, msgtype: str, body: dict[str, Any]) -> None:
    """Put a robot post in the group's chat as WeCom would render it."""
    if msgtype in LIMITS:
        state.say(chatid, "bot", msgtype, str(body.get("content", "")),
                  mentions=list(body.get("mentioned_list") or []), via="webhook")
    else:
        state.say(chatid, "bot", msgtype, json.dumps(body, ensure_ascii=False)[:4000],
                  via="webhook")


async def upload_media(request: web.Request) -> web.Response:
    """POST /cgi-bin/webhook/upload_media?key=KEY&type=file|voice."""
    state = request.app[STATE]
    if state.group_by_key(request.query.get("key", "")) is None:
        return _errcode(state, 93000, "invalid webhook url")
    data = await request.read()
    if len(data) <= 5:
        return _errcode(state, 40006, "invalid media size")
    return web.json_response({"errcode": 0, "errmsg": "ok", "type": request.query.get("type"),
                              "media_id": "m_" + str(len(state.webhook_log)),
                              "created_at": str(int(state.clock.now()))})


async def gettoken(request: web.Request) -> web.Response:
    """GET /cgi-bin/gettoken?corpid&corpsecret."""
    state = request.app[STATE]
    if (request.query.get("corpid") != state.corp_id
            or request.query.get("corpsecret") != state.corp_secret):
        return _errcode(state, 40001, "invalid credential")
    return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": state.access_token,
                              "expires_in": 7200})


def _token_ok(request: web.Request) -> bool:
    return request.query.get("access_token") == request.app[STATE].access_token


async def groupchat_get(request: web.Request) -> web.Response:
    """POST /cgi-bin/externalcontact/groupchat/get: the member list."""
    state = request.app[STATE]
    if not _token_ok(request):
        return _errcode(state, 42001, "access_token expired")
    doc = await request.json()
    group = state.groups.get(str(doc.get("chat_id", "")))
    if group is None:
        return _errcode(state, 40050, "chat_id not exist")
    members = [{"userid": m.userid, "type": m.type, "join_time": m.join_time, "join_scene": 1,
                "name": m.name, "group_nickname": m.group_nickname}
               for m in group.members.values()]
    return web.json_response({"errcode": 0, "errmsg": "ok", "group_chat": {
        "chat_id": group.chatid, "name": group.name, "owner": group.owner,
        "member_list": members}})


async def message_send(request: web.Request) -> web.Response:
    """POST /cgi-bin/message/send: an app's 1:1 message."""
    state = request.app[STATE]
    if not _token_ok(request):
        return _errcode(state, 42001, "access_token expired")
    state.app_messages.append(await request.json())
    return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": str(len(state.app_messages))})


async def aibot_response(request: web.Request) -> web.Response:
    """POST /cgi-bin/aibot/response?response_code=…: the bot's reply, once, within an hour."""
    state = request.app[STATE]
    code = request.query.get("response_code", "")
    slot = state.response_urls.get(code)
    if slot is None:
        return _errcode(state, 40001, "invalid response_code")
    if slot.used or state.clock.now() - slot.created > state.RESPONSE_URL_TTL_S:
        slot.refused += int(slot.used)
        return _errcode(state, 40001, "response_url used or expired")
    try:
        payload = json.loads((await request.read()).decode("utf-8"))
        msgtype = payload["msgtype"]
        content = payload[msgtype].get("content", "") if msgtype == "markdown" else json.dumps(
            payload[msgtype], ensure_ascii=False)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return _errcode(state, 40035, "invalid json")
    slot.used = True
    slot.replied_at, slot.reply = state.clock.now(), str(content)
    state.say(slot.group, "bot", msgtype, str(content), via="response_url")
    state.replied(code)
    return web.json_response({"errcode": 0, "errmsg": "ok"})


# ------------------------------------------------------------------ sandbox page
async def page(request: web.Request) -> web.FileResponse:
    """The sandbox group."""
    return web.FileResponse(STATIC / "sandbox.html")


async def sandbox_config(request: web.Request) -> web.Response:
    """Groups, members and the bot's name for the page."""
    state = request.app[STATE]
    return web.json_response({
        "bot_name": request.app[CONFIG]["bot_name"],
        "groups": [{"chatid": g.chatid, "name": g.name,
                    "members": [{"userid": m.userid, "name": m.name}
                                for m in g.members.values()]}
                   for g in state.groups.values()
                   if g.chatid != "staff" and not g.owner],  # no robot in customer groups
        "staff": [{"chatid": g.chatid, "name": g.name}
                  for g in state.groups.values() if g.chatid == "staff"],
    })


async def sandbox_feed(request: web.Request) -> web.Response:
    """Chat lines after a sequence number (the page polls this)."""
    state = request.app[STATE]
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        after = 0
    items = [i.to_json() for i in state.feed if i.seq > after]
    names = {m.userid: m.name for g in state.groups.values() for m in g.members.values()}
    return web.json_response({"items": items, "names": names})


async def _fields(request: web.Request, *names: str) -> list[str] | None:
    """Named string fields of a JSON body, or None when the body lacks one."""
    try:
        doc = await request.json()
        return [str(doc[name]) for name in names]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


async def sandbox_say(request: web.Request) -> web.Response:
    """A person types in the sandbox as a member: show it and deliver the callback.

    Refusals (400) carry a short Chinese `error` the page shows as is. A callback that WeCom's
    retries could not get accepted (no HTTP 200 in four tries) adds an `error` line from that
    member to the feed, which the page shows under their message.
    """
    max_chars = 5000  # the page checks the same limit before sending
    state = request.app[STATE]
    fields = await _fields(request, "group", "userid", "text")
    if fields is None:
        return web.json_response({"error": "请求里要有 group、userid 和 text"}, status=400)
    group, userid, text = fields
    if group not in state.groups:
        return web.json_response({"error": "没有这个群"}, status=400)
    if userid not in state.groups[group].members:
        return web.json_response({"error": "先选一位群成员，再以 ta 的身份发言"}, status=400)
    if not text.strip():
        return web.json_response({"error": "消息是空的"}, status=400)
    if len(text) > max_chars:
        return web.json_response(
            {"error": f"消息太长了（{len(text)} 字），最多 {max_chars} 字，删掉一些再发吧"},
            status=400)
    config = request.app[CONFIG]
    state.say(group, userid, "text", text, via="member")
    mention = f"@{config['bot_name']}"
    if not text.lstrip().startswith((mention, "＠" + config["bot_name"])):
        return web.json_response({"delivered": False, "reason": "not addressed to the bot"})
    body = text.lstrip()[len(mention):].lstrip(" \u2005")

    copies_text = request.query.get("copies", "1")
    copies = int(copies_text) if copies_text.isdigit() else 1

    async def deliver() -> None:  # copies > 1: WeCom's retries arriving at once (tests)
        statuses: list[int] = []
        try:
            _msgid, statuses = await request.app[CALLBACKS].member_says(
                group, userid, body, base_url=config["public_url"], bot_name=config["bot_name"],
                copies=max(1, min(copies, 4)))
        finally:  # also when member_says raised: the member should not wait for nothing
            if 200 not in statuses:
                state.say(group, userid, "error",
                          f"消息没有送达{config['bot_name']}（服务暂时连不上），稍后再试",
                          via="system")

    task = asyncio.create_task(deliver())
    request.app[CONFIG].setdefault("tasks", set()).add(task)
    task.add_done_callback(request.app[CONFIG]["tasks"].discard)
    return web.json_response({"delivered": True})


async def sandbox_join(request: web.Request) -> web.Response:
    """Someone joins a group: add them and send the (nameless) add_member event."""
    state = request.app[STATE]
    fields = await _fields(request, "group", "userid", "name")
    if fields is None:
        return web.json_response({"error": "need group, userid and name"}, status=400)
    group, userid, name = fields
    if group not in state.groups:
        return web.json_response({"error": "unknown group"}, status=400)
    state.groups[group].members[userid] = SimMember(userid, name, int(state.clock.now()))
    state.say(group, userid, "system", f"{name} joined", via="system")
    status = await request.app[CALLBACKS].members_joined(group, 1)
    return web.json_response({"status": status})


# ------------------------------------------------------------------ test controls
async def set_faults(request: web.Request) -> web.Response:
    """Configure injected faults."""
    request.app[STATE].faults.update(await request.json())
    return web.json_response(request.app[STATE].faults.__dict__)


async def sim_log(request: web.Request) -> web.Response:
    """What the simulator received (tests and benchmarks read this)."""
    state = request.app[STATE]
    return web.json_response({
        "webhook": [{"at": t, "group": g, "payload": p} for t, g, p in state.webhook_log],
        "errors": state.errors,
        "callback_attempts": state.callback_attempts,
        "app_messages": state.app_messages,
    })


async def add_members(request: web.Request) -> web.Response:
    """Put members into a group quietly, as if they had always been there (no join event)."""
    state = request.app[STATE]
    try:
        doc = await request.json()
        group = state.groups[str(doc["group"])]
        people = [(str(userid), str(name)) for userid, name in doc["members"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return web.json_response({"error": "need a known group and members [[userid, name]]"},
                                 status=400)
    joined = int(state.clock.now()) - 86400
    for userid, name in people:
        group.members.setdefault(userid, SimMember(userid, name, joined))
    return web.json_response({"members": len(group.members)})


async def replies(request: web.Request) -> web.Response:
    """Each response_url handed out (to userids with a prefix): its message, reply, refusals.

    With the callback statuses of that message, a harness can tell a message WeCom never got
    accepted from one the bot never answered, and see second replies the simulator refused.
    """
    state = request.app[STATE]
    prefix = request.query.get("prefix", "")
    statuses: dict[str, list[int]] = {}
    for tag, status in state.callback_attempts:
        statuses.setdefault(tag, []).append(status)
    return web.json_response({"replies": [
        {"msgid": slot.msgid, "group": slot.group, "userid": slot.userid,
         "created": slot.created, "replied_at": slot.replied_at, "reply": slot.reply,
         "refused": slot.refused, "statuses": statuses.get(slot.msgid, [])}
        for slot in state.response_urls.values() if slot.userid.startswith(prefix)]})


def create_sim_app(state: SimState, callbacks: CallbackSender, *, bot_name: str,
                   public_url: str, clock_file: Path | None = None) -> web.Application:
    """Build the simulator's app (`clock_file`: where the simulated time is kept)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state
    app[CALLBACKS] = callbacks
    app[CONFIG] = {"bot_name": bot_name, "public_url": public_url.rstrip("/")}
    r = app.router
    r.add_post("/cgi-bin/webhook/send", webhook_send)
    r.add_post("/cgi-bin/webhook/upload_media", upload_media)
    r.add_get("/cgi-bin/gettoken", gettoken)
    r.add_post("/cgi-bin/externalcontact/groupchat/get", groupchat_get)
    r.add_post("/cgi-bin/message/send", message_send)
    r.add_post("/cgi-bin/aibot/response", aibot_response)
    directory.add_routes(app)
    simclock.add_routes(app, clock_file)
    customer.add_routes(app)
    r.add_get("/", page)
    r.add_get("/sandbox/config", sandbox_config)
    r.add_get("/sandbox/feed", sandbox_feed)
    r.add_post("/sandbox/say", sandbox_say)
    r.add_post("/sandbox/join", sandbox_join)
    r.add_post("/sim/faults", set_faults)
    r.add_get("/sim/log", sim_log)
    r.add_post("/sim/members", add_members)
    r.add_get("/sim/replies", replies)
    r.add_static("/static", STATIC)
    return app
