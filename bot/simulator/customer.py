"""WeCom's customer-contact APIs for customer groups (外部群), as the simulator serves them.

- 入群欢迎语素材 (doc 92366): `group_welcome_template/add|edit|get|del`, kept per corp, at most
  100; text ≤ 3000 bytes, a link needs title (≤ 128 bytes) and url; edit/get/del of a
  template_id the corp does not have → INVALID_TEMPLATE_ID. Edit replaces the kinds it is
  given (text, link …) and keeps the others.
- 企业群发 (doc 92135): `add_msg_template` with `chat_type: group` needs the owner (`sender`);
  it makes one task pending the owner's confirmation, for the listed groups that are theirs
  (others are returned in `fail_list`); ≤ 2000 chat ids, text ≤ 4000 bytes. Nothing is sent
  until `POST /sim/customer/confirm {msgid, sender}` plays the owner pressing 发送: then each
  group that already received as many 群发 this month (Asia/Shanghai) as the month has days
  gets status 3 (因客户已经收到其他群发消息导致发送失败), the others status 1 and the message
  in their chat.
- Results (doc 93338): `get_groupmsg_send_result` per msgid and sender, `get_groupmsg_task`,
  `get_groupmsg_list_v2` (≤ 1 month range), paged with `next_cursor`; `groupchat/list` with
  `owner_filter` lists an owner's customer groups.

Tests and demos: `POST /sim/customer/faults {"api": "add_msg_template", "faults": [-1,
"lost"]}` answers the next calls with an errcode (nothing done) or does the call and then
drops the connection (done, but the caller never hears); `POST /sim/customer/usage
{"chat_id", "count"}` sets a group's 群发 this month; `GET /sim/customer` shows everything.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.simulator.keys import STATE
from bot.simulator.state import SimGroup, SimMember, SimState
from bot.wecom.customer_api import (
    EMPTY_PARAMETERS,
    GROUPCHAT_LIST_MAX,
    INVALID_PARAMETER,
    INVALID_TEMPLATE_ID,
    INVALID_USERID,
    LINK_DESC_MAX_BYTES,
    LINK_TITLE_MAX_BYTES,
    MAX_CHAT_IDS,
    MAX_WELCOME_TEMPLATES,
    MSG_TEXT_MAX_BYTES,
    NOT_SENT,
    OTHER_MASS_SEND,
    RESULT_PAGE_MAX,
    SENT,
    TEMPLATE_LIMIT,
    WELCOME_TEXT_MAX_BYTES,
    monthly_cap,
    utf8_len,
)
from qunzhu.config import SHANGHAI
from qunzhu.sandbox import CUSTOMER_GROUPS, CUSTOMER_MEMBERS, CUSTOMER_OWNERS

BAD_JSON = 40035  # as the simulator's webhook answers a body that is not JSON
TOKEN_EXPIRED = 42001
CONTENT_KINDS = ("text", "image", "link", "miniprogram", "file", "video")
RESULT_PAGE_DEFAULT = 500
LIST_V2_MAX = 100
MONTH_S = 31 * 86400


@dataclass
class SimMassMsg:
    """One 企业群发 task: its owner, text and each group's status."""

    msgid: str
    sender: str
    text: str
    created: int
    chats: dict[str, int] = field(default_factory=dict)  # chat_id → status
    send_times: dict[str, int] = field(default_factory=dict)
    confirmed_at: int = 0


@dataclass
class CustomerSim:
    """The customer-contact side of the simulated WeCom."""

    templates: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # corp → id →
    messages: dict[str, SimMassMsg] = field(default_factory=dict)
    usage: dict[tuple[str, str], int] = field(default_factory=dict)  # (chat, YYYYMM) → 群发
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # accepted bodies
    faults: dict[str, list[int | str]] = field(default_factory=dict)  # api → next faults

    def count(self, api: str) -> int:
        """How many calls of an API were let through to their handler (tests read this)."""
        return sum(1 for name, _ in self.calls if name == api)


CUSTOMER: web.AppKey[CustomerSim] = web.AppKey("customer", CustomerSim)


def add_sandbox_customer_groups(state: SimState, brand_name: str) -> list[SimGroup]:
    """The sandbox's customer groups: owned by employees, with a few external members."""
    joined = int(state.clock.now()) - 30 * 86400
    owners = dict(CUSTOMER_OWNERS)
    made = []
    for chat_id, name, owner in CUSTOMER_GROUPS:
        group = state.add_group(chat_id, f"{brand_name}·{name}", "")
        group.owner = owner
        group.members[owner] = SimMember(owner, owners.get(owner, owner), joined, type=1)
        for userid, member in CUSTOMER_MEMBERS:
            group.members[userid] = SimMember(userid, member, joined, type=2)
        made.append(group)
    return made


