"""The one join to the bridge: group posts and handoff requests go through its HTTP API.

Milestones and big wins are announced in the member's group as markdown, where a
`<@userid>` mention shows the member's name and notifies them. The text comes from
domain.yml (like every member-facing sentence). The bridge answers 202 only once the post
is in its durable Redis stream, and the same idempotency key (derived from the WeCom
msgid) returns the same post, so a retried message never announces twice. A member's
request for a person goes the same way (`POST /api/handoffs`), keyed on their message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import aiohttp

from qunzhu import settings

log = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT_S = 1.5


class GroupPoster(Protocol):
    """Something that queues a post for a group and returns its id (None if it could not)."""

    async def post(self, group: str, text: str, idem: str) -> str | None:
        """Queue a markdown post once per idempotency key."""
        ...

    async def handoff(self, request: dict[str, Any], idem: str) -> bool:
        """Queue a request for a person once per idempotency key; False if it could not."""
        ...


class BridgePoster:
    """Posts through `POST {BRIDGE_URL}/api/groups/{group}/messages`."""

    def __init__(self, base_url: str, token: str, brand_id: str) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._brand = brand_id
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        """No token."""
        return f"BridgePoster(base_url={self._base!r})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (tests)."""
        if self._session is not None:
            await self._session.close()

    async def post(self, group: str, text: str, idem: str) -> str | None:
        """Queue a markdown post; a few quick retries, then give up without failing the turn."""
        doc = await self._send(f"/api/groups/{group}/messages",
                               {"msgtype": "markdown", "content": text, "kind": "reaction"},
                               idem)
        return None if doc is None else str(doc.get("id", ""))

    async def handoff(self, request: dict[str, Any], idem: str) -> bool:
        """Queue a member's request for a person (`POST /api/handoffs`); False if refused."""
        return await self._send("/api/handoffs", request, f"handoff:{idem}") is not None

    async def _send(self, path: str, body: dict[str, Any], idem: str) -> dict[str, Any] | None:
        """POST to the bridge until it answers 202 (a few quick tries); its JSON, or None."""
        headers = {"Authorization": f"Bearer {self._token}",
                   "Idempotency-Key": f"{self._brand}:{idem}"}
        url = f"{self._base}{path}"
        for attempt in range(ATTEMPTS):
            try:
                async with self._client().post(url, json=body, headers=headers) as resp:
                    if resp.status == 202:
                        doc = await resp.json()
                        return doc if isinstance(doc, dict) else {}
                    if resp.status < 500:  # refused (unknown group, bad token): do not retry
                        log.warning("bridge refused %s: http %s", path, resp.status)
                        return None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                pass
            await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("bridge unreachable: %s not queued", path)
        return None


def bridge_poster(brand_id: str) -> BridgePoster:
    """The poster configured by BRIDGE_URL and BRIDGE_API_TOKEN."""
    return BridgePoster(settings.get("BRIDGE_URL"), settings.get("BRIDGE_API_TOKEN"), brand_id)


async def post_to_group(
    poster: GroupPoster, *, group: str, text: str, idem: str
) -> str | None:
    """Queue a markdown post for a group once per idempotency key; returns the post id."""
    if not group or not text:
        return None
    return await poster.post(group, text, idem)
