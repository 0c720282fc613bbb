"""The bridge API's one rule of access: `Authorization: Bearer <BRIDGE_API_TOKEN>`."""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.common import appkeys


def authorised(request: web.Request) -> bool:
    """Whether the request carries the API token (compared in constant time)."""
    token = request.app[appkeys.SETTINGS].api_token
    given = request.headers.get("Authorization", "")
    if not token or not given.startswith("Bearer "):
        return False
    return hmac.compare_digest(given[7:].encode(), token.encode())
