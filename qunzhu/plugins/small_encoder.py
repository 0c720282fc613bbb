"""The bottom of a pretrained multilingual encoder, run in numpy: context for short messages.

Exported from multilingual-e5-small (qunzhu/tools/export_encoder.py): its unigram
tokenizer (SentencePiece's algorithm), the embeddings of the pieces Chinese members type, and
its first transformer layer(s). Fine-tuned per assistant by encoder_training; here it only
runs forward, one message at a time, in about a millisecond a layer on one core.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qunzhu.plugins.shared_tables import restored_once

DEFAULT_ENCODER = (Path(__file__).resolve().parents[2] / "data" / "encoders"
                   / "e5-small-zh-l1.npz")

# One layer's tensors, in the export's names; weights are stored (in, out).
LAYER_TENSORS = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                 "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")
# The export puts the specials first, in this order.
BOS, PAD, EOS, UNK = 0, 1, 2, 3
METASPACE = "\u2581"
MAX_PIECES = 128  # a longer message is cut: members' questions are a line or two
_SPACES = re.compile(" {2,}")


class Vocabulary:
    """Pieces with their unigram log-probabilities and int8 embeddings; splits text."""

    def __init__(self, pieces: Sequence[str], scores: NDArray[np.float32],
                 normalisation: dict[str, str], rows: NDArray[np.int8],
                 scales: NDArray[np.float32]) -> None:
        self.pieces = list(pieces)
        self.index = {piece: i for i, piece in enumerate(self.pieces) if i > UNK and piece}
        self.scores = [float(s) for s in scores]
        self.normalisation = normalisation
        self.rows = rows
        self.scales = scales
        self.unknown_score = min(self.scores) - 10.0
        self.longest = max(len(p) for p in self.index)

    def split(self, text: str) -> list[int]:
        """The most likely pieces of the text (SentencePiece unigram, nmt-NFKC, metaspace)."""
        normalised = "".join(self.normalisation.get(c, c) for c in text)
        normalised = _SPACES.sub(" ", normalised)
        if not normalised.startswith(" "):
            normalised = " " + normalised
        line = normalised.replace(" ", METASPACE)
        size = len(line)
        best = [-math.inf] * (size + 1)
        back_piece = [UNK] * (size + 1)
        back_from = [0] * (size + 1)
        best[0] = 0.0
        for start in range(size):
            if best[start] == -math.inf:
                continue
            for end in range(start + 1, min(size, start + self.longest) + 1):
                piece = self.index.get(line[start:end])
                if piece is not None:
                    score = best[start] + self.scores[piece]
                    if score > best[end]:
                        best[end], back_piece[end], back_from[end] = score, piece, start
            score = best[start] + self.unknown_score
            if score > best[start + 1]:
                best[start + 1], back_piece[start + 1], back_from[start + 1] = score, UNK, start
        pieces = []
        at = size
        while at > 0:
            pieces.append(back_piece[at])
            at = back_from[at]
        return pieces[::-1]

    def ids(self, text: str) -> list[int]:
        """The encoder's input: begin, the text's pieces (cut at MAX_PIECES), end."""
        return [BOS, *self.split(text)[:MAX_PIECES], EOS]

    def embeddings(self, ids: Sequence[int]) -> NDArray[np.float32]:
        """The pretrained embedding of each id, as float32."""
        rows = list(ids)
        picked: NDArray[np.float32] = (self.rows[rows].astype(np.float32)
                                       * self.scales[rows, None])
        return picked

    def arrays(self) -> dict[str, Any]:
        """What a model stores to rebuild the vocabulary."""
        return {"pieces": np.array(self.pieces), "scores": np.array(self.scores, np.float32),
                "norm_from": np.array(list(self.normalisation)),
                "norm_to": np.array(list(self.normalisation.values())),
                "word_rows": self.rows, "word_scales": self.scales}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Vocabulary:
        """The vocabulary stored by arrays() or exported, held once per process by content."""
        def build() -> Vocabulary:
            normalisation = {str(a): str(b) for a, b in zip(arrays["norm_from"],
                                                            arrays["norm_to"], strict=True)}
            return cls([str(p) for p in arrays["pieces"]], arrays["scores"], normalisation,
                       arrays["word_rows"], arrays["word_scales"])

        return restored_once(arrays, ("pieces", "word_rows", "word_scales"), build)


def layer_norm(x: NDArray[np.float32], weight: NDArray[np.float32], bias: NDArray[np.float32],
               eps: float) -> NDArray[np.float32]:
    """LayerNorm over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    result: NDArray[np.float32] = centred / np.sqrt(variance + eps) * weight + bias
    return result


