"""One turn through Rasa's REST channel, with a deadline so a slow Rasa never stalls a member.

Turns can be spread over several Rasa processes (RASA_URL="http://a:5005,http://b:5005"):
they share the Redis tracker and lock stores, so any of them can answer anyone; each member
still goes to the same one while it is up, where its tracker is already in memory.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.common.settings import rasa_urls


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
