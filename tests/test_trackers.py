"""FastRedisTrackerStore stores exactly what Rasa's RedisTrackerStore stores, sessions included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from qunzhu.plugins.trackers import FastRedisTrackerStore, append_events, merge_events
from qunzhu.redisconn import cluster_like, cluster_mode

pytestmark = pytest.mark.redis
DOMAIN = Domain.load(str(Path(__file__).resolve().parent.parent / "domain.yml"))


def stores(redis_url: str) -> tuple[RedisTrackerStore, FastRedisTrackerStore]:
    url = urlparse(redis_url)
    kw: dict[str, Any] = {"host": url.hostname, "port": url.port,
                          "db": int(url.path.strip("/") or 0)}
    return (rasas_own_store(key_prefix="rasa", **kw),
            FastRedisTrackerStore(DOMAIN, key_prefix="fast", **kw))


def rasas_own_store(**kw: Any) -> RedisTrackerStore:
    """Rasa's own store, given a cluster client when the test runs on a cluster."""
    store = RedisTrackerStore(DOMAIN, **kw)
    if cluster_mode():
        store.red = cluster_like(store.red)
    return store


def turn(tracker: DialogueStateTracker, text: str, at: float) -> None:
    tracker.update(UserUttered(text, {"name": "checkin", "confidence": 0.9}, timestamp=at))
    tracker.update(ActionExecuted("action_check_in", timestamp=at + 0.1))
    tracker.update(SlotSet("handoff_offered", False, timestamp=at + 0.2))
    tracker.update(ActionExecuted("action_listen", timestamp=at + 0.3))


def start_session(tracker: DialogueStateTracker, at: float) -> None:
    tracker.update(ActionExecuted("action_session_start", timestamp=at))
    tracker.update(SessionStarted(timestamp=at + 0.1))


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
        start_session(tracker, 1.0)
        turn(tracker, "打卡", 2.0)
        await store.save(tracker)
        tracker = await store.retrieve("g1:alice")
        assert tracker is not None
        turn(tracker, "我的积分", 3.0)
        await store.save(tracker)
        # a new session: retrieve() returns only it, save() must keep the first one
        tracker = await store.retrieve("g1:alice")
        assert tracker is not None
        start_session(tracker, 10.0)
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


def test_appended_document_is_byte_for_byte_rasas_serialisation() -> None:
    a = {"event": "user", "text": "打卡 🎉", "timestamp": 1.5, "parse_data": {"x": [1, None]}}
    b = {"event": "action", "name": "action_listen", "timestamp": 2.25}
    for prior, added, name in (([], [a], "g:u"), ([a], [b, a], 'g:"引号"'), ([a, b], [], "x")):
        stored = json.dumps({"events": prior, "name": name})
        assert append_events(stored, name, added) == json.dumps(
            {"events": prior + added, "name": name})
    assert append_events('{"name": "x", "events": []}', "x", [a]) is None  # not Rasa's layout
    assert append_events(json.dumps({"events": [], "name": "y"}), "x", [a]) is None


def state_of(tracker: DialogueStateTracker) -> dict[str, object]:
    """What a turn depends on: events, slots, the state policies see."""
    return {"events": [e.as_dict() for e in tracker.events],
            "slots": tracker.current_slot_values(),
            "state": tracker.current_state(), "past": tracker.past_states(DOMAIN)}


async def converse(store: RedisTrackerStore, sender: str, turns: int, start: float) -> None:
    """Rasa's processor, as far as the store sees it: retrieve, update, save per turn."""
    for k in range(turns):
        tracker = await store.retrieve(sender) or DialogueStateTracker(sender, DOMAIN.slots)
        if not tracker.events:
            # Rasa sets the metadata slot before the session starts: a one-event "session"
            tracker.update(SlotSet("session_started_metadata", {"chatid": "g1"},
                                   timestamp=start - 0.5))
            start_session(tracker, start)
        turn(tracker, f"第{k}句", start + 1 + k)
        await store.save(tracker)


