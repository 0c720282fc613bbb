"""Rasa's ResponseSelector, asked only about messages that are FAQ questions.

The selected FAQ answer is used only when the intent classifier says the message is the
retrieval intent (`faq`: rule → action_answer_faq); for 打卡, 领券 or 抽奖 the selector's
work was thrown away — 13 % of a turn's CPU. Training is Rasa's, unchanged.
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class FaqResponseSelector(ResponseSelector):
    """Selects an FAQ answer for messages classified as the retrieval intent, as Rasa does."""

    def process(self, messages: list[Message]) -> list[Message]:
        """Rasa's selection for messages of the retrieval intent; the others pass unchanged."""
        if not self.retrieval_intent:  # one selector for every retrieval intent: ask always
            processed: list[Message] = super().process(messages)
            return processed
        asked = [m for m in messages
                 if (m.get(INTENT) or {}).get(INTENT_NAME_KEY) == self.retrieval_intent]
        if asked:
            super().process(asked)
        return messages