def gelu(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """BERT's exact GELU."""
    from scipy.special import erf

    result: NDArray[np.float32] = 0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))
    return result


@dataclass
class EncoderWeights:
    """Everything the forward pass reads besides the vocabulary (float32)."""

    position: NDArray[np.float32]
    token_type: NDArray[np.float32]
    embed_norm_w: NDArray[np.float32]
    embed_norm_b: NDArray[np.float32]
    layers: list[dict[str, NDArray[np.float32]]]
    heads: int
    eps: float

    def __post_init__(self) -> None:
        """Fuse each layer's q, k and v: one matrix product a message instead of three."""
        for layer in self.layers:
            layer["qkv.w"] = np.ascontiguousarray(
                np.concatenate([layer["q.w"], layer["k.w"], layer["v.w"]], axis=1))
            layer["qkv.b"] = np.concatenate([layer["q.b"], layer["k.b"], layer["v.b"]])

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> EncoderWeights:
        """Read the export's (or a trained model's) arrays."""
        layers = []
        count = 0
        while f"layer{count}.q.w" in arrays:
            layers.append({name: np.asarray(arrays[f"layer{count}.{name}"], np.float32)
                           for name in LAYER_TENSORS})
            count += 1
        return cls(np.asarray(arrays["position"], np.float32),
                   np.asarray(arrays["token_type"], np.float32),
                   np.asarray(arrays["embed_norm_w"], np.float32),
                   np.asarray(arrays["embed_norm_b"], np.float32),
                   layers, int(arrays["heads"]), float(arrays["eps"]))

    def arrays(self) -> dict[str, Any]:
        """What a model stores (the layers as float16, as exported)."""
        stored: dict[str, Any] = {"position": self.position, "token_type": self.token_type,
                                  "embed_norm_w": self.embed_norm_w,
                                  "embed_norm_b": self.embed_norm_b,
                                  "heads": np.array(self.heads),
                                  "eps": np.array(self.eps, np.float32)}
        for i, layer in enumerate(self.layers):
            for name in LAYER_TENSORS:
                stored[f"layer{i}.{name}"] = layer[name].astype(np.float16)
        return stored

    def pooled(self, embedded: NDArray[np.float32]) -> NDArray[np.float32]:
        """Mean of the last layer's token states, for one message's embedded pieces."""
        length, hidden = embedded.shape
        head = hidden // self.heads
        x = layer_norm(embedded + self.position[:length] + self.token_type,
                       self.embed_norm_w, self.embed_norm_b, self.eps)
        for layer in self.layers:
            def project(name: str, value: NDArray[np.float32],
                        layer: dict[str, NDArray[np.float32]] = layer) -> NDArray[np.float32]:
                result: NDArray[np.float32] = value @ layer[f"{name}.w"] + layer[f"{name}.b"]
                return result

            def split(value: NDArray[np.float32]) -> NDArray[np.float32]:
                return value.reshape(length, self.heads, head).transpose(1, 0, 2)

            q, k, v = (split(part) for part in np.split(project("qkv", x), 3, axis=1))
            attention = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(head))
            attention = np.exp(attention - attention.max(axis=-1, keepdims=True))
            attention /= attention.sum(axis=-1, keepdims=True)
            context = (attention @ v).transpose(1, 0, 2).reshape(length, hidden)
            x = layer_norm(x + project("ao", context), layer["aln.w"], layer["aln.b"], self.eps)
            x = layer_norm(x + project("fo", gelu(project("fi", x))), layer["oln.w"],
                           layer["oln.b"], self.eps)
        pooled: NDArray[np.float32] = x.mean(axis=0)
        return pooled


def load_export(path: Path) -> tuple[Vocabulary, EncoderWeights]:
    """The exported encoder (data/encoders), as the starting point of fine-tuning."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    return Vocabulary.from_arrays(arrays), EncoderWeights.from_arrays(arrays)