async def test_reused_and_appended_trackers_match_rasas_store(
    redis_url: str, redis_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    rasa_store, fast_store = stores(redis_url)
    replays: list[str] = []
    deserialise = fast_store.deserialise_tracker

    def counted(sender_id: str, stored: str) -> DialogueStateTracker | None:
        replays.append(sender_id)
        return deserialise(sender_id, stored)

    monkeypatch.setattr(fast_store, "deserialise_tracker", counted)
    for store in (rasa_store, fast_store):
        await converse(store, "g1:bob", 6, 100.0)
    # only the turn after the metadata "session" replays; the other four reuse the tracker
    assert replays == ["g1:bob"]
    assert fast_store.red.get("fast:tracker:g1:bob") == rasa_store.red.get("rasa:tracker:g1:bob")
    reused = await fast_store.retrieve("g1:bob")
    fresh = await rasa_store.retrieve("g1:bob")
    assert reused is not None and fresh is not None
    assert state_of(reused) == state_of(fresh)
    # handed out once: a second reader gets its own, deserialised copy
    again = await fast_store.retrieve("g1:bob")
    assert again is not None and again is not reused and state_of(again) == state_of(fresh)


async def test_changes_elsewhere_fall_back_to_rasas_merge(
    redis_url: str, redis_client: object
) -> None:
    rasa_store, fast_store = stores(redis_url)
    for store in (rasa_store, fast_store):
        await converse(store, "g1:cat", 2, 200.0)
        mine = await store.retrieve("g1:cat")
        assert mine is not None
        # another replica answers a turn between this one's retrieve and save
        url = urlparse(redis_url)
        other = rasas_own_store(key_prefix=store.key_prefix.split(":")[0], host=url.hostname,
                           port=url.port)
        theirs = await other.retrieve("g1:cat")
        assert theirs is not None
        turn(theirs, "别处", 300.0)
        await other.save(theirs)
        turn(mine, "这里", 301.0)
        await store.save(mine)
    assert fast_store.red.get("fast:tracker:g1:cat") == rasa_store.red.get("rasa:tracker:g1:cat")


async def test_a_turn_that_never_saved_leaves_no_trace(
    redis_url: str, redis_client: object
) -> None:
    _, fast_store = stores(redis_url)
    await converse(fast_store, "g1:dan", 2, 400.0)
    failed = await fast_store.retrieve("g1:dan")
    assert failed is not None
    turn(failed, "出错的一句", 500.0)  # the turn crashed before save
    after = await fast_store.retrieve("g1:dan")
    assert after is not None and after is not failed
    assert not any(e.as_dict().get("text") == "出错的一句" for e in after.events)
    # saved by this process, then changed without a save: not reused either
    await fast_store.save(after)
    turn(after, "没保存", 600.0)
    latest = await fast_store.retrieve("g1:dan")
    assert latest is not None and latest is not after
    assert not any(e.as_dict().get("text") == "没保存" for e in latest.events)


async def test_a_new_session_is_retrieved_alone_and_memory_is_bounded(
    redis_url: str, redis_client: object
) -> None:
    rasa_store, fast_store = stores(redis_url)
    fast_store.cache_size = 2
    for store in (rasa_store, fast_store):
        await converse(store, "g1:eve", 2, 700.0)
        tracker = await store.retrieve("g1:eve")
        assert tracker is not None
        start_session(tracker, 800.0)
        turn(tracker, "新的一天", 801.0)
        await store.save(tracker)
        for k in range(3):
            await converse(store, f"g1:other{k}", 1, 900.0 + k)
    ours, theirs = await fast_store.retrieve("g1:eve"), await rasa_store.retrieve("g1:eve")
    assert ours is not None and theirs is not None and state_of(ours) == state_of(theirs)
    assert len(fast_store._seen) <= 2
    assert fast_store.red.get("fast:tracker:g1:eve") == rasa_store.red.get("rasa:tracker:g1:eve")
    fast_store.red.delete("fast:tracker:g1:eve")
    assert await fast_store.retrieve("g1:eve") is None
