"""One turn through Rasa's REST channel, with a deadline so a slow Rasa never stalls a member."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


class RasaUnavailable(Exception):
    """Rasa (or its action server) did not answer in time or answered with an error."""


async def turn(
    session: aiohttp.ClientSession,
    rasa_url: str,
    conversation_id: str,
    text: str,
    metadata: dict[str, str],
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Send the member's text; return Rasa's reply messages (text, image, custom…)."""
    payload = {"sender": conversation_id, "message": text, "metadata": metadata}
    try:
        async with session.post(
            f"{rasa_url}/webhooks/rest/webhook",
            json=payload,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if resp.status != 200:
                raise RasaUnavailable(f"rasa answered http {resp.status}")
            replies = await resp.json(content_type=None)
    except asyncio.TimeoutError:
        raise RasaUnavailable("rasa timed out") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise RasaUnavailable(f"rasa unreachable: {type(exc).__name__}") from None
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
