"""WeCom server API calls the bridge makes besides the webhook: token, member list, replies.

The same client talks to the local simulator in `make run` and tests (WECOM_API_BASE),
so the fetch-and-diff of a group's members is exercised exactly as in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

TOKEN_EXPIRED = frozenset({40014, 42001})


class WeComApiError(Exception):
    """An API call failed; carries the errcode (never the secret or token).

    `maybe_applied`: the request may have reached WeCom and taken effect although no answer
    came back (a timeout, a reset, a garbled reply). It matters only for calls that are not
    idempotent, such as creating a 群发 task: asking again could create a second one.
    """

    def __init__(self, what: str, errcode: int, *, maybe_applied: bool = False) -> None:
        super().__init__(f"{what} failed (errcode {errcode})")
        self.errcode = errcode
        self.maybe_applied = maybe_applied

    @property
    def transient(self) -> bool:
        """WeCom unreachable (-2, ours) or busy (-1): worth asking again soon."""
        return self.errcode in (-1, -2)


@dataclass(frozen=True)
class Member:
    """A member of a customer group as groupchat/get lists it."""

    userid: str
    name: str
    join_time: int
    type: int  # 1 = internal member, 2 = external contact
    group_nickname: str = ""

    @property
    def display_name(self) -> str:
        """What the group shows: the group nickname if the member set one, else the name."""
        return self.group_nickname or self.name


@dataclass(frozen=True)
class GroupChat:
    """A customer group's name and members (externalcontact/groupchat/get)."""

    chat_id: str
    name: str
    members: list[Member]
    owner: str = ""  # the 群主's userid (an employee): who confirms a 群发 to this group


EXTERNAL_ID_PREFIXES = ("wm", "wo")  # external contacts' ids; internal userids are the rest


def is_external(userid: str) -> bool:
    """Whether an id is an external contact's (wm…/wo…) rather than an employee's."""
    return userid.startswith(EXTERNAL_ID_PREFIXES)


class WeComApi:
    """gettoken (cached), externalcontact/groupchat/get, message/send, response_url replies."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        corp_id: str,
        corp_secret: str,
        timeout_s: float = 5.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._corp_id = corp_id
        self._secret = corp_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._token = ""
        self._token_expires = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        """No secret, no token."""
        return f"WeComApi(base_url={self._base!r}, corp_id={self._corp_id!r})"

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        what = url.rsplit("/", 1)[-1]
        try:
            async with self._session.request(method, url, timeout=self._timeout, **kwargs) as r:
                doc = await r.json(content_type=None)
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise WeComApiError(f"{what} ({type(exc).__name__})", -2) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise WeComApiError(f"{what} ({type(exc).__name__})", -2,
                                maybe_applied=True) from None
        if not isinstance(doc, dict):
            raise WeComApiError(f"{what} (not a JSON object)", -2, maybe_applied=True)
        return doc

    async def access_token(self, *, refresh: bool = False) -> str:
        """The app's access_token, fetched once and reused until shortly before it expires."""
        async with self._lock:
            if self._token and not refresh and time.monotonic() < self._token_expires:
                return self._token
            doc = await self._json(
                "GET",
                f"{self._base}/cgi-bin/gettoken",
                params={"corpid": self._corp_id, "corpsecret": self._secret},
            )
            if int(doc.get("errcode", 0)) != 0 or not doc.get("access_token"):
                raise WeComApiError("gettoken", int(doc.get("errcode", -2)))
            self._token = str(doc["access_token"])
            self._token_expires = time.monotonic() + int(doc.get("expires_in", 7200)) - 300
            return self._token

    async def call(self, path: str, body: dict[str, Any] | None = None,
                   query: dict[str, str] | None = None) -> dict[str, Any]:
        """Any other API under /cgi-bin/ (bot.wecom.customer_api builds on this)."""
        return await self._call(path, body, query)

    async def _call(self, path: str, body: dict[str, Any] | None = None,
                    query: dict[str, str] | None = None) -> dict[str, Any]:
        """POST a body (or GET with a query) with the access token, refreshed once if stale."""
        for attempt in range(2):
            try:
                token = await self.access_token(refresh=attempt > 0)
            except WeComApiError as exc:  # the call itself was never sent
                raise WeComApiError(path, exc.errcode) from None
            if body is None:
                doc = await self._json("GET", f"{self._base}/cgi-bin/{path}",
                                       params={"access_token": token, **(query or {})})
            else:
                doc = await self._json(
                    "POST",
                    f"{self._base}/cgi-bin/{path}",
                    params={"access_token": token},
                    data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
            errcode = int(doc.get("errcode", -2))
            if errcode in TOKEN_EXPIRED and attempt == 0:
                continue
            if errcode != 0:
                raise WeComApiError(path, errcode)
            return doc
        raise WeComApiError(path, -2)

    async def group_chat(self, chat_id: str) -> GroupChat:
        """A customer group's name and current members, with names (doc 92122)."""
        doc = await self._call("externalcontact/groupchat/get", {"chat_id": chat_id,
                                                                  "need_name": 1})
        chat: dict[str, Any] = doc["group_chat"] if isinstance(doc.get("group_chat"), dict) else {}
        members: list[Any] = (chat["member_list"] if isinstance(chat.get("member_list"), list)
                              else [])
        return GroupChat(
            chat_id=chat_id,
            name=str(chat.get("name") or ""),
            owner=str(chat.get("owner") or ""),
            members=[
                Member(
                    userid=str(m.get("userid", "")),
                    name=str(m.get("name") or ""),
                    join_time=_int(m.get("join_time")),
                    type=_int(m.get("type")),
                    group_nickname=str(m.get("group_nickname") or ""),
                )
                for m in members
                if isinstance(m, dict) and m.get("userid")
            ],
        )

    async def group_members(self, chat_id: str) -> list[Member]:
        """The current member list of a customer group."""
        return (await self.group_chat(chat_id)).members

    async def person_name(self, userid: str) -> str:
        """An employee's name (user/get) or an external contact's (externalcontact/get).

        The id's prefix picks the likelier API first (external ids start wm/wo, but an
        admin may name an employee "woody"); a refusal tries the other one.
        """
        lookups = [self._employee_name, self._contact_name]
        if is_external(userid):
            lookups.reverse()
        try:
            return await lookups[0](userid)
        except WeComApiError as first:
            if first.transient:
                raise
            try:
                return await lookups[1](userid)
            except WeComApiError:
                raise first from None

    async def _employee_name(self, userid: str) -> str:
        doc = await self._call("user/get", query={"userid": userid})
        return str(doc.get("name") or "")

    async def _contact_name(self, userid: str) -> str:
        doc = await self._call("externalcontact/get", query={"external_userid": userid})
        contact = doc.get("external_contact")
        return str(contact.get("name") or "") if isinstance(contact, dict) else ""

    async def send_text(self, agent_id: str, userid: str, content: str) -> None:
        """Reply 1:1 through the app (message/send)."""
        await self._call(
            "message/send",
            {"touser": userid, "msgtype": "text", "agentid": int(agent_id or 0),
             "text": {"content": content}},
        )

    async def respond(self, response_url: str, payload: dict[str, Any]) -> int:
        """POST a reply to a 智能机器人 response_url (usable once, for an hour); the errcode."""
        try:
            async with self._session.post(
                response_url,
                data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
            ) as r:
                if r.status >= 500:
                    return -2
                doc = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return -2
        return int(doc.get("errcode", -2)) if isinstance(doc, dict) else -2


def _int(value: Any) -> int:
    """WeCom's integers, tolerating strings and garbage (0)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
