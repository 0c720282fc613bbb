"""WeCom's official routes into customer groups (外部群): welcome templates and 企业群发.

Robots cannot be in customer groups. What an app may do instead, all through the
customer-contact APIs on the same access token as `bot.wecom.api.WeComApi`:

- 入群欢迎语素材 (doc 92366): `externalcontact/group_welcome_template/add|edit|get|del`. WeCom
  keeps at most 100 per corp and sends them itself when someone joins a group whose owner
  applied the template. `text.content` ≤ 3000 bytes (`%NICKNAME%` becomes the joiner's
  nickname); a link needs a title (≤ 128 bytes) and a url, its desc ≤ 512 bytes. An app may
  edit and delete only templates it created.
- 企业群发 (doc 92135): `externalcontact/add_msg_template` with `chat_type: group` creates a task
  for the group owner (`sender`, required for groups) to confirm in their WeCom client;
  nothing is sent until they do. `chat_id_list` names ≤ 2000 of the owner's groups. Each
  customer group receives at most days-in-month such messages a month; a message beyond that
  is not delivered. The answer carries `msgid` and `fail_list`. There is no idempotency key:
  a request that timed out may or may not have created the task.
- Results (doc 93338): `get_groupmsg_send_result` per msgid and sender, paged by
  `next_cursor` (limit ≤ 1000, default 500): per chat_id status 0 未发送, 1 已发送, 2 客户不是
  好友, 3 客户已收到其他群发 (the monthly cap). `get_groupmsg_list_v2` lists the corp's 群发 in a
  time range and `get_groupmsg_task` a message's senders: together they find a task whose
  creation answer was lost.
- Owners: `externalcontact/groupchat/get` names a group's owner (`WeComApi.group_chat`),
  `externalcontact/groupchat/list` with `owner_filter` lists an owner's groups (doc 92120).

Errors raise `WeComApiError` with the official errcode; `maybe_applied` marks the ones where
the request may have taken effect anyway.
"""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.wecom.api import WeComApi, WeComApiError

MAX_WELCOME_TEMPLATES = 100  # per corp (doc 92366)
WELCOME_TEXT_MAX_BYTES = 3000
LINK_TITLE_MAX_BYTES = 128
LINK_DESC_MAX_BYTES = 512
MSG_TEXT_MAX_BYTES = 4000  # add_msg_template text.content (doc 92135)
MAX_CHAT_IDS = 2000  # add_msg_template chat_id_list
RESULT_PAGE_MAX = 1000  # get_groupmsg_send_result / get_groupmsg_task limit
GROUPCHAT_LIST_MAX = 1000  # groupchat/list limit

# errcodes these APIs answer (WeCom's global errcode list). WeCom's pages do not say which code
# an unknown template_id or msgid gets; these are the global codes that describe it, and
# the simulator answers the same ones, so only this table would change.
INVALID_USERID = 40003
INVALID_TEMPLATE_ID = 40037  # 无效的模板id: a template that does not exist (or is not ours)
INVALID_PARAMETER = 40058  # 不合法的参数: too long, too many, an unknown msgid, a bad range
EMPTY_PARAMETERS = 40063  # "some parameters are empty"
TEMPLATE_LIMIT = 41063  # the corp's 100 welcome templates are used (code not documented)

# get_groupmsg_send_result statuses (doc 93338)
# 0 未发送 not sent, 1 已发送 sent, 2 因客户不是好友导致发送失败 not a contact,
# 3 因客户已经收到其他群发消息导致发送失败 already had another mass send (the month's cap)
NOT_SENT, SENT, NOT_FRIEND, OTHER_MASS_SEND = 0, 1, 2, 3
SEND_STATUSES = {NOT_SENT: "not sent", SENT: "sent", NOT_FRIEND: "not a contact",
                 OTHER_MASS_SEND: "already had another mass send"}


def utf8_len(text: str) -> int:
    """WeCom's limits are in bytes of UTF-8 (a CJK character is 3)."""
    return len(text.encode("utf-8"))


def monthly_cap(local: datetime) -> int:
    """How many 群发 a customer group may receive in the month of `local`: its days."""
    return calendar.monthrange(local.year, local.month)[1]


@dataclass(frozen=True)
class Link:
    """A welcome template's 图文 link."""

    title: str
    url: str
    desc: str = ""
    picurl: str = ""

    def to_json(self) -> dict[str, str]:
        """WeCom's `link` object (empty optional fields left out)."""
        doc = {"title": self.title, "url": self.url}
        if self.desc:
            doc["desc"] = self.desc
        if self.picurl:
            doc["picurl"] = self.picurl
        return doc


