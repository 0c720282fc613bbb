"""One turn through Rasa's REST channel, with a deadline so a slow Rasa never stalls a member.

Turns can be spread over several Rasa processes (RASA_URL="http://a:5005,http://b:5005"):
they share the Redis tracker and lock stores, so any of them can answer anyone; each member
still goes to the same one while it is up, where its tracker is already in memory. Where the
console publishes models (blue-green Rasa slots, qunzhu.models), the live slot's address in
Redis wins over RASA_URL; every bridge process rereads it once a second, so a publish moves
all turns at once.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.common.settings import rasa_urls
from qunzhu.redisconn import REDIS_DOWN

ROUTE_TTL_S = 1.0


class RasaUnavailable(Exception):
    """Rasa (or its action server) did not answer in time or answered with an error."""


@dataclass(frozen=True)
class RasaReplicas:
    """The Rasa servers that take turns, in the order one conversation tries them."""

    urls: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> RasaReplicas:
        """RASA_URL: one URL, or several separated by commas."""
        return cls(rasa_urls(value))

    def for_conversation(self, conversation_id: str) -> list[str]:
        """This conversation's own replica first (stable hash), then the others in turn."""
        start = zlib.crc32(conversation_id.encode("utf-8")) % len(self.urls)
        return [*self.urls[start:], *self.urls[:start]]


class RasaRouter:
    """Where turns go now: the published route when there is one, else RASA_URL."""

    def __init__(self, default: RasaReplicas, read_route: Callable[[], Awaitable[str]] | None,
                 *, ttl_s: float = ROUTE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.default = default
        self._read_route = read_route
        self._ttl_s = ttl_s
        self._clock = clock
        self._current = default
        self._read_at: float | None = None

    async def replicas(self) -> RasaReplicas:
        """The replicas for the next turn (the route is reread at most once per ttl)."""
        if self._read_route is None:
            return self.default
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._ttl_s:
            return self._current
        self._read_at = now
        try:
            url = await self._read_route()
        except REDIS_DOWN:  # keep the last route known; Redis being back will say more
            return self._current
        try:
            self._current = RasaReplicas.parse(url) if url else self.default
        except ValueError:
            self._current = self.default
        return self._current


async def turn(
    session: aiohttp.ClientSession,
    rasa: RasaReplicas,
    conversation_id: str,
    text: str,
    metadata: dict[str, str],
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Send the member's text; return Rasa's reply messages (text, image, custom…).

    A replica that refuses the connection never saw the turn, so the next one is asked;
    any other failure (a timeout, an error status) may have run it, so it is not retried.
    """
    payload = {"sender": conversation_id, "message": text, "metadata": metadata}
    for url in rasa.for_conversation(conversation_id):
        try:
            async with session.post(
                f"{url}/webhooks/rest/webhook",
                json=payload,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                if resp.status != 200:
                    raise RasaUnavailable(f"rasa answered http {resp.status}")
                replies = await resp.json(content_type=None)
            break
        except aiohttp.ClientConnectorError:
            continue
        except asyncio.TimeoutError:
            raise RasaUnavailable("rasa timed out") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise RasaUnavailable(f"rasa unreachable: {type(exc).__name__}") from None
    else:
        raise RasaUnavailable("no Rasa server accepted the connection")
    if not isinstance(replies, list):
        raise RasaUnavailable("rasa answered something other than a list")
    return [r for r in replies if isinstance(r, dict)]


def reply_texts(replies: list[dict[str, Any]]) -> list[str]:
    """The text of each reply; images become markdown links so nothing is silently dropped."""
    texts: list[str] = []
    for reply in replies:
        if reply.get("text"):
            texts.append(str(reply["text"]))
        if reply.get("image"):
            texts.append(f"![]({reply['image']})")
    return texts
