"""Hand a member over to a person: queue the request with recent context, and tell them."""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.analytics import record
from actions.base import GameAction
from actions.context import Speaker
from actions.runtime import Services
from qunzhu.events import Kind

HISTORY_TURNS = 10


def recent_conversation(tracker: Tracker, limit: int = HISTORY_TURNS) -> list[dict[str, str]]:
    """The last few member and bot lines, so staff need not ask again."""
    lines: list[dict[str, str]] = []
    for event in tracker.events:
        kind = event.get("event")
        text = event.get("text")
        if kind in ("user", "bot") and isinstance(text, str) and text:
            lines.append({"from": "member" if kind == "user" else "bot", "text": text[:500]})
    return lines[-limit:]


class ActionHumanHandoff(GameAction):
    """Queue a handoff request for staff and tell the member who will follow up."""

    def name(self) -> str:
        """Paired with `action_human_handoff` in domain.yml."""
        return "action_human_handoff"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Send the request to the bridge (once per member message), which relays it to staff.

        If the bridge cannot take it, the member is told so, with the hotline, rather than
        promised a call back nobody will make.
        """
        history = recent_conversation(tracker)
        queued = await svc.poster.handoff(
            {
                "user": who.user,
                "group": who.group,
                "conversation_id": tracker.sender_id or "",
                "text": who.text[:500],
                "history": history,
            },
            f"{who.user}:{who.msgid}",
        )
        if queued:  # the bridge holds the request (the ticket is the member's message)
            # The console's ticket shows staff what the member said and what came before.
            await record(svc, who, Kind.HANDOFF_OPENED, {
                "ticket": who.msgid, "text": who.text[:500],
                "history": json.dumps(history, ensure_ascii=False)})
        dispatcher.utter_message(
            response="utter_handoff" if queued else "utter_handoff_unsent",
            hotline=svc.brand.hotline,
            service_hours=svc.brand.service_hours,
        )
        return [SlotSet("handoff_offered", False)]
