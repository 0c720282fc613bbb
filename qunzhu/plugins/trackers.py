"""Rasa's Redis tracker store, without replaying or re-serialising a whole conversation per turn.

Rasa 3.6's `RedisTrackerStore` deserialises the stored JSON (replaying every event through the
domain) on `retrieve`, and again on `save` only to merge earlier sessions back in, then
serialises every event again. On a busy group that is most of a turn's CPU, growing with the
conversation. This store keeps the same Redis data and the same results, and avoids the work
when it provably can:

- `save` appends the JSON of the events added since `retrieve` to the stored document, when the
  stored document is still the one that was read (compared as a string) and the tracker still
  holds the events it was handed out with; otherwise it merges as Rasa does, on JSON dicts.
- `retrieve` hands back the tracker object this process saved last, when Redis still holds
  exactly what that save wrote and the tracker has not changed since; otherwise it
  deserialises. Another replica's write, a failed turn or an expired key all fall back.
Configured in endpoints.yml as `type: qunzhu.plugins.trackers.FastRedisTrackerStore`; with
QZ_REDIS_CLUSTER=1 it talks to a Redis Cluster (one key per conversation).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from itertools import islice
from typing import Any

from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.events import ActionExecuted, Event
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    get_trackers_for_conversation_sessions,
)

from qunzhu.redisconn import cluster_like, cluster_mode

DEFAULT_CACHE_SIZE = 1000


def _canonical(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, ensure_ascii=False)


def merge_events(prior: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rasa's `_merge_trackers`, on event dicts: keep earlier sessions, add what is new."""
    if not prior:
        return new
    n = len(prior)
    # The common case, one session: the tracker being saved starts with everything stored.
    # Events carry microsecond timestamps and the lock store serialises writers, so the
    # first and last stored events in place identify the prefix.
    if (len(new) >= n and _canonical(new[0]) == _canonical(prior[0])
            and _canonical(new[n - 1]) == _canonical(prior[-1])):
        return new
    seen = {_canonical(e) for e in prior}
    return prior + [e for e in new if _canonical(e) not in seen]


def append_events(stored: str, name: str, events: list[dict[str, Any]]) -> str | None:
    """`stored` (a serialised Dialogue) with `events` appended, or None if it is not one.

    The result is byte-for-byte what `json.dumps(dialogue.as_dict())` gives for the longer
    dialogue, so Rasa's own store reads it back unchanged.
    """
    tail = '], "name": ' + json.dumps(name) + "}"
    if not stored.startswith('{"events": [') or not stored.endswith(tail):
        return None
    if not events:
        return stored
    body = stored[: -len(tail)]
    joined = ", ".join(json.dumps(e) for e in events)
    return body + (joined if body.endswith("[") else ", " + joined) + tail


def _last_event(tracker: DialogueStateTracker) -> Event | None:
    return tracker.events[-1] if tracker.events else None


def _one_session(tracker: DialogueStateTracker) -> bool:
    """Whether `retrieve` would return the whole of this tracker (no later session start)."""
    return not any(isinstance(e, ActionExecuted) and e.action_name == ACTION_SESSION_START_NAME
                   for e in islice(tracker.events, 1, None))


@dataclass
class _Seen:
    """What this process knows of one conversation's stored document."""

    stored: str  # the JSON in Redis when it was last read or written here
    tracker: DialogueStateTracker  # the tracker read from or written as `stored`
    count: int  # its number of events then
    last: Event | None  # its last event then (identity shows it is unchanged)
    reusable: bool  # `tracker` is exactly what retrieve() returns for `stored`, not handed out

    @classmethod
    def of(cls, stored: str, tracker: DialogueStateTracker, *, reusable: bool) -> _Seen:
        """Record `tracker` as it is now, as the one read from or written as `stored`."""
        return cls(stored, tracker, len(tracker.events), _last_event(tracker), reusable)

    def unchanged(self) -> bool:
        """The tracker still holds exactly the events it had when this was recorded."""
        return len(self.tracker.events) == self.count and _last_event(self.tracker) is self.last

    def extends(self, tracker: DialogueStateTracker) -> bool:
        """`tracker` is the one recorded here, with events only appended since."""
        n = self.count
        return (tracker is self.tracker and len(tracker.events) >= n
                and (n == 0 or tracker.events[n - 1] is self.last))


class FastRedisTrackerStore(RedisTrackerStore):
    """RedisTrackerStore that appends new events and reuses its own last-saved tracker."""

    def __init__(self, *args: Any, cache_size: int = DEFAULT_CACHE_SIZE, **kwargs: Any) -> None:
        """Rasa's RedisTrackerStore arguments, plus how many conversations to remember."""
        super().__init__(*args, **kwargs)
        if cluster_mode():  # one key per conversation: the same commands on a cluster
            self.red = cluster_like(self.red)  # type: ignore[has-type]
        self.cache_size = max(0, int(cache_size))
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def _remember(self, sender_id: str, seen: _Seen) -> None:
        if self.cache_size == 0:
            return
        self._seen[sender_id] = seen
        self._seen.move_to_end(sender_id)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    async def _retrieve(self, sender_id: str,
                        fetch_all_sessions: bool) -> DialogueStateTracker | None:
        """Rasa's retrieve, reusing the tracker this process last saved when nothing changed."""
        stored = self.red.get(self.key_prefix + sender_id)
        if stored is None:
            self._seen.pop(sender_id, None)
            return None
        seen = self._seen.get(sender_id)
        if (not fetch_all_sessions and seen is not None and seen.reusable
                and seen.stored == stored and seen.unchanged()):
            tracker = seen.tracker
        else:
            tracker = self.deserialise_tracker(sender_id, stored)
            if tracker is None:
                return None
            if not fetch_all_sessions:
                sessions = get_trackers_for_conversation_sessions(tracker)
                if len(sessions) > 1:
                    tracker = sessions[-1]
        # Handed out: the caller owns it now and may change it; save() recognises it.
        self._remember(sender_id, _Seen.of(stored, tracker, reusable=False))
        return tracker

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Store the conversation, keeping earlier sessions (same document as Rasa's save)."""
        if not timeout and self.record_exp:
            timeout = self.record_exp
        sender_id = tracker.sender_id
        key = self.key_prefix + sender_id
        stored = self.red.get(key)
        seen = self._seen.get(sender_id)
        document = None
        if stored is not None and seen is not None and seen.stored == stored and seen.extends(
                tracker):
            new = list(islice(tracker.events, seen.count, None))
            if self.event_broker is not None:  # the same events Rasa's diff would publish
                await self._stream_new_events(self.event_broker, new, sender_id)
            document = append_events(stored, sender_id, [e.as_dict() for e in new])
        else:
            # Rasa's way: it retrieves (and deserialises) the stored tracker to diff it.
            await self.stream_events(tracker)
        if document is None:
            current = tracker.as_dialogue().as_dict()
            if stored is not None:
                current["events"] = merge_events(json.loads(stored).get("events") or [],
                                                 current["events"])
            document = json.dumps(current)
        self.red.set(key, document, ex=timeout)
        self._remember(sender_id, _Seen.of(document, tracker, reusable=_one_session(tracker)))
