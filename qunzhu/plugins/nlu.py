"""Rasa NLU component that normalises Chinese chat text before the tokenizer runs.

It lives inside the pipeline so that every channel (REST, the WeCom bridge, rasa shell)
gets the same treatment, and training data is normalised exactly like live messages.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from qunzhu.textnorm import normalise

ORIGINAL_TEXT = "text_original"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False
)
class ChineseTextNormalizer(GraphComponent):
    """Strips @-mentions and invisible characters, applies NFKC and converts 繁→简."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Bot display names whose @-mentions are removed anywhere in the text."""
        return {"bot_names": ["福利官"]}

    def __init__(self, config: dict[str, Any]) -> None:
        self._bot_names: list[str] = list(config.get("bot_names") or [])

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseTextNormalizer:
        """Creates the component (it has nothing to train or load)."""
        return cls(config)

    def _normalise_message(self, message: Message, keep_entity_offsets: bool) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text:
            return
        normalised = normalise(text, self._bot_names)
        if normalised == text:
            return
        # Annotated entity offsets point into the original text; only rewrite it when the
        # rewrite keeps every character in place (NFKC and 繁→简 on CJK do).
        if keep_entity_offsets and message.get(ENTITIES) and len(normalised) != len(text):
            return
        message.set(ORIGINAL_TEXT, text)
        message.set(TEXT, normalised)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Normalise training examples exactly as live messages will be."""
        for example in training_data.training_examples:
            self._normalise_message(example, keep_entity_offsets=True)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Normalise incoming messages before tokenisation."""
        for message in messages:
            self._normalise_message(message, keep_entity_offsets=False)
        return messages
