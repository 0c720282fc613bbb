"""Tf-idf features over character and word n-grams, and static vectors, as plain arrays.

Characters see typos (领卷/领券) and words jieba splits differently; words see order. Both
use sublinear term frequency and l2 normalisation, as scikit-learn's TfidfVectorizer does.
Static vectors (static_vectors.py), when given, add what the words mean, weighted beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from scipy import sparse

from qunzhu.plugins.static_vectors import StaticVectors

WORD_JOINER = "\u0001"  # cannot occur in normalised chat text


def message_tokens(message: Message) -> list[str]:
    """The tokenizer's words for the message text (lower-cased), or none."""
    return [str(token.text).lower() for token in message.get(TOKENS_NAMES[TEXT]) or []
            if str(token.text).strip()]


def char_ngrams(text: str, low: int, high: int) -> list[str]:
    """Every character n-gram of the lower-cased text, whitespace kept as one space."""
    text = " ".join(text.lower().split())
    return [text[i:i + n] for n in range(low, high + 1) for i in range(len(text) - n + 1)]


def word_ngrams(words: Sequence[str], low: int, high: int) -> list[str]:
    """Every word n-gram, joined by a character no word contains."""
    return [WORD_JOINER.join(words[i:i + n]) for n in range(low, high + 1)
            for i in range(len(words) - n + 1)]


@dataclass
class NgramFeatures:
    """A fitted vocabulary (n-gram → column) with the idf of each column."""

    vocabulary: dict[str, int]
    idf: NDArray[Any]
    char_range: tuple[int, int]
    word_range: tuple[int, int]
    vectors: StaticVectors | None = None
    vector_weight: float = 0.0

    def grams(self, text: str, words: Sequence[str]) -> list[str]:
        """Character n-grams (prefixed c:) and word n-grams (prefixed w:) of one message."""
        return ([f"c:{g}" for g in char_ngrams(text, *self.char_range)]
                + [f"w:{g}" for g in word_ngrams(words, *self.word_range)])

    @classmethod
    def fit(cls, texts: Sequence[str], tokens: Sequence[Sequence[str]],
            char_range: tuple[int, int], word_range: tuple[int, int],
            vectors: StaticVectors | None = None, vector_weight: float = 0.0
            ) -> NgramFeatures:
        """Vocabulary and smoothed idf (log((1+n)/(1+df)) + 1) from the training texts."""
        empty = cls({}, np.zeros(0), (int(char_range[0]), int(char_range[1])),
                    (int(word_range[0]), int(word_range[1])))
        document_frequency: dict[str, int] = {}
        for text, words in zip(texts, tokens, strict=True):
            for gram in set(empty.grams(text, words)):
                document_frequency[gram] = document_frequency.get(gram, 0) + 1
        vocabulary = {gram: column for column, gram in enumerate(sorted(document_frequency))}
        df = np.array([document_frequency[g] for g in sorted(document_frequency)], dtype=float)
        idf = np.log((1 + len(texts)) / (1 + df)) + 1
        return cls(vocabulary, idf.astype(np.float32), empty.char_range, empty.word_range,
                   vectors if vector_weight > 0 else None, vector_weight)

    @property
    def width(self) -> int:
        """Columns of a transformed row."""
        return len(self.vocabulary) + (self.vectors.size if self.vectors else 0)

    def transform(self, texts: Sequence[str], tokens: Sequence[Sequence[str]]
                  ) -> sparse.csr_matrix:
        """Tf-idf rows, with the weighted static vectors beside them when there are any."""
        ngrams = self._tfidf(texts, tokens)
        if self.vectors is None:
            return ngrams
        dense = np.stack([self.vectors.message(t, w) for t, w in zip(texts, tokens,
                                                                      strict=True)])
        return sparse.hstack([ngrams, sparse.csr_matrix(dense * self.vector_weight)],
                             format="csr", dtype=np.float32)

    def _tfidf(self, texts: Sequence[str], tokens: Sequence[Sequence[str]]
               ) -> sparse.csr_matrix:
        """Rows of l2-normalised sublinear tf-idf; unknown n-grams are ignored."""
        indptr, indices, values = [0], [], []
        for text, words in zip(texts, tokens, strict=True):
            counts: dict[int, int] = {}
            for gram in self.grams(text, words):
                column = self.vocabulary.get(gram)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            columns = np.fromiter(counts, dtype=np.int32, count=len(counts))
            row = (1 + np.log(np.fromiter(counts.values(), dtype=np.float32,
                                          count=len(counts)))) * self.idf[columns]
            norm = float(np.linalg.norm(row))
            indices.append(columns)
            values.append(row / norm if norm else row)
            indptr.append(indptr[-1] + len(counts))
        return sparse.csr_matrix(
            (np.concatenate(values) if values else np.zeros(0, np.float32),
             np.concatenate(indices) if indices else np.zeros(0, np.int32), indptr),
            shape=(len(indptr) - 1, len(self.vocabulary)), dtype=np.float32)

    def arrays(self) -> dict[str, NDArray[Any]]:
        """What goes in the model's .npz."""
        return {"idf": self.idf, **(self.vectors.arrays() if self.vectors else {})}

    def meta(self) -> dict[str, Any]:
        """What goes in the model's JSON: the vocabulary in column order and the ranges."""
        return {"ngrams": sorted(self.vocabulary, key=self.vocabulary.__getitem__),
                "char_range": list(self.char_range), "word_range": list(self.word_range),
                "vector_weight": self.vector_weight if self.vectors else 0.0}

    @classmethod
    def restore(cls, meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> NgramFeatures:
        """The features persisted by arrays() and meta()."""
        vocabulary = {gram: column for column, gram in enumerate(meta["ngrams"])}
        vectors = StaticVectors.from_arrays(arrays)
        return cls(vocabulary, arrays["idf"], tuple(meta["char_range"]),
                   tuple(meta["word_range"]), vectors,
                   float(meta.get("vector_weight", 0.0)) if vectors else 0.0)
