"""Low confidence: ask to rephrase; twice in a row, offer a person. Yes/no follow-ups.

An offer of a person (answered with yes or no) binds only the member's very next message,
and only for OFFER_WINDOW_S: a "yes" three turns or an hour later is small talk, never a
page to staff. Whether an offer is open is read from the tracker's events, so it holds across
restarts and Rasa replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionHumanHandoff

FALLBACK_INTENT = "nlu_fallback"
OFFER_SLOT = "handoff_offered"
OFFER_WINDOW_S = 600.0


def _when(event: dict[str, Any]) -> float | None:
    stamp = event.get("timestamp")
    return float(stamp) if isinstance(stamp, (int, float)) else None


def offer_is_open(events: Sequence[dict[str, Any]], window_s: float = OFFER_WINDOW_S) -> bool:
    """Whether the bot offered a person in answer to the member's previous message, recently.

    Looks at the events between the member's previous message and this one: the offer is
    open only if the bot set the offer there, and this message came within the window.
    """
    latest = next((i for i in range(len(events) - 1, -1, -1)
                   if events[i].get("event") == "user"), None)
    if latest is None:
        return False
    now = _when(events[latest])
    for event in reversed(events[:latest]):
        kind = event.get("event")
        if kind == "user":
            return False  # another message came in between: the offer has lapsed
        if kind == "slot" and event.get("name") == OFFER_SLOT:
            if event.get("value") is not True:
                return False
            offered = _when(event)
            return now is None or offered is None or 0 <= now - offered <= window_s
    return False


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many of the member's latest messages in a row the bot did not understand."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != FALLBACK_INTENT:
            break
        count += 1
    return count


class ActionFallback(Action):
    """Ask the member to rephrase, and offer a person after two misses in a row."""

    def name(self) -> str:
        """Paired with `action_fallback` in domain.yml."""
        return "action_fallback"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """The count comes from the tracker, so it survives restarts and replicas."""
        if consecutive_fallbacks(tracker) >= 2:
            dispatcher.utter_message(response="utter_offer_human")
            return [SlotSet("handoff_offered", True)]
        dispatcher.utter_message(response="utter_default")
        return []


class ActionAffirm(Action):
    """'好的/是的': accept a pending offer of a person, otherwise just acknowledge."""

    def name(self) -> str:
        """Paired with `action_affirm` in domain.yml."""
        return "action_affirm"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Hand over if the bot offered it just now; one code path decides, not two rules."""
        if offer_is_open(tracker.events):
            return await ActionHumanHandoff().run(dispatcher, tracker, domain)
        dispatcher.utter_message(response="utter_affirm_ack")
        return _withdrawn(tracker)


class ActionDeny(Action):
    """'不用了': decline a pending offer of a person, otherwise just acknowledge."""

    def name(self) -> str:
        """Paired with `action_deny` in domain.yml."""
        return "action_deny"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Decline an offer made just now; otherwise '不用' is small talk."""
        if offer_is_open(tracker.events):
            dispatcher.utter_message(response="utter_handoff_declined")
            return [SlotSet(OFFER_SLOT, False)]
        dispatcher.utter_message(response="utter_deny_ack")
        return _withdrawn(tracker)


def _withdrawn(tracker: Tracker) -> list[EventType]:
    """Clear a lapsed offer so the slot says what the events say."""
    return [SlotSet(OFFER_SLOT, False)] if tracker.get_slot(OFFER_SLOT) else []
