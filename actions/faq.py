"""FAQ answers: the ResponseSelector picks the question, brand.yml fills in the facts.

The wording comes from domain.yml as it is on disk now (actions.answers), so an answer an
operator rewrote in the console is live without retraining. The message still names the
response: Rasa renders it from the model's domain, then our `text` replaces that rendering
while the `utter_action` metadata stays.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import answers, config
from actions.replies import lines, render

RETRIEVAL_INTENT = "faq"
# Below this ResponseSelector confidence the question is about the brand but not one the FAQ
# covers ("可以带狗进店吗"): a guessed answer would be wrong, so the bot offers a person.
MIN_ANSWER_CONFIDENCE = 0.5


def selected_response(tracker: Tracker, retrieval_intent: str = RETRIEVAL_INTENT) -> str | None:
    """The `utter_faq/<key>` response the ResponseSelector chose, if it is confident."""
    selector = (tracker.latest_message or {}).get("response_selector") or {}
    chosen = (selector.get(retrieval_intent) or {}).get("response") or {}
    if float(chosen.get("confidence") or 0.0) < MIN_ANSWER_CONFIDENCE:
        return None
    utter = chosen.get("utter_action")
    if isinstance(utter, str) and utter.startswith(f"utter_{retrieval_intent}/"):
        return utter
    key = chosen.get("intent_response_key")
    if isinstance(key, str) and key.startswith(f"{retrieval_intent}/"):
        return f"utter_{key}"
    return None


def opening_hours_text(domain: dict[str, Any], brand: config.Brand) -> str:
    """The hours answer, generated from the stores' data so it cannot contradict itself.

    All stores alike → one line; most alike → the usual hours and the exceptions; else every
    store's hours.
    """
    stores = brand.store_hours()
    note = ""
    if brand.hours_note:
        note = render(domain, "utter_fmt_hours_note", note=brand.hours_note) or ""
    if all(s.usual for s in stores) and config.is_range(brand.opening_hours):
        return render(domain, "utter_fmt_hours_all", hours=brand.opening_hours, note=note) or ""
    if brand.most_stores_keep_usual_hours():
        exceptions = lines(domain, "utter_fmt_store_hours_line",
                           ({"name": s.name, "hours": s.hours} for s in stores if not s.usual))
        return render(domain, "utter_fmt_hours_most", hours=brand.opening_hours, note=note,
                      exceptions=exceptions) or ""
    every = lines(domain, "utter_fmt_store_hours_line",
                  ({"name": s.name, "hours": s.hours} for s in stores))
    return render(domain, "utter_fmt_hours_each", note=note, stores=every) or ""


def facts(domain: dict[str, Any]) -> dict[str, Any]:
    """Brand and game facts for FAQ placeholders, read from the YAML at answer time."""
    brand, games = config.brand(), config.games()
    draw = games.lucky_draw
    bonuses = sorted(games.checkin.streak_bonus.items())
    return {
        **brand.template_vars(),
        "opening_hours_text": opening_hours_text(domain, brand),
        "store_list": lines(domain, "utter_fmt_store_line",
                            ({"name": s.name, "address": s.address, "hours": s.hours}
                             for s in brand.store_hours())),
        "checkin_base_points": games.checkin.base_points,
        "streak_bonus_text": (
            lines(domain, "utter_fmt_streak_bonus",
                  ({"days": d, "bonus": b} for d, b in bonuses), sep="、")
            if bonuses else render(domain, "utter_fmt_no_streak_bonus")
        ),
        "draw_daily_limit": draw.daily_limit,
        "draw_cost_text": (
            render(domain, "utter_fmt_draw_cost", cost=draw.cost_points)
            if draw.cost_points else render(domain, "utter_fmt_draw_free")
        ),
        "draw_prizes": "、".join(p.name for p in draw.prizes if p.kind != "nothing"),
    }


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
        """Wording from domain.yml on disk and facts from brand.yml, both read at answer time,
        so editing either needs no retraining."""
        response = selected_response(tracker)
        if response is None or response not in (domain.get("responses") or {}):
            dispatcher.utter_message(response="utter_faq_unsure")
            return [SlotSet("handoff_offered", True)]
        values = facts(domain)
        text = answers.answer(response, values)
        if text is None:  # not in the file on disk: the model's wording
            dispatcher.utter_message(response=response, **values)
        else:
            dispatcher.utter_message(text=text, response=response, **values)
        return []
