"""What the n-gram intent classifier and FAQ selector share: config, training, storage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from qunzhu.plugins.ngram_features import message_tokens
from qunzhu.plugins.ngram_model import NgramModel, NgramSettings

logger = logging.getLogger(__name__)

Component = TypeVar("Component", bound="NgramComponent")

MODEL_DEFAULTS: dict[str, Any] = {
    "char_ngram_range": [1, 3],
    "word_ngram_range": [1, 2],
    "C": 1.0,
    "calibration_folds": 5,
    "ranking_length": 10,
    "vectors_path": None,
    "vector_weight": 0.0,
}


class NgramComponent(GraphComponent, IntentClassifier):
    """A Rasa component around one NgramModel, stored in its resource as .npz and JSON."""

    model_name = "ngram"

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage,
                 resource: Resource, model: NgramModel | None = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._model = model

    @classmethod
    def create(cls: type[Component], config: dict[str, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext) -> Component:
        """An untrained component."""
        return cls(config, model_storage, resource)

    def _fit(self, examples: list[Message], gold: list[str]) -> None:
        """Train the model on the examples' texts and tokens, and persist it."""
        self._model = NgramModel.fit([str(m.get(TEXT)) for m in examples],
                                     [message_tokens(m) for m in examples], gold,
                                     NgramSettings.from_config(self._config))
        self.persist()

    def _ranked(self, messages: list[Message]) -> list[list[tuple[str, float]]]:
        """Each message's labels with their probabilities, best first."""
        assert self._model is not None
        probabilities = self._model.probabilities(
            [str(m.get(TEXT) or "") for m in messages], [message_tokens(m) for m in messages])
        labels = self._model.labels
        return [sorted(zip(labels, row.tolist(), strict=True), key=lambda item: item[1],
                       reverse=True) for row in probabilities]

    def _ranking_length(self, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """The head of a ranking Rasa reports (all of it for ranking_length 0)."""
        length = int(self._config["ranking_length"])
        return ranked[:length] if length > 0 else ranked

    def persist(self) -> None:
        """Write the model (and what a subclass adds) into this component's resource."""
        if self._model is None:
            return
        with self._storage.write_to(self._resource) as directory:
            self._model.save(directory, self.model_name)
            self._save_extra(directory)

    def _save_extra(self, directory: Path) -> None:
        """What a subclass stores besides the model."""

    def _load_extra(self, directory: Path) -> None:
        """Read what _save_extra stored."""

    @classmethod
    def load(cls: type[Component], config: dict[str, Any], model_storage: ModelStorage,
             resource: Resource, execution_context: ExecutionContext,
             **kwargs: Any) -> Component:
        """The trained component, or an untrained one that leaves messages alone."""
        try:
            with model_storage.read_from(resource) as directory:
                component = cls(config, model_storage, resource,
                                NgramModel.load(directory, cls.model_name))
                component._load_extra(directory)
        except (ValueError, FileNotFoundError):
            logger.debug("%s was not trained; it leaves messages alone", cls.__name__)
            return cls(config, model_storage, resource)
        return component
