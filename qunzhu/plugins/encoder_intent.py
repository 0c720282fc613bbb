"""Intent classifier that fine-tunes a pretrained encoder: a second voice beside the n-grams.

The bottom layer of multilingual-e5-small (data/encoders) already knows what Chinese pieces
mean in context: blended into NgramIntentClassifier (its `previous_classifier_weight`, 0.3)
it adds 2 points of accuracy at 10 examples an intent on SMP2017 and 3 on the project's
second member set (`make bench-nlu`, bench/nlu_configs/encoder-voice.yml). Opt-in: it
parses in about 2.5 ms, trains for up to a minute on two cores, and TensorFlow's training is
not repeatable to the example.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from qunzhu.plugins.encoder_training import TrainedEncoder, TrainingSettings, fine_tune
from qunzhu.plugins.ngram_component import file_fingerprint
from qunzhu.plugins.ngram_model import softmax
from qunzhu.plugins.small_encoder import Vocabulary, load_export

logger = logging.getLogger(__name__)

# Part of every cached training's key: bump it when the training's maths or files change.
MODEL_VERSION = "1"
MODEL_NAME = "encoder_intent"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class EncoderIntentClassifier(GraphComponent, IntentClassifier):
    """Sets each message's intent and full ranking from the fine-tuned encoder."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The exported encoder and how to fine-tune it."""
        defaults = TrainingSettings()
        return {"encoder_path": None, "epochs": defaults.epochs,
                "batch_size": defaults.batch_size, "learning_rate": defaults.learning_rate,
                "dropout": defaults.dropout, "label_smoothing": defaults.label_smoothing}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The code version and the exported encoder's content."""
        return file_fingerprint(MODEL_VERSION, config.get("encoder_path"))

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage,
                 resource: Resource, model: TrainedEncoder | None = None,
                 labels: list[str] | None = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._model = model
        self._labels = labels or []

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> EncoderIntentClassifier:
        """An untrained component."""
        return cls(config, model_storage, resource)

    def _settings(self) -> TrainingSettings:
        config = self._config
        return TrainingSettings(epochs=int(config["epochs"]),
                                batch_size=int(config["batch_size"]),
                                learning_rate=float(config["learning_rate"]),
                                dropout=float(config["dropout"]),
                                label_smoothing=float(config["label_smoothing"]))

    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tune on every intent example and persist."""
        path = self._config["encoder_path"]
        if not path:
            raise ValueError("EncoderIntentClassifier needs encoder_path (data/encoders/…)")
        examples = [m for m in training_data.intent_examples if m.get(TEXT)]
        gold = [str(m.get(INTENT)) for m in examples]
        labels = sorted(set(gold))
        if len(labels) < 2:
            logger.warning("EncoderIntentClassifier needs two intents or more; it will not vote")
            return self._resource
        vocabulary, start = load_export(Path(path))
        self._model = fine_tune(vocabulary, start, [str(m.get(TEXT)) for m in examples],
                                [labels.index(g) for g in gold], len(labels), self._settings())
        self._labels = labels
        self.persist()
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        """Set each message's intent and its ranking over every intent."""
        if self._model is None:
            return messages
        for message in messages:
            probabilities = softmax(self._model.logits(str(message.get(TEXT) or "")), 1.0)
            ranking = [{INTENT_NAME_KEY: label, PREDICTED_CONFIDENCE_KEY: float(p)}
                       for label, p in sorted(zip(self._labels, probabilities, strict=True),
                                              key=lambda item: -item[1])]
            message.set(INTENT, dict(ranking[0]), add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def persist(self) -> None:
        """Write the vocabulary, the fine-tuned weights (.npz) and the labels (.json)."""
        if self._model is None:
            return
        with self._storage.write_to(self._resource) as directory:
            np.savez(directory / f"{MODEL_NAME}.npz", **self._model.vocabulary.arrays(),
                     **self._model.arrays())
            (directory / f"{MODEL_NAME}.json").write_text(
                json.dumps({"labels": self._labels}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> EncoderIntentClassifier:
        """The trained component, or an untrained one that leaves messages alone."""
        try:
            with model_storage.read_from(resource) as directory:
                meta = json.loads((directory / f"{MODEL_NAME}.json").read_text("utf-8"))
                with np.load(directory / f"{MODEL_NAME}.npz", allow_pickle=False) as stored:
                    arrays = {key: stored[key] for key in stored.files}
        except (FileNotFoundError, ValueError):  # not trained (too little data), or no resource
            logger.debug("EncoderIntentClassifier has no stored model")
            return cls(config, model_storage, resource)
        model = TrainedEncoder.from_arrays(Vocabulary.from_arrays(arrays), arrays)
        return cls(config, model_storage, resource, model, list(meta["labels"]))