@dataclass(frozen=True)
class WelcomeContent:
    """What a welcome template says: text, and an optional link (image, mini-program, file
    and video need media uploads qunzhu does not make)."""

    text: str
    link: Link | None = None

    def to_json(self) -> dict[str, Any]:
        """The body fields add/edit take."""
        doc: dict[str, Any] = {"text": {"content": self.text}}
        if self.link is not None:
            doc["link"] = self.link.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> WelcomeContent:
        """Read what group_welcome_template/get answers."""
        text = doc.get("text") if isinstance(doc.get("text"), dict) else {}
        raw = doc.get("link") if isinstance(doc.get("link"), dict) else None
        link = (Link(str(raw.get("title") or ""), str(raw.get("url") or ""),
                     str(raw.get("desc") or ""), str(raw.get("picurl") or ""))
                if raw else None)
        return cls(str((text or {}).get("content") or ""), link)


@dataclass(frozen=True)
class GroupOwner:
    """Who owns a customer group (and so confirms its 群发), with names for people."""

    chat_id: str
    name: str
    owner: str  # "" when WeCom did not say
    owner_name: str = ""


@dataclass(frozen=True)
class MsgTemplate:
    """add_msg_template's answer: the task's msgid and what could not be included."""

    msgid: str
    fail_list: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """One group's state in a 群发 (get_groupmsg_send_result's send_list)."""

    chat_id: str
    userid: str  # the sender (group owner)
    status: int  # NOT_SENT, SENT, NOT_FRIEND, OTHER_MASS_SEND
    send_time: int = 0  # unix seconds, when status is SENT


@dataclass(frozen=True)
class SendResultPage:
    """A page of send results and the cursor to the next one ("" when none)."""

    results: tuple[SendResult, ...]
    next_cursor: str = ""


@dataclass(frozen=True)
class GroupMsg:
    """One 群发 the corp made (get_groupmsg_list_v2)."""

    msgid: str
    create_time: int
    create_type: int  # 0 企业发表 (admin or API), 1 个人发表
    text: str
    creator: str = ""  # not given for tasks created through the API


@dataclass(frozen=True)
class GroupMsgPage:
    """A page of group messages and the next cursor."""

    messages: tuple[GroupMsg, ...]
    next_cursor: str = ""


@dataclass(frozen=True)
class GroupMsgTask:
    """A sender's part of a 群发 (get_groupmsg_task): 0 未发送, 2 已发送."""

    userid: str
    status: int
    send_time: int = 0


@dataclass(frozen=True)
class GroupMsgTaskPage:
    """A page of tasks and the next cursor."""

    tasks: tuple[GroupMsgTask, ...]
    next_cursor: str = ""


