"""How the simulator calls the bridge: signed, encrypted, and retried exactly like WeCom.

No HTTP 200 within 5 s → WeCom drops the connection and tries again, 3 more times
(docs 90238/96466). The same message may therefore arrive up to four times.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.simulator.state import SimState
from bot.wecom.crypto import WeComCrypto

TIMEOUT_S = 5.0
RETRIES = 3


class CallbackSender:
    """Delivers callbacks to the bridge's /wecom/aibot and /wecom/app."""

    def __init__(self, state: SimState, bridge_url: str, *,
                 session: aiohttp.ClientSession | None = None,
                 timeout_s: float = TIMEOUT_S, retry_delay_s: float = 0.2) -> None:
        self._state = state
        self._session_given = session
        self._own: aiohttp.ClientSession | None = None
        self._bridge = bridge_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_delay_s = retry_delay_s
        self._aibot = WeComCrypto(state.token, state.aes_key, "", clock=state.clock.now)
        self._app = WeComCrypto(state.token, state.aes_key, state.corp_id, clock=state.clock.now)

    def _session(self) -> aiohttp.ClientSession:
        """The given session, or one of our own created inside the running loop."""
        if self._session_given is not None:
            return self._session_given
        if self._own is None or self._own.closed:
            self._own = aiohttp.ClientSession()
        return self._own

    async def close(self) -> None:
        """Close the session we created, if any."""
        if self._own is not None:
            await self._own.close()

    async def _post_once(self, path: str, body: bytes, params: dict[str, str], tag: str) -> int:
        try:
            async with self._session().post(
                f"{self._bridge}{path}?{urlencode(params)}", data=body, timeout=self._timeout
            ) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            status = -1
        self._state.callback_attempts.append((tag, status))
        return status

    async def deliver(self, path: str, body: bytes, params: dict[str, str], tag: str) -> int:
        """One delivery with WeCom's retries; the last status (200 = accepted)."""
        status = -1
        for attempt in range(1 + RETRIES):
            status = await self._post_once(path, body, params, tag)
            if status == 200:
                return status
            if attempt < RETRIES:
                await asyncio.sleep(self._retry_delay_s)
        return status

    def aibot_request(self, message: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and signed query of a 智能机器人 callback."""
        sealed = self._aibot.seal(json.dumps(message, ensure_ascii=False))
        params = {"msg_signature": sealed.msg_signature, "timestamp": sealed.timestamp,
                  "nonce": sealed.nonce}
        return json.dumps({"encrypt": sealed.encrypt}).encode(), params

    def app_request(self, xml: str) -> tuple[bytes, dict[str, str]]:
        """The encrypted XML body and signed query of an app callback."""
        sealed = self._app.seal(xml)
        body = (f"<xml><ToUserName><![CDATA[{self._state.corp_id}]]></ToUserName>"
                f"<AgentID><![CDATA[1000002]]></AgentID>"
                f"<Encrypt><![CDATA[{sealed.encrypt}]]></Encrypt></xml>")
        params = {"msg_signature": sealed.msg_signature, "timestamp": sealed.timestamp,
                  "nonce": sealed.nonce}
        return body.encode(), params

    async def member_says(self, group: str, userid: str, text: str, *, base_url: str,
                          bot_name: str, copies: int = 1) -> tuple[str, list[int]]:
        """A member @-mentions the bot in a group: (msgid, status of each concurrent copy)."""
        msgid = secrets.token_hex(12)
        message = {
            "msgid": msgid,
            "aibotid": "aibot_sandbox",
            "chatid": group,
            "chattype": "group",
            "from": {"userid": userid},
            "response_url": self._state.new_response_url(base_url, group, userid, msgid),
            "msgtype": "text",
            "text": {"content": f"@{bot_name}\u2005{text}"},
        }
        body, params = self.aibot_request(message)
        statuses = await asyncio.gather(
            *(self.deliver("/wecom/aibot", body, params, msgid) for _ in range(copies))
        )
        return msgid, list(statuses)

    async def members_joined(self, group: str, count: int) -> int:
        """A change_external_chat add_member event (the joiners are not named in it)."""
        now = int(self._state.clock.now())
        xml = (
            f"<xml><ToUserName><![CDATA[{self._state.corp_id}]]></ToUserName>"
            "<FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_chat]]></Event>"
            f"<ChatId><![CDATA[{group}]]></ChatId><ChangeType><![CDATA[update]]></ChangeType>"
            "<UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>1</JoinScene>"
            f"<MemChangeCnt>{count}</MemChangeCnt></xml>"
        )
        body, params = self.app_request(xml)
        return await self.deliver("/wecom/app", body, params, f"event:{group}:{now}")