# ------------------------------------------------------------------ plumbing
def _answer(state: SimState, code: int, msg: str) -> web.Response:
    state.count_error(code)
    return web.json_response({"errcode": code, "errmsg": msg})


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", **fields})


def _local(state: SimState) -> datetime:
    return datetime.fromtimestamp(state.clock.now(), tz=SHANGHAI)


async def _request(request: web.Request, api: str) -> dict[str, Any] | web.Response:
    """The JSON body of an authorised call, or WeCom's error answer (faults applied first)."""
    state = request.app[STATE]
    if request.query.get("access_token") != state.access_token:
        return _answer(state, TOKEN_EXPIRED, "access_token expired")
    sim = request.app[CUSTOMER]
    queued = sim.faults.get(api) or []
    if queued and isinstance(queued[0], int):
        code = int(queued.pop(0))
        return _answer(state, code, "simulated fault")
    try:
        doc = json.loads((await request.read()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _answer(state, BAD_JSON, "Warning: wrong json format.")
    if not isinstance(doc, dict):
        return _answer(state, BAD_JSON, "Warning: wrong json format.")
    sim.calls.append((api, doc))
    return doc


def _maybe_lose(request: web.Request, api: str, response: web.Response) -> web.Response:
    """A queued "lost" fault: the call took effect, then the connection drops unanswered."""
    queued = request.app[CUSTOMER].faults.get(api) or []
    if queued and queued[0] == "lost":
        queued.pop(0)
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("simulated: done, but the answer is lost")
    return response


def _content(state: SimState, doc: dict[str, Any], *, required: bool
             ) -> dict[str, Any] | web.Response:
    """A welcome template's kinds from a request body, checked as WeCom documents them."""
    given = {k: doc[k] for k in CONTENT_KINDS if doc.get(k) not in (None, {}, "")}
    if required and not given:
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty")
    if any(not isinstance(v, dict) for v in given.values()):
        return _answer(state, INVALID_PARAMETER, "invalid parameter")
    if "text" in given:
        content = given["text"].get("content")
        if not isinstance(content, str) or not content:
            return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: text.content")
        if utf8_len(content) > WELCOME_TEXT_MAX_BYTES:
            return _answer(state, INVALID_PARAMETER,
                           f"text.content exceeds {WELCOME_TEXT_MAX_BYTES} bytes")
    if "link" in given:
        link = given["link"]
        if not link.get("title") or not link.get("url"):
            return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: link")
        if (utf8_len(str(link["title"])) > LINK_TITLE_MAX_BYTES
                or utf8_len(str(link.get("desc") or "")) > LINK_DESC_MAX_BYTES):
            return _answer(state, INVALID_PARAMETER, "link.title or link.desc too long")
    return given


def _limit(value: Any, default: int, most: int) -> int:
    """A page size: out of range (or not a number) takes the default, as WeCom does."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most:
        return value
    return default


def _offset(value: Any) -> int:
    text = str(value or "0")
    return int(text) if text.isdigit() else 0


def _page(items: list[Any], cursor: Any, limit: int) -> tuple[list[Any], str]:
    start = _offset(cursor)
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else "")


# ------------------------------------------------------------------ welcome templates
async def template_add(request: web.Request) -> web.Response:
    """POST /cgi-bin/externalcontact/group_welcome_template/add."""
    state = request.app[STATE]
    doc = await _request(request, "group_welcome_template/add")
    if isinstance(doc, web.Response):
        return doc
    content = _content(state, doc, required=True)
    if isinstance(content, web.Response):
        return content
    library = request.app[CUSTOMER].templates.setdefault(state.corp_id, {})
    if len(library) >= MAX_WELCOME_TEMPLATES:
        return _answer(state, TEMPLATE_LIMIT,
                       f"group welcome templates exceed {MAX_WELCOME_TEMPLATES}")
    template_id = "msg" + secrets.token_hex(12)
    library[template_id] = content
    return _maybe_lose(request, "group_welcome_template/add", _ok(template_id=template_id))


def _template(request: web.Request, doc: dict[str, Any]
              ) -> tuple[dict[str, dict[str, Any]], str] | web.Response:
    state = request.app[STATE]
    template_id = doc.get("template_id")
    if not isinstance(template_id, str) or not template_id:
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: template_id")
    library = request.app[CUSTOMER].templates.setdefault(state.corp_id, {})
    if template_id not in library:
        return _answer(state, INVALID_TEMPLATE_ID, "invalid template_id")
    return library, template_id


async def template_edit(request: web.Request) -> web.Response:
    """POST …/group_welcome_template/edit: the kinds given replace the stored ones."""
    state = request.app[STATE]
    doc = await _request(request, "group_welcome_template/edit")
    if isinstance(doc, web.Response):
        return doc
    found = _template(request, doc)
    if isinstance(found, web.Response):
        return found
    content = _content(state, doc, required=False)
    if isinstance(content, web.Response):
        return content
    library, template_id = found
    library[template_id] = library[template_id] | content
    return _maybe_lose(request, "group_welcome_template/edit", _ok())


async def template_get(request: web.Request) -> web.Response:
    """POST …/group_welcome_template/get: what is stored."""
    doc = await _request(request, "group_welcome_template/get")
    if isinstance(doc, web.Response):
        return doc
    found = _template(request, doc)
    if isinstance(found, web.Response):
        return found
    library, template_id = found
    return _ok(**library[template_id])


async def template_del(request: web.Request) -> web.Response:
    """POST …/group_welcome_template/del."""
    doc = await _request(request, "group_welcome_template/del")
    if isinstance(doc, web.Response):
        return doc
    found = _template(request, doc)
    if isinstance(found, web.Response):
        return found
    library, template_id = found
    del library[template_id]
    return _maybe_lose(request, "group_welcome_template/del", _ok())


# ------------------------------------------------------------------ 企业群发
def _owned(state: SimState, owner: str) -> list[str]:
    return sorted(g.chatid for g in state.groups.values() if g.owner and g.owner == owner)


def _is_employee(state: SimState, userid: str) -> bool:
    return any(g.owner == userid or (userid in g.members and g.members[userid].type == 1)
               for g in state.groups.values())


async def add_msg_template(request: web.Request) -> web.Response:
    """POST /cgi-bin/externalcontact/add_msg_template: a task the owner confirms."""
    state = request.app[STATE]
    doc = await _request(request, "add_msg_template")
    if isinstance(doc, web.Response):
        return doc
    if doc.get("chat_type", "single") != "group":
        return _answer(state, INVALID_PARAMETER, "simulator: only chat_type group is simulated")
    sender = doc.get("sender")
    if not isinstance(sender, str) or not sender:
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: sender")
    if not _is_employee(state, sender):
        return _answer(state, INVALID_USERID, "invalid userid")
    text = doc.get("text")
    content = text.get("content") if isinstance(text, dict) else None
    if not isinstance(content, str) or not content:
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: text")
    if utf8_len(content) > MSG_TEXT_MAX_BYTES:
        return _answer(state, INVALID_PARAMETER, f"text.content exceeds {MSG_TEXT_MAX_BYTES} "
                                                 "bytes")
    chat_ids = doc.get("chat_id_list")
    if chat_ids is None:
        chat_ids = _owned(state, sender)  # all the owner's groups (they would choose)
    if (not isinstance(chat_ids, list) or not all(isinstance(c, str) for c in chat_ids)
            or len(chat_ids) > MAX_CHAT_IDS):
        return _answer(state, INVALID_PARAMETER, f"chat_id_list: at most {MAX_CHAT_IDS} ids")
    owned = set(_owned(state, sender))
    ok = [c for c in dict.fromkeys(chat_ids) if c in owned]
    fail = [c for c in dict.fromkeys(chat_ids) if c not in owned]
    msgid = "msg" + secrets.token_hex(12)
    request.app[CUSTOMER].messages[msgid] = SimMassMsg(
        msgid, sender, content, int(state.clock.now()), dict.fromkeys(ok, NOT_SENT))
    return _maybe_lose(request, "add_msg_template", _ok(fail_list=fail, msgid=msgid))


def _message(request: web.Request, doc: dict[str, Any]) -> SimMassMsg | web.Response:
    state = request.app[STATE]
    msgid = doc.get("msgid")
    if not isinstance(msgid, str) or not msgid:
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: msgid")
    message = request.app[CUSTOMER].messages.get(msgid)
    if message is None:
        return _answer(state, INVALID_PARAMETER, "invalid msgid")
    return message


async def send_result(request: web.Request) -> web.Response:
    """POST …/get_groupmsg_send_result {msgid, userid, limit, cursor}."""
    state = request.app[STATE]
    doc = await _request(request, "get_groupmsg_send_result")
    if isinstance(doc, web.Response):
        return doc
    message = _message(request, doc)
    if isinstance(message, web.Response):
        return message
    userid = doc.get("userid")
    if not isinstance(userid, str) or not userid:
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: userid")
    rows = []
    if userid == message.sender:
        for chat_id in sorted(message.chats):
            row: dict[str, Any] = {"chat_id": chat_id, "userid": message.sender,
                                   "status": message.chats[chat_id]}
            if message.chats[chat_id] == SENT:
                row["send_time"] = message.send_times[chat_id]
            rows.append(row)
    page, cursor = _page(rows, doc.get("cursor"),
                         _limit(doc.get("limit"), RESULT_PAGE_DEFAULT, RESULT_PAGE_MAX))
    return _ok(next_cursor=cursor, send_list=page)


async def group_msg_task(request: web.Request) -> web.Response:
    """POST …/get_groupmsg_task {msgid}: the sender and whether they sent (0 未发送, 2 已发送)."""
    doc = await _request(request, "get_groupmsg_task")
    if isinstance(doc, web.Response):
        return doc
    message = _message(request, doc)
    if isinstance(message, web.Response):
        return message
    task: dict[str, Any] = {"userid": message.sender, "status": 2 if message.confirmed_at else 0}
    if message.confirmed_at:
        task["send_time"] = message.confirmed_at
    page, cursor = _page([task], doc.get("cursor"),
                         _limit(doc.get("limit"), RESULT_PAGE_DEFAULT, RESULT_PAGE_MAX))
    return _ok(next_cursor=cursor, task_list=page)


async def group_msg_list(request: web.Request) -> web.Response:
    """POST …/get_groupmsg_list_v2: the corp's 群发 created in [start_time, end_time]."""
    state = request.app[STATE]
    doc = await _request(request, "get_groupmsg_list_v2")
    if isinstance(doc, web.Response):
        return doc
    start, end = doc.get("start_time"), doc.get("end_time")
    if not isinstance(start, int) or not isinstance(end, int):
        return _answer(state, EMPTY_PARAMETERS, "some parameters are empty: start_time/end_time")
    if end < start or end - start > MONTH_S:
        return _answer(state, INVALID_PARAMETER, "time range: at most one month")
    if doc.get("chat_type", "single") != "group" or doc.get("filter_type", 2) == 1:
        rows: list[dict[str, Any]] = []  # the simulator makes only 企业发表 group tasks
    else:
        rows = [{"msgid": m.msgid, "create_type": 0, "create_time": m.created,
                 "text": {"content": m.text}, "attachments": []}
                for m in sorted(request.app[CUSTOMER].messages.values(),
                                key=lambda m: (m.created, m.msgid))
                if start <= m.created <= end]
    page, cursor = _page(rows, doc.get("cursor"), _limit(doc.get("limit"), 50, LIST_V2_MAX))
    return _ok(next_cursor=cursor, group_msg_list=page)


async def groupchat_list(request: web.Request) -> web.Response:
    """POST …/groupchat/list {status_filter, owner_filter: {userid_list}, cursor, limit}."""
    state = request.app[STATE]
    doc = await _request(request, "groupchat/list")
    if isinstance(doc, web.Response):
        return doc
    limit = doc.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= \
            GROUPCHAT_LIST_MAX:
        return _answer(state, INVALID_PARAMETER, f"limit: 1 to {GROUPCHAT_LIST_MAX}")
    owner_filter = doc.get("owner_filter")
    wanted = (owner_filter.get("userid_list") if isinstance(owner_filter, dict) else None) or []
    rows = [{"chat_id": g.chatid, "status": 0}
            for g in sorted(state.groups.values(), key=lambda g: g.chatid)
            if g.owner and (not wanted or g.owner in wanted)]
    page, cursor = _page(rows, doc.get("cursor"), limit)
    return _ok(group_chat_list=page, next_cursor=cursor)


# ------------------------------------------------------------------ controls
async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        doc = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def confirm(request: web.Request) -> web.Response:
    """POST /sim/customer/confirm {msgid, sender}: the owner presses 发送 in their client."""
    state = request.app[STATE]
    doc = await _json_body(request)
    if doc is None or not isinstance(doc.get("msgid"), str) or not isinstance(
            doc.get("sender"), str):
        return _problem(400, "need {\"msgid\": …, \"sender\": …}")
    message = request.app[CUSTOMER].messages.get(doc["msgid"])
    if message is None:
        return _problem(404, "no such msgid")
    if doc["sender"] != message.sender:
        return _problem(400, f"this task is {message.sender}'s to confirm")
    if not message.confirmed_at:
        now = _local(state)
        month, cap = f"{now:%Y%m}", monthly_cap(now)
        usage = request.app[CUSTOMER].usage
        message.confirmed_at = int(now.timestamp())
        for chat_id in sorted(message.chats):
            if usage.get((chat_id, month), 0) >= cap:
                message.chats[chat_id] = OTHER_MASS_SEND
                continue
            usage[(chat_id, month)] = usage.get((chat_id, month), 0) + 1
            message.chats[chat_id] = SENT
            message.send_times[chat_id] = message.confirmed_at
            state.say(chat_id, message.sender, "text", message.text, via="mass_send")
    return web.json_response({"msgid": message.msgid, "statuses": message.chats})


async def set_faults(request: web.Request) -> web.Response:
    """POST /sim/customer/faults {"api": "add_msg_template", "faults": [-1, "lost"]}."""
    doc = await _json_body(request)
    faults = doc.get("faults") if doc else None
    if (doc is None or not isinstance(doc.get("api"), str) or not isinstance(faults, list)
            or not all((isinstance(f, int) and not isinstance(f, bool)) or f == "lost"
                       for f in faults)):
        return _problem(400, "need {\"api\": …, \"faults\": [errcode or \"lost\", …]}")
    request.app[CUSTOMER].faults.setdefault(doc["api"], []).extend(faults)
    return web.json_response({"faults": request.app[CUSTOMER].faults})


async def set_usage(request: web.Request) -> web.Response:
    """POST /sim/customer/usage {chat_id, count}: the group's 群发 received this month."""
    state = request.app[STATE]
    doc = await _json_body(request)
    count = doc.get("count") if doc else None
    chat_id = doc.get("chat_id") if doc else None
    if (doc is None or not isinstance(chat_id, str) or chat_id not in state.groups
            or not isinstance(count, int)
            or isinstance(count, bool) or count < 0):
        return _problem(400, "need a known chat_id and a count ≥ 0")
    request.app[CUSTOMER].usage[(doc["chat_id"], f"{_local(state):%Y%m}")] = count
    return web.json_response({"chat_id": doc["chat_id"], "count": count})


async def overview(request: web.Request) -> web.Response:
    """GET /sim/customer: templates, tasks, this month's usage and the calls received."""
    state = request.app[STATE]
    sim = request.app[CUSTOMER]
    calls: dict[str, int] = {}
    for api, _ in sim.calls:
        calls[api] = calls.get(api, 0) + 1
    return web.json_response({
        "templates": sim.templates.get(state.corp_id, {}),
        "messages": [{"msgid": m.msgid, "sender": m.sender, "text": m.text,
                      "created": m.created, "confirmed_at": m.confirmed_at,
                      "statuses": m.chats} for m in sim.messages.values()],
        "usage": {f"{chat}:{month}": n for (chat, month), n in sim.usage.items()},
        "calls": calls,
    })


def add_routes(app: web.Application) -> None:
    """Mount the customer-contact APIs and their controls."""
    app[CUSTOMER] = CustomerSim()
    r = app.router
    base = "/cgi-bin/externalcontact/"
    r.add_post(base + "group_welcome_template/add", template_add)
    r.add_post(base + "group_welcome_template/edit", template_edit)
    r.add_post(base + "group_welcome_template/get", template_get)
    r.add_post(base + "group_welcome_template/del", template_del)
    r.add_post(base + "add_msg_template", add_msg_template)
    r.add_post(base + "get_groupmsg_send_result", send_result)
    r.add_post(base + "get_groupmsg_task", group_msg_task)
    r.add_post(base + "get_groupmsg_list_v2", group_msg_list)
    r.add_post(base + "groupchat/list", groupchat_list)
    r.add_post("/sim/customer/confirm", confirm)
    r.add_post("/sim/customer/faults", set_faults)
    r.add_post("/sim/customer/usage", set_usage)
    r.add_get("/sim/customer", overview)


__all__ = ["CUSTOMER", "CustomerSim", "SimMassMsg", "add_routes",
           "add_sandbox_customer_groups"]
