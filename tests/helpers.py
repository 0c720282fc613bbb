"""Test helpers: rasa_sdk trackers built inline, actions run as the server runs them, waiting."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio.cluster import RedisCluster

from qunzhu.redisconn import AsyncRedis

ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count(1)


@lru_cache(maxsize=1)
def domain() -> dict[str, Any]:
    """The project's real domain.yml, as the action server receives it."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return loaded


def tracker(
    text: str = "",
    *,
    user: str = "alice",
    group: str = "g1",
    msgid: str | None = None,
    intent: str = "",
    metadata: bool = True,
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    response_selector: dict[str, Any] | None = None,
) -> Tracker:
    """A tracker whose latest message came from `user` in `group` with a WeCom msgid."""
    msgid = msgid or f"msg-{next(_ids)}"
    latest: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": [],
        "message_id": f"rasa-{msgid}",
        "metadata": (
            {"msgid": msgid, "chatid": group, "userid": user,
             "chattype": "group" if group else "single"}
            if metadata else {}
        ),
    }
    if response_selector is not None:
        latest["response_selector"] = response_selector
    user_event = {"event": "user", "text": text, "parse_data": latest, "timestamp": 1.0}
    return Tracker(
        sender_id=f"{group}:{user}" if group else user,
        slots=slots or {},
        latest_message=latest,
        events=[*(events or []), user_event],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


async def run(action: Action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run an action; return (messages sent, events returned)."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, domain())
    return dispatcher.messages, list(events)


def responses(messages: list[dict[str, Any]]) -> list[str]:
    """The response names an action uttered."""
    return [m.get("response") or "" for m in messages]


def texts(messages: list[dict[str, Any]]) -> list[str]:
    """Render every variation of every uttered response; fail on an unfilled placeholder."""
    import re

    out: list[str] = []
    for message in messages:
        name = message.get("response")
        if not name:
            out.append(message.get("text") or "")
            continue
        variations = domain()["responses"].get(name)
        assert variations, f"{name} is not in domain.yml"
        values = message
        for variation in variations:
            filled = re.sub(
                r"\{(\w+)\}",
                lambda m, v=values: str(v[m.group(1)]) if m.group(1) in v else m.group(0),  # type: ignore[misc]
                variation["text"],
            )
            assert "{" not in filled, f"{name}: unfilled placeholder in {filled!r}"
            out.append(filled)
    return out


async def key_count(r: AsyncRedis) -> int:
    """How many keys Redis holds: every node's, on a cluster (whose DBSIZE asks one node)."""
    if isinstance(r, RedisCluster):
        return len(await r.keys("*", target_nodes=RedisCluster.PRIMARIES))
    return int(await r.dbsize())


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Wait (real time) until an async check holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
