"""Rasa's Redis tracker store, saving without rebuilding the stored tracker on every turn.

Rasa 3.6's `RedisTrackerStore.save` deserialises the stored tracker — replaying every event
through the domain — only to merge earlier conversation sessions back into the one being
saved (`retrieve` returns the last session). Here the same merge runs on the stored JSON
event dicts: the result is identical, at a fraction of the CPU of a turn.
Configured in endpoints.yml as `type: qunzhu.trackers.FastRedisTrackerStore`.
"""

from __future__ import annotations

import json
from typing import Any

from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker


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


class FastRedisTrackerStore(RedisTrackerStore):
    """RedisTrackerStore whose save merges stored JSON instead of replayed trackers."""

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Store the conversation, keeping earlier sessions (same result as Rasa's save)."""
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        current = tracker.as_dialogue().as_dict()
        stored = self.red.get(key)
        if stored is not None:
            current["events"] = merge_events(json.loads(stored).get("events") or [],
                                             current["events"])
        self.red.set(key, json.dumps(current), ex=timeout)
