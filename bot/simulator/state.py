"""What the simulated WeCom knows: groups, members, robot keys, and everything it was sent."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from bot.common.clock import Clock


@dataclass
class SimMember:
    """A group member (internal userid or external contact)."""

    userid: str
    name: str
    join_time: int
    type: int = 2
    group_nickname: str = ""


@dataclass
class SimGroup:
    """A group with its robot key and members."""

    chatid: str
    name: str
    webhook_key: str
    members: dict[str, SimMember] = field(default_factory=dict)
    owner: str = ""  # a customer group's 群主 (an employee); internal groups have none here


@dataclass
class Faults:
    """Faults the next webhook calls suffer (tests set these through /sim/faults)."""

    latency_s: float = 0.0
    http_5xx: int = 0  # answer the next N calls with HTTP 502
    errcode_busy: int = 0  # answer the next N calls with errcode -1 (not posted)
    errcode_45009: int = 0  # answer the next N calls with 45009 (not posted)
    timeouts: int = 0  # hang the next N calls past the client's timeout (posted!)
    resets: int = 0  # drop the connection on the next N calls (not posted)
    fault_rate: float = 0.0  # probability of a random fault from the kinds above
    callback_latency_s: float = 0.0  # (bridge side is not ours: unused by the simulator)

    def update(self, doc: dict[str, Any]) -> None:
        """Set the fields named in a JSON document."""
        for name, value in doc.items():
            if hasattr(self, name):
                setattr(self, name, type(getattr(self, name))(value))


@dataclass
class FeedItem:
    """One line of the sandbox chat: who said what, how WeCom would show it."""

    seq: int
    at: float
    group: str
    sender: str  # a userid, or "bot"
    kind: str  # text, markdown, markdown_v2, image, news, template_card, system
    content: str
    mentions: list[str] = field(default_factory=list)
    via: str = ""  # callback, response_url, webhook

    def to_json(self) -> dict[str, Any]:
        """For the page's poll."""
        return dict(self.__dict__)


@dataclass
class ResponseUrl:
    """A response_url handed out with one callback: usable once, for an hour."""

    group: str
    userid: str
    created: float
    used: bool = False
    msgid: str = ""  # the callback it came with, so a harness can tell which message was answered
    replied_at: float | None = None
    reply: str = ""  # what the bot answered through it
    refused: int = 0  # later calls refused because it was already used (a second reply tried)


class SimState:
    """All of the simulator's state (in memory: it is a test double of WeCom's servers)."""

    RATE_LIMIT = 20
    RATE_WINDOW_S = 60.0
    RESPONSE_URL_TTL_S = 3600.0

    def __init__(self, clock: Clock, *, token: str, aes_key: str, corp_id: str,
                 corp_secret: str) -> None:
        self.clock = clock
        self.token = token
        self.aes_key = aes_key
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.access_token = secrets.token_hex(16)
        self.groups: dict[str, SimGroup] = {}
        self._by_key: dict[str, SimGroup] = {}
        self.faults = Faults()
        self.feed: list[FeedItem] = []
        self.webhook_log: list[tuple[float, str, dict[str, Any]]] = []  # (time, chatid, payload)
        self.webhook_calls: dict[str, list[float]] = {}  # key → accepted post times
        self.response_urls: dict[str, ResponseUrl] = {}
        self.app_messages: list[dict[str, Any]] = []
        self.callback_attempts: list[tuple[str, int]] = []  # (msgid, http status or -1)
        self.errors: dict[int, int] = {}
        self.directory_lookups: list[tuple[str, str]] = []  # (api, userid) the bridge asked
        self.reply_waiters: dict[str, asyncio.Future[float]] = {}  # response code → reply time
        self._seq = 0

    def add_group(self, chatid: str, name: str, webhook_key: str) -> SimGroup:
        """Register a group and its robot."""
        group = SimGroup(chatid, name, webhook_key)
        self.groups[chatid] = group
        if webhook_key:
            self._by_key[webhook_key] = group
        return group

    def group_by_key(self, key: str) -> SimGroup | None:
        """The group whose robot has this key."""
        return self._by_key.get(key) if key else None

    def say(self, group: str, sender: str, kind: str, content: str, *,
            mentions: list[str] | None = None, via: str = "") -> FeedItem:
        """Append a line to a group's chat."""
        self._seq += 1
        item = FeedItem(self._seq, self.clock.now(), group, sender, kind, content,
                        list(mentions or []), via)
        self.feed.append(item)
        if len(self.feed) > 5000:
            del self.feed[:1000]
        return item

    def new_response_url(self, base: str, group: str, userid: str, msgid: str = "") -> str:
        """A fresh one-shot response_url."""
        code = secrets.token_urlsafe(16)
        self.response_urls[code] = ResponseUrl(group, userid, self.clock.now(), msgid=msgid)
        return f"{base}/cgi-bin/aibot/response?response_code={code}"

    def expect_reply(self, response_url: str) -> asyncio.Future[float]:
        """A future that resolves (with the time) when this response_url is answered."""
        code = response_url.rsplit("response_code=", 1)[-1]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.reply_waiters[code] = future
        return future

    def replied(self, code: str) -> None:
        """Resolve whoever waits for this response_url."""
        future = self.reply_waiters.pop(code, None)
        if future is not None and not future.done():
            future.set_result(self.clock.now())

    def count_error(self, errcode: int) -> None:
        """Tally errcodes answered (tests read them)."""
        self.errors[errcode] = self.errors.get(errcode, 0) + 1
