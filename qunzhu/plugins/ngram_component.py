"""What the n-gram intent classifier and FAQ selector share: config, training, storage."""

from __future__ import annotations

import functools
import hashlib
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


# Part of every cached training's key: bump it when the model's maths or files change.
MODEL_VERSION = "1"


@functools.lru_cache(maxsize=4)
def _content_digest(path: str, mtime_ns: int, size: int) -> str:
    """A file's sha256, read once per version of it (both components ask at every training)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_fingerprint(version: str, path: str | None) -> str:
    """A component's code version and the content of the data file it reads: Rasa's training
    cache looks only at the config and the data, and would restore a model of an older file."""
    if not path or not Path(path).is_file():
        return version
    stat = Path(path).stat()
    return f"{version}:{_content_digest(str(path), stat.st_mtime_ns, stat.st_size)}"


class NgramComponent(GraphComponent, IntentClassifier):
    """A Rasa component around one NgramModel, stored in its resource as .npz and JSON."""

    model_name = "ngram"

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The code version and the vector table's content."""
        return file_fingerprint(MODEL_VERSION, config.get("vectors_path"))

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
        with self._storage.write_to(self._resource) as directory:
            if self._model is not None:
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
        component = cls(config, model_storage, resource)
        try:
            with model_storage.read_from(resource) as directory:
                component._load_extra(directory)
                component._model = NgramModel.load(directory, cls.model_name)
        except FileNotFoundError:  # trained on too little data: nothing was stored
            logger.debug("%s was not trained", cls.__name__)
        except ValueError:  # Rasa's "no such resource"
            logger.debug("%s has no stored model", cls.__name__)
        return component
