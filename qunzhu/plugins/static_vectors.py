"""A static table of Chinese character and word vectors: world knowledge at lookup speed.

N-grams only know the words the training data used; these vectors, distilled from a
multilingual sentence encoder (qunzhu/tools/distill_vectors.py), also place words nobody
trained on near the ones they resemble (黄疸 near 症状, 干锅香辣虾 near 菜). A message's
vector is the mean of its words' vectors (a word missing from the table by the mean of its
characters) beside the mean of its characters' vectors, scaled to unit length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qunzhu.plugins.shared_tables import restored_once

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "data" / "vectors" / "e5-small-zh.npz"


@dataclass
class StaticVectors:
    """Rows of int8 with a scale each, and the row of every character or word."""

    index: dict[str, int]
    rows: NDArray[np.int8]
    scales: NDArray[np.float32]

    @classmethod
    def load(cls, path: Path) -> StaticVectors:
        """Read a table written by distill_vectors (no pickles)."""
        with np.load(path, allow_pickle=False) as stored:
            words = [str(w) for w in stored["words"]]
            return cls({w: i for i, w in enumerate(words)}, stored["rows"], stored["scales"])

    @property
    def size(self) -> int:
        """Dimensions of one message's vector (words' mean, then characters' mean)."""
        return 2 * int(self.rows.shape[1])

    def _mean(self, rows: list[int]) -> NDArray[np.float32]:
        if not rows:
            return np.zeros(self.rows.shape[1], dtype=np.float32)
        picked = self.rows[rows].astype(np.float32) * self.scales[rows, None]
        mean: NDArray[np.float32] = picked.mean(axis=0)
        return mean

    def message(self, text: str, words: Sequence[str]) -> NDArray[np.float32]:
        """The message's vector: mean of word vectors ⊕ mean of character vectors, unit length."""
        word_vectors = []
        for word in words:
            row = self.index.get(word)
            if row is not None:
                word_vectors.append(self._mean([row]))
                continue
            characters = [self.index[c] for c in word if c in self.index]
            if characters:
                word_vectors.append(self._mean(characters))
        by_words = (np.mean(word_vectors, axis=0) if word_vectors
                    else np.zeros(self.rows.shape[1], dtype=np.float32))
        by_characters = self._mean([self.index[c] for c in text if c in self.index])
        joined = np.concatenate([by_words, by_characters]).astype(np.float32)
        norm = float(np.linalg.norm(joined))
        result: NDArray[np.float32] = joined / norm if norm else joined
        return result

    def arrays(self) -> dict[str, Any]:
        """What a model stores to rebuild the table."""
        words = sorted(self.index, key=self.index.__getitem__)
        return {"vector_words": np.array(words), "vector_rows": self.rows,
                "vector_scales": self.scales}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> StaticVectors | None:
        """The table stored by arrays(), or None when the model has none."""
        if "vector_rows" not in arrays:
            return None
        def build() -> StaticVectors:
            words = [str(w) for w in arrays["vector_words"]]
            return cls({w: i for i, w in enumerate(words)}, arrays["vector_rows"],
                       arrays["vector_scales"])

        return restored_once(arrays, ("vector_words", "vector_rows", "vector_scales"), build)
