"""FAQ answers: the ResponseSelector picks the question, brand.yml fills in the facts."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import config

RETRIEVAL_INTENT = "faq"


def selected_response(tracker: Tracker, retrieval_intent: str = RETRIEVAL_INTENT) -> str | None:
    """The `utter_faq/<key>` response the ResponseSelector chose for the latest message."""
    selector = (tracker.latest_message or {}).get("response_selector") or {}
    chosen = (selector.get(retrieval_intent) or {}).get("response") or {}
    utter = chosen.get("utter_action")
    if isinstance(utter, str) and utter.startswith(f"utter_{retrieval_intent}/"):
        return utter
    key = chosen.get("intent_response_key")
    if isinstance(key, str) and key.startswith(f"{retrieval_intent}/"):
        return f"utter_{key}"
    return None


class ActionAnswerFaq(Action):
    """Answer the FAQ the member asked, with the brand's current facts filled in."""

    def name(self) -> str:
        """Paired with `action_answer_faq` in domain.yml."""
        return "action_answer_faq"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Facts come from brand.yml at answer time, so editing them needs no retraining."""
        response = selected_response(tracker)
        if response is None or response not in (domain.get("responses") or {}):
            dispatcher.utter_message(response="utter_default")
            return []
        facts = {**config.brand().template_vars(), **config.game_template_vars(config.games())}
        dispatcher.utter_message(response=response, **facts)
        return []
