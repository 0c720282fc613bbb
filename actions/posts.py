"""The post-to-group seam: proactive messages go into a durable Redis stream.

Milestones and big wins are announced in the member's group. The text comes from
domain.yml (like every member-facing sentence); the post is appended once per
idempotency key to the brand's outbox stream, which the WeCom bridge's sender drains
through the group-robot webhook within the platform's rate limit.
"""

from __future__ import annotations

from actions.store import GameStore

OUTBOX = "outbox"


async def post_to_group(
    store: GameStore,
    *,
    group: str,
    text: str,
    idem: str,
    mention: str = "",
) -> str | None:
    """Queue a text post for a group once per idempotency key; returns the stream id."""
    if not group or not text:
        return None
    fields = {"group": group, "msgtype": "text", "content": text, "mention": mention}
    return await store.append_once(OUTBOX, idem, fields)
