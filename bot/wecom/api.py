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
    """An API call failed; carries the errcode (never the secret or token)."""

    def __init__(self, what: str, errcode: int) -> None:
        super().__init__(f"{what} failed (errcode {errcode})")
        self.errcode = errcode


@dataclass(frozen=True)
class Member:
    """A member of a customer group as groupchat/get lists it."""

    userid: str
    name: str
    join_time: int
    type: int  # 1 = internal member, 2 = external contact


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
        try:
            async with self._session.request(method, url, timeout=self._timeout, **kwargs) as r:
                doc = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise WeComApiError(f"{url.rsplit('/', 1)[-1]} ({type(exc).__name__})", -2) from None
        return doc if isinstance(doc, dict) else {"errcode": -2}

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

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with the access token, refreshing it once if WeCom says it expired."""
        for attempt in range(2):
            token = await self.access_token(refresh=attempt > 0)
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

    async def group_members(self, chat_id: str) -> list[Member]:
        """The current member list of a customer group (doc 92122)."""
        doc = await self._call("externalcontact/groupchat/get", {"chat_id": chat_id,
                                                                  "need_name": 1})
        members = (doc.get("group_chat") or {}).get("member_list") or []
        return [
            Member(
                userid=str(m.get("userid", "")),
                name=str(m.get("name") or m.get("group_nickname") or m.get("userid", "")),
                join_time=int(m.get("join_time") or 0),
                type=int(m.get("type") or 0),
            )
            for m in members
            if isinstance(m, dict) and m.get("userid")
        ]

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
