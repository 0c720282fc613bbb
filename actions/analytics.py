"""Analytics events for what the games did, named by the member's message so a replay counts once.

Each game action records its event after the store says the effect happened (a retried
message gets the stored result, so the same event again, with the same `eid`); refusals
(already checked in, sold out, not enough points) record nothing.
"""

from __future__ import annotations

from actions.context import Speaker
from actions.runtime import Services
from qunzhu.events import Event, Kind, Value


def event_for(svc: Services, who: Speaker, kind: Kind, data: dict[str, Value]) -> Event:
    """The event of `who`'s message: eid `<kind>:<msgid>`, the msgid every saga step is keyed on."""
    return Event(kind, f"{kind.value}:{who.msgid}", who.group, who.user,
                 svc.clock.now().timestamp(), data)


async def record(svc: Services, who: Speaker, kind: Kind, data: dict[str, Value]) -> None:
    """Emit one event (one XADD); a Redis failure is logged by `emit`, never raised."""
    await svc.store.record(event_for(svc, who, kind, data))


async def record_daily(svc: Services, who: Speaker, kind: Kind, day: str, at: float,
                       data: dict[str, Value]) -> None:
    """Emit an event that counts once per group, member and local day, whichever message says
    it: eid `<kind>:<group>:<user>:<day>` (the aggregator keeps the first it sees)."""
    await svc.store.record(Event(kind, f"{kind.value}:{who.group}:{who.user}:{day}",
                                 who.group, who.user, at, data))
