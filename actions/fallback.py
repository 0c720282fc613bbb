"""Low confidence: ask to rephrase; twice in a row, offer a person. Yes/no follow-ups."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionHumanHandoff

FALLBACK_INTENT = "nlu_fallback"


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
        """Hand over if the bot just offered it; one code path decides, not two rules."""
        if tracker.get_slot("handoff_offered"):
            return await ActionHumanHandoff().run(dispatcher, tracker, domain)
        dispatcher.utter_message(response="utter_affirm_ack")
        return []


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
        """Withdraw the offer so a later '好的' does not hand over by surprise."""
        if tracker.get_slot("handoff_offered"):
            dispatcher.utter_message(response="utter_handoff_declined")
            return [SlotSet("handoff_offered", False)]
        dispatcher.utter_message(response="utter_deny_ack")
        return []
