"""A linear SVM over character and word n-grams whose scores are calibrated probabilities.

Shared by the intent classifier and the FAQ selector. It trains in about a second and scores
a message in a fraction of a millisecond. Scores become probabilities by temperature scaling
fitted on out-of-fold scores (Guo et al. 2017), so a fallback threshold means the same
thing whatever the data. Stored as a .npz and a JSON file: no pickles in the model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from qunzhu.plugins.ngram_features import NgramFeatures
from qunzhu.plugins.static_vectors import StaticVectors

logger = logging.getLogger(__name__)


# Used when the data is too small to fit one: about what fitted models on the project's data
# and on SMP2017 come to (0.13–0.2), where 1.0 would flatten SVM margins of about ±1 into
# near-uniform probabilities and send everything to fallback.
DEFAULT_TEMPERATURE = 0.2


def softmax(scores: NDArray[Any], temperature: float) -> NDArray[Any]:
    """Row-wise softmax of scores divided by the temperature."""
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    result: NDArray[Any] = exp / exp.sum(axis=-1, keepdims=True)
    return result


def fit_temperature(scores: NDArray[Any], gold: NDArray[Any]) -> float:
    """The temperature that minimises the log-loss of out-of-fold scores."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(gold))

    def log_loss(log_t: float) -> float:
        probs = softmax(scores, float(np.exp(log_t)))
        return float(-np.log(np.clip(probs[rows, gold], 1e-12, None)).mean())

    found = minimize_scalar(log_loss, bounds=(np.log(0.01), np.log(10.0)), method="bounded")
    return float(np.exp(found.x))


@dataclass(frozen=True)
class NgramSettings:
    """What a component's config says about the model."""

    char_range: tuple[int, int] = (1, 3)
    word_range: tuple[int, int] = (1, 2)
    c: float = 1.0
    calibration_folds: int = 5
    vectors_path: str | None = None
    vector_weight: float = 0.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NgramSettings:
        """Read the component config: n-gram ranges, C, folds, the vectors and their weight."""
        low_c, high_c = config.get("char_ngram_range", cls.char_range)
        low_w, high_w = config.get("word_ngram_range", cls.word_range)
        path = config.get("vectors_path")
        return cls((int(low_c), int(high_c)), (int(low_w), int(high_w)),
                   float(config.get("C", cls.c)),
                   int(config.get("calibration_folds", cls.calibration_folds)),
                   str(path) if path else None, float(config.get("vector_weight") or 0.0))

    def vectors(self) -> StaticVectors | None:
        """The static vectors the config names (a relative path is from the working
        directory: the project for `make train`, the publisher's copy of it for a publish)."""
        if not self.vectors_path or self.vector_weight <= 0:
            return None
        return StaticVectors.load(Path(self.vectors_path))


def _fit_svm(matrix: sparse.csr_matrix, gold: NDArray[Any], n_labels: int, c: float
             ) -> tuple[NDArray[Any], NDArray[Any]]:
    """One-vs-rest linear SVM: weights (features × labels) and biases."""
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=c, random_state=0)
    svm.fit(matrix, gold)
    coef, intercept = svm.coef_, svm.intercept_
    if coef.shape[0] == 1:  # two labels: scikit-learn keeps one hyperplane
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]])
    weights = np.zeros((matrix.shape[1], n_labels), dtype=np.float32)
    bias = np.full(n_labels, -1e3, dtype=np.float32)  # a label absent from a fold never wins
    present = np.unique(gold)
    weights[:, present] = coef.T
    bias[present] = intercept
    return weights, bias


@dataclass
class NgramModel:
    """Fitted features, one weight column per label, and the calibration temperature."""

    features: NgramFeatures
    weights: NDArray[Any]
    bias: NDArray[Any]
    labels: list[str]
    temperature: float

    @classmethod
    def fit(cls, texts: Sequence[str], tokens: Sequence[Sequence[str]], gold: Sequence[str],
            settings: NgramSettings) -> NgramModel:
        """Train on labelled texts (two labels or more) and calibrate on held-out folds."""
        labels = sorted(set(gold))
        if len(labels) < 2:
            raise ValueError("an n-gram model needs two labels or more")
        target = np.array([labels.index(label) for label in gold])
        features = NgramFeatures.fit(texts, tokens, settings.char_range, settings.word_range,
                                     settings.vectors(), settings.vector_weight)
        matrix = features.transform(texts, tokens)
        weights, bias = _fit_svm(matrix, target, len(labels), settings.c)
        temperature = _calibrate(matrix, target, len(labels), settings)
        return cls(features, weights, bias, labels, temperature)

    def probabilities(self, texts: Sequence[str], tokens: Sequence[Sequence[str]]
                      ) -> NDArray[Any]:
        """Calibrated probabilities, one row per text, one column per label.

        A message with nothing the model knows (no known n-gram, no word in the vector
        table: "🙂", an unseen script, an empty text) gets uniform probabilities rather than
        the biases' opinion, so the FallbackClassifier catches it.
        """
        matrix = self.features.transform(texts, tokens)
        probabilities = softmax(np.asarray(matrix @ self.weights + self.bias), self.temperature)
        unknown = np.diff(matrix.indptr) == 0
        probabilities[unknown] = 1.0 / len(self.labels)
        return probabilities

    def save(self, directory: Path, name: str) -> None:
        """Write <name>.npz (arrays) and <name>.json (vocabulary, labels, temperature)."""
        np.savez(directory / f"{name}.npz", weights=self.weights, bias=self.bias,
                 **self.features.arrays())
        meta = {"labels": self.labels, "temperature": self.temperature,
                **self.features.meta()}
        (directory / f"{name}.json").write_text(json.dumps(meta, ensure_ascii=False),
                                                encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, name: str) -> NgramModel:
        """Read what save() wrote; FileNotFoundError when it wrote nothing."""
        meta = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        with np.load(directory / f"{name}.npz", allow_pickle=False) as arrays:
            stored = {key: arrays[key] for key in arrays.files}
        return cls(NgramFeatures.restore(meta, stored), stored["weights"], stored["bias"],
                   list(meta["labels"]), float(meta["temperature"]))


def _calibrate(matrix: sparse.csr_matrix, target: NDArray[Any], n_labels: int,
               settings: NgramSettings) -> float:
    """Temperature from out-of-fold scores of the examples whose label the fold saw."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    # StratifiedKFold needs at least one label with as many examples as folds
    folds = min(settings.calibration_folds, int(np.bincount(target).max()))
    if folds < 2:
        logger.warning("too few examples to calibrate confidences; using temperature %s",
                       DEFAULT_TEMPERATURE)
        return DEFAULT_TEMPERATURE
    scores = np.zeros((len(target), n_labels), dtype=np.float32)
    usable = np.zeros(len(target), dtype=bool)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    with warnings.catch_warnings():  # labels with fewer examples than folds are expected
        warnings.simplefilter("ignore", UserWarning)
        splits = list(splitter.split(np.zeros(len(target)), target))
    for fit_rows, held_rows in splits:
        if len(np.unique(target[fit_rows])) < 2:
            continue
        weights, bias = _fit_svm(matrix[fit_rows], target[fit_rows], n_labels, settings.c)
        scores[held_rows] = matrix[held_rows] @ weights + bias
        usable[held_rows] = np.isin(target[held_rows], target[fit_rows])
    if usable.sum() < 2:
        return DEFAULT_TEMPERATURE
    return fit_temperature(scores[usable], target[usable])
