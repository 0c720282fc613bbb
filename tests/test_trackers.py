"""FastRedisTrackerStore stores exactly what Rasa's RedisTrackerStore stores, sessions included."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from qunzhu.trackers import FastRedisTrackerStore, merge_events

pytestmark = pytest.mark.redis
DOMAIN = Domain.load(str(Path(__file__).resolve().parent.parent / "domain.yml"))


def stores(redis_url: str) -> tuple[RedisTrackerStore, FastRedisTrackerStore]:
    url = urlparse(redis_url)
    kw = {"host": url.hostname, "port": url.port, "db": int(url.path.strip("/") or 0)}
    return (RedisTrackerStore(DOMAIN, key_prefix="rasa", **kw),
            FastRedisTrackerStore(DOMAIN, key_prefix="fast", **kw))


def turn(tracker: DialogueStateTracker, text: str, at: float) -> None:
    tracker.update(UserUttered(text, {"name": "checkin", "confidence": 0.9}, timestamp=at))
    tracker.update(ActionExecuted("action_check_in", timestamp=at + 0.1))
    tracker.update(SlotSet("handoff_offered", False, timestamp=at + 0.2))
    tracker.update(ActionExecuted("action_listen", timestamp=at + 0.3))


def stored_events(store: RedisTrackerStore, sender: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = json.loads(store.red.get(store.key_prefix + sender))[
        "events"]
    return events


async def test_same_stored_events_as_rasa_across_turns_and_sessions(
    redis_url: str, redis_client: object
) -> None:
    rasa_store, fast_store = stores(redis_url)
    for store in (rasa_store, fast_store):
        tracker = DialogueStateTracker("g1:alice", DOMAIN.slots)
        tracker.update(ActionExecuted("action_session_start", timestamp=1.0))
        tracker.update(SessionStarted(timestamp=1.1))
        turn(tracker, "打卡", 2.0)
        await store.save(tracker)
        tracker = await store.retrieve("g1:alice")
        assert tracker is not None
        turn(tracker, "我的积分", 3.0)
        await store.save(tracker)
        # a new session: retrieve() returns only it, save() must keep the first one
        tracker = await store.retrieve("g1:alice")
        assert tracker is not None
        tracker.update(ActionExecuted("action_session_start", timestamp=10.0))
        tracker.update(SessionStarted(timestamp=10.1))
        turn(tracker, "抽奖", 11.0)
        await store.save(tracker)
        last = await store.retrieve("g1:alice")
        assert last is not None
        turn(last, "排行榜", 12.0)
        await store.save(last)
    ours, theirs = stored_events(fast_store, "g1:alice"), stored_events(rasa_store, "g1:alice")
    assert ours == theirs
    assert sum(1 for e in ours if e["event"] == "session_started") == 2
    full = await fast_store.retrieve_full_tracker("g1:alice")
    assert full is not None and len(full.events) == len(ours)


def test_merge_keeps_prior_sessions_and_adds_only_new_events() -> None:
    a, b, c = {"event": "user", "text": "a"}, {"event": "user", "text": "b"}, {"event": "x"}
    assert merge_events([], [a]) == [a]
    assert merge_events([a], [a, b]) == [a, b]
    assert merge_events([a, b], [b, c]) == [a, b, c]
