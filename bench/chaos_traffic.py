"""The fault suite's traffic: members talking through the simulator, operators posting.

Members speak the way WeCom delivers them (the simulator signs, encrypts and retries);
posts go to the bridge's API the way an action or an operator's tool would, retrying on
503 or a dropped connection with the same Idempotency-Key until the bridge answers 202.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

from bench.chaos_report import Sent, Slot

GROUP = "sandbox"
# The bursts of posts go to the staff group: the anti-spam budget rightly caps what a members'
# group receives, and these posts test the outbox's durability, not a group's rhythm.
POST_GROUP = "staff"
CHECKINS = ("打卡", "签到", "今日打卡", "打卡✅")
COUPONS = ("领满30减5", "抢券 满30减5", "领半价券", "我要五元券", "抢半价券")
QUESTIONS = ("几点开门", "能送外卖吗", "怎么开发票", "积分怎么算")
PROBE = "我的积分"  # goes through Rasa, the action server and Redis, and changes nothing
RETRY_S = 0.5
TIMEOUT = aiohttp.ClientTimeout(total=10)


def member_plan(scenario: str, count: int) -> list[tuple[str, str, str]]:
    """(userid, kind, text) for a burst: fresh members, 4 in 10 check in, 3 claim, 3 ask."""
    plan = []
    for n in range(count):
        slot = n % 10
        if slot < 4:
            kind, text = "checkin", CHECKINS[n % len(CHECKINS)]
        elif slot < 7:
            kind, text = "coupon", COUPONS[n % len(COUPONS)]
        else:
            kind, text = "question", QUESTIONS[n % len(QUESTIONS)]
        plan.append((f"chaos_{scenario}_{n}", kind, text))
    return plan


class SimClient:
    """The simulator's sandbox and harness routes."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, bot_name: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._bot = bot_name

    async def add_members(self, userids: Sequence[str]) -> None:
        """Put fresh members into the sandbox group without join events."""
        people = [[u, u.replace("chaos_", "压测")] for u in userids]
        async with self._session.post(f"{self._base}/sim/members", timeout=TIMEOUT,
                                      json={"group": GROUP, "members": people}) as resp:
            resp.raise_for_status()

    async def say(self, userid: str, kind: str, text: str) -> Sent:
        """A member @-mentions the bot; the simulator delivers it like WeCom."""
        at = time.time()
        async with self._session.post(
            f"{self._base}/sandbox/say", timeout=TIMEOUT,
            json={"group": GROUP, "userid": userid, "text": f"@{self._bot}\u2005{text}"},
        ) as resp:
            doc = await resp.json()
        if not doc.get("delivered"):
            raise RuntimeError(f"the simulator did not deliver {text!r}: {doc}")
        return Sent(userid, text, kind, at)

    async def slots(self, prefix: str) -> list[Slot]:
        """Every response_url handed to members whose id starts with the prefix."""
        async with self._session.get(f"{self._base}/sim/replies", timeout=TIMEOUT,
                                     params={"prefix": prefix}) as resp:
            doc = await resp.json()
        return [Slot.from_json(row) for row in doc["replies"]]

    async def webhook(self) -> list[tuple[float, dict[str, Any]]]:
        """(time, payload) of every robot post the sandbox and staff groups received."""
        async with self._session.get(f"{self._base}/sim/log", timeout=TIMEOUT) as resp:
            doc = await resp.json()
        return [(float(e["at"]), e["payload"]) for e in doc["webhook"]
                if e["group"] in (GROUP, POST_GROUP)]


async def paced(count: int, duration_s: float,
                one: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Start `one(i)` for i in range(count) at a steady rate over duration_s, then await all."""
    start = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        delay = start + i * duration_s / max(1, count) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


async def burst(sim: SimClient, plan: Sequence[tuple[str, str, str]],
                duration_s: float) -> list[Sent]:
    """Say every planned message, evenly spread over duration_s."""
    sent: list[Sent] = []

    async def one(i: int) -> None:
        userid, kind, text = plan[i]
        sent.append(await sim.say(userid, kind, text))

    await paced(len(plan), duration_s, one)
    return sent


class PostClient:
    """The bridge's post API, as a well-behaved client uses it."""

    def __init__(self, session: aiohttp.ClientSession, bridge_url: str, token: str) -> None:
        self._session = session
        self._url = f"{bridge_url.rstrip('/')}/api/groups/{POST_GROUP}/messages"
        self._auth = f"Bearer {token}"

    async def _once(self, body: dict[str, str], idem: str) -> int:
        """One attempt: the HTTP status, or -1 when the bridge did not answer."""
        headers = {"Authorization": self._auth, "Idempotency-Key": idem}
        try:
            async with self._session.post(self._url, json=body, headers=headers,
                                          timeout=TIMEOUT) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return -1

    async def post(self, content: str, idem: str, deadline: float) -> int:
        """Post until 202 (or a refusal other than 503, or the deadline); the last status."""
        body = {"msgtype": "markdown", "content": content}
        while True:
            status = await self._once(body, idem)
            if status == 202 or (status != 503 and status >= 400) or time.monotonic() > deadline:
                return status
            await asyncio.sleep(RETRY_S)


def post_token(scenario: str, n: int) -> str:
    """A marker no other post contains, so each post can be found in digests too."""
    return f"〔chaos:{scenario}:{n:04d}:{secrets.token_hex(3)}〕"


async def post_burst(client: PostClient, scenario: str, count: int, duration_s: float,
                     deadline: float) -> tuple[list[str], dict[str, int]]:
    """Post `count` announcements over duration_s: (tokens accepted with 202, other endings)."""
    accepted: list[str] = []
    refused: dict[str, int] = {}

    async def one(i: int) -> None:
        token = post_token(scenario, i)
        status = await client.post(f"**压测公告** {token} 今晚八点新品试饮，欢迎到店",
                                   f"chaos-{token}", deadline)
        if status == 202:
            accepted.append(token)
        else:
            refused[str(status)] = refused.get(str(status), 0) + 1

    await paced(count, duration_s, one)
    return accepted, refused