class CustomerContact:
    """The customer-contact calls, typed, on a WeComApi's token and session."""

    def __init__(self, api: WeComApi) -> None:
        self._api = api

    def __repr__(self) -> str:
        """No secret, no token."""
        return f"CustomerContact({self._api!r})"

    # ------------------------------------------------------------ welcome templates
    async def add_welcome_template(self, content: WelcomeContent, *, notify: bool = True) -> str:
        """Add a template to the corp's library; its template_id."""
        doc = await self._api.call("externalcontact/group_welcome_template/add",
                                   content.to_json() | {"notify": 1 if notify else 0})
        template_id = str(doc.get("template_id") or "")
        if not template_id:
            raise WeComApiError("group_welcome_template/add (no template_id)", -2)
        return template_id

    async def edit_welcome_template(self, template_id: str, content: WelcomeContent) -> None:
        """Change a template qunzhu created (INVALID_TEMPLATE_ID: it is gone)."""
        await self._api.call("externalcontact/group_welcome_template/edit",
                             {"template_id": template_id} | content.to_json())

    async def get_welcome_template(self, template_id: str) -> WelcomeContent:
        """What a template says now."""
        doc = await self._api.call("externalcontact/group_welcome_template/get",
                                   {"template_id": template_id})
        return WelcomeContent.from_json(doc)

    async def del_welcome_template(self, template_id: str) -> None:
        """Delete a template qunzhu created."""
        await self._api.call("externalcontact/group_welcome_template/del",
                             {"template_id": template_id})

    # ------------------------------------------------------------ 企业群发
    async def add_group_msg(self, sender: str, chat_ids: list[str], text: str) -> MsgTemplate:
        """Create a 群发 task for `sender` (the owner) to confirm, to these of their groups.

        Not idempotent: a WeComApiError with `maybe_applied` may have created the task.
        """
        if not 0 < len(chat_ids) <= MAX_CHAT_IDS:
            raise ValueError(f"chat_id_list takes 1 to {MAX_CHAT_IDS} groups")
        doc = await self._api.call("externalcontact/add_msg_template", {
            "chat_type": "group", "sender": sender, "chat_id_list": list(chat_ids),
            "text": {"content": text}})
        msgid = str(doc.get("msgid") or "")
        if not msgid:  # an answer without the task's id: it may exist, unnamed
            raise WeComApiError("add_msg_template (no msgid)", -2, maybe_applied=True)
        fails = doc.get("fail_list") if isinstance(doc.get("fail_list"), list) else []
        return MsgTemplate(msgid, tuple(str(f) for f in fails or []))

    async def send_results(self, msgid: str, userid: str, *, cursor: str = "",
                           limit: int = RESULT_PAGE_MAX) -> SendResultPage:
        """One page of a sender's results for a 群发 (doc 93338)."""
        body: dict[str, Any] = {"msgid": msgid, "userid": userid, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        doc = await self._api.call("externalcontact/get_groupmsg_send_result", body)
        items = doc.get("send_list") if isinstance(doc.get("send_list"), list) else []
        return SendResultPage(
            tuple(SendResult(str(i.get("chat_id") or ""), str(i.get("userid") or ""),
                             _int(i.get("status")), _int(i.get("send_time")))
                  for i in items or [] if isinstance(i, dict) and i.get("chat_id")),
            str(doc.get("next_cursor") or ""))

    async def all_send_results(self, msgid: str, userid: str) -> AsyncIterator[SendResult]:
        """Every result, page after page, until next_cursor is empty."""
        cursor, seen = "", set()
        while True:
            page = await self.send_results(msgid, userid, cursor=cursor)
            for result in page.results:
                yield result
            if not page.next_cursor or page.next_cursor in seen:
                return
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    async def group_msgs(self, start: int, end: int, *, cursor: str = "",
                         limit: int = 100) -> GroupMsgPage:
        """The corp's 企业发表 group-chat 群发 created in [start, end] (unix s; ≤ 1 month)."""
        body: dict[str, Any] = {"chat_type": "group", "start_time": start, "end_time": end,
                                "filter_type": 0, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        doc = await self._api.call("externalcontact/get_groupmsg_list_v2", body)
        items = doc.get("group_msg_list") if isinstance(doc.get("group_msg_list"), list) else []
        messages = []
        for item in items or []:
            if not isinstance(item, dict) or not item.get("msgid"):
                continue
            text = item.get("text") if isinstance(item.get("text"), dict) else {}
            messages.append(GroupMsg(str(item["msgid"]), _int(item.get("create_time")),
                                     _int(item.get("create_type")),
                                     str((text or {}).get("content") or ""),
                                     str(item.get("creator") or "")))
        return GroupMsgPage(tuple(messages), str(doc.get("next_cursor") or ""))

    async def group_msg_tasks(self, msgid: str, *, cursor: str = "",
                              limit: int = RESULT_PAGE_MAX) -> GroupMsgTaskPage:
        """Who was asked to send a 群发, and whether they did."""
        body: dict[str, Any] = {"msgid": msgid, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        doc = await self._api.call("externalcontact/get_groupmsg_task", body)
        items = doc.get("task_list") if isinstance(doc.get("task_list"), list) else []
        return GroupMsgTaskPage(
            tuple(GroupMsgTask(str(i.get("userid") or ""), _int(i.get("status")),
                               _int(i.get("send_time")))
                  for i in items or [] if isinstance(i, dict)),
            str(doc.get("next_cursor") or ""))

    # ------------------------------------------------------------ groups and owners
    async def owner_of(self, chat_id: str) -> GroupOwner:
        """A customer group's name and owner, with the owner's name (groupchat/get)."""
        chat = await self._api.group_chat(chat_id)
        owner_name = next((m.display_name for m in chat.members if m.userid == chat.owner), "")
        return GroupOwner(chat_id, chat.name, chat.owner, owner_name)

    async def groups_of(self, owners: list[str]) -> list[str]:
        """The customer groups these employees own (groupchat/list, every page)."""
        found: list[str] = []
        cursor, seen = "", set()
        while True:
            body: dict[str, Any] = {"status_filter": 0, "limit": GROUPCHAT_LIST_MAX,
                                    "owner_filter": {"userid_list": list(owners)}}
            if cursor:
                body["cursor"] = cursor
            doc = await self._api.call("externalcontact/groupchat/list", body)
            items = (doc.get("group_chat_list")
                     if isinstance(doc.get("group_chat_list"), list) else [])
            found += [str(i["chat_id"]) for i in items or []
                      if isinstance(i, dict) and i.get("chat_id")]
            cursor = str(doc.get("next_cursor") or "")
            if not cursor or cursor in seen:
                return found
            seen.add(cursor)


def _int(value: Any) -> int:
    """WeCom's integers, tolerating strings and garbage (0)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


__all__ = [
    "EMPTY_PARAMETERS", "GROUPCHAT_LIST_MAX", "INVALID_PARAMETER", "INVALID_TEMPLATE_ID",
    "INVALID_USERID", "LINK_DESC_MAX_BYTES", "LINK_TITLE_MAX_BYTES", "MAX_CHAT_IDS",
    "MAX_WELCOME_TEMPLATES", "MSG_TEXT_MAX_BYTES", "NOT_FRIEND", "NOT_SENT", "OTHER_MASS_SEND",
    "RESULT_PAGE_MAX", "SENT", "TEMPLATE_LIMIT", "WELCOME_TEXT_MAX_BYTES", "CustomerContact",
    "GroupMsg", "GroupMsgPage", "GroupMsgTask", "GroupMsgTaskPage", "GroupOwner", "Link",
    "MsgTemplate", "SendResult", "SendResultPage", "WelcomeContent", "monthly_cap", "utf8_len",
]
