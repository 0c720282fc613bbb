"""Intent classifier over character and word n-grams: learns Chinese intents from few examples.

On a public Chinese benchmark (SMP2017-ECDT) it learns from 10 examples a class what DIET
needs many more for, trains in seconds and parses in a fraction of a millisecond (numbers:
`make bench-nlu`). Its confidences are calibrated (see ngram_model), so the
FallbackClassifier's threshold keeps its meaning. A classifier earlier in the pipeline can
stay as a second voice: its ranking is blended in with `previous_classifier_weight`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from qunzhu.plugins.ngram_component import MODEL_DEFAULTS, NgramComponent

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class NgramIntentClassifier(NgramComponent):
    """Sets each message's intent and ranking from a calibrated n-gram model."""

    model_name = "ngram_intent"

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """N-gram ranges, regularisation, ranking length, the previous classifier's weight."""
        return {**MODEL_DEFAULTS, "previous_classifier_weight": 0.0}

    def train(self, training_data: TrainingData) -> Resource:
        """Fit on every intent example and persist."""
        examples = [m for m in training_data.intent_examples if m.get(TEXT)]
        gold = [str(m.get(INTENT)) for m in examples]
        if len(set(gold)) < 2:
            logger.warning("NgramIntentClassifier needs two intents or more; it will not vote")
            return self._resource
        self._fit(examples, gold)
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        """Set each message's intent and ranking (blended with the previous classifier's)."""
        if self._model is None:  # too little data to train: say so, as DIET does
            for message in messages:
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0},
                            add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
            return messages
        for message, ranked in zip(messages, self._ranked(messages), strict=True):
            blended = self._blend(dict(ranked), message.get(INTENT_RANKING_KEY) or [])
            best_first = sorted(blended.items(), key=lambda item: item[1], reverse=True)
            ranking = [{INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
                       for name, confidence in self._ranking_length(best_first)]
            message.set(INTENT, dict(ranking[0]), add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def _blend(self, ours: dict[str, float], previous: Iterable[dict[str, Any]]
               ) -> dict[str, float]:
        """Weighted mean of this model's and the previous classifier's probabilities."""
        weight = float(self._config["previous_classifier_weight"])
        earlier = {str(r.get(INTENT_NAME_KEY)): float(r.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
                   for r in previous}
        values = list(ours.values())
        if weight <= 0 or not earlier or max(values) - min(values) < 1e-9:
            return ours  # nothing the n-grams know (an unseen emoji): fallback, not a guess
        return {label: (1 - weight) * p + weight * earlier.get(label, 0.0)
                for label, p in ours.items()}
