"""Fine-tune the small pretrained encoder and a softmax head on an assistant's intents.

TensorFlow (already installed with Rasa) runs the training; small_encoder runs the result in
numpy. Only the embeddings of pieces the examples use are trained; the model stores those
rows, the layer(s) and the head, and reads every other row from the shared vocabulary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from qunzhu.plugins.small_encoder import (
    LAYER_TENSORS,
    PAD,
    EncoderWeights,
    Vocabulary,
)

BUCKET = 8  # pad batches to a multiple of this, so TensorFlow traces a few shapes only
TARGET_STEPS = 300  # small data trains for more epochs, so that it sees as many updates


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how fast to fine-tune."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    dropout: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0

    def plan(self, examples: int) -> tuple[int, int]:
        """Batch size and epochs for this many examples (small sets: smaller batches, more
        epochs, so that a few-shot intent gets about as many updates as a large one)."""
        batch = self.batch_size if examples >= 1000 else max(8, self.batch_size // 2)
        batches = max(1, math.ceil(examples / batch))
        return batch, min(4 * self.epochs, max(self.epochs, math.ceil(TARGET_STEPS / batches)))


@dataclass
class TrainedEncoder:
    """The fine-tuned encoder: weights, the embedding rows it trained, and its head."""

    vocabulary: Vocabulary
    weights: EncoderWeights
    trained_ids: NDArray[np.int32]
    trained_rows: NDArray[np.float32]
    head: NDArray[np.float32]
    head_bias: NDArray[np.float32]

    def __post_init__(self) -> None:
        self._row_of = {int(piece): i for i, piece in enumerate(self.trained_ids)}

    def logits(self, text: str) -> NDArray[np.float32]:
        """One score per label for the text."""
        ids = self.vocabulary.ids(text)
        embedded = self.vocabulary.embeddings(ids)
        for position, piece in enumerate(ids):
            row = self._row_of.get(piece)
            if row is not None:
                embedded[position] = self.trained_rows[row]
        scores: NDArray[np.float32] = self.weights.pooled(embedded) @ self.head + self.head_bias
        return scores

    def arrays(self) -> dict[str, Any]:
        """What a model stores (the vocabulary comes from Vocabulary.arrays)."""
        return {**self.weights.arrays(), "trained_ids": self.trained_ids,
                "trained_rows": self.trained_rows.astype(np.float16), "head": self.head,
                "head_bias": self.head_bias}

    @classmethod
    def from_arrays(cls, vocabulary: Vocabulary, arrays: dict[str, Any]) -> TrainedEncoder:
        """Read what arrays() stored."""
        return cls(vocabulary, EncoderWeights.from_arrays(arrays),
                   np.asarray(arrays["trained_ids"], np.int32),
                   np.asarray(arrays["trained_rows"], np.float32),
                   np.asarray(arrays["head"], np.float32),
                   np.asarray(arrays["head_bias"], np.float32))


def _padded(sequences: Sequence[Sequence[int]]) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """A batch of id sequences padded to a multiple of BUCKET, and its mask."""
    width = BUCKET * math.ceil(max(map(len, sequences)) / BUCKET)
    ids = np.zeros((len(sequences), width), dtype=np.int32)
    mask = np.zeros((len(sequences), width), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = sequence
        mask[row, :len(sequence)] = 1.0
    return ids, mask


def fine_tune(vocabulary: Vocabulary, start: EncoderWeights, texts: Sequence[str],
              gold: Sequence[int], n_labels: int, settings: TrainingSettings) -> TrainedEncoder:
    """Fine-tune the encoder and a new head with AdamW, dropout and label smoothing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.random.set_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    sequences = [vocabulary.ids(text) for text in texts]
    used = sorted({piece for sequence in sequences for piece in sequence} | {PAD})
    local = {piece: i for i, piece in enumerate(used)}
    local_sequences = [[local[p] for p in sequence] for sequence in sequences]
    hidden = start.position.shape[1]
    head_size = hidden // start.heads
    limit = math.sqrt(6.0 / (hidden + n_labels))  # Glorot, as Keras starts a Dense layer
    variables: dict[str, tf.Variable] = {
        "word": tf.Variable(vocabulary.embeddings(used)),
        "position": tf.Variable(start.position),
        "embed_norm_w": tf.Variable(start.embed_norm_w),
        "embed_norm_b": tf.Variable(start.embed_norm_b),
        "head": tf.Variable(rng.uniform(-limit, limit, (hidden, n_labels)).astype(np.float32)),
        "head_bias": tf.Variable(np.zeros(n_labels, np.float32)),
    }
    for i, layer in enumerate(start.layers):
        for name in LAYER_TENSORS:
            variables[f"layer{i}.{name}"] = tf.Variable(layer[name])
    token_type = tf.constant(start.token_type)
    eps = start.eps
    rate = settings.dropout

    def norm(x: Any, weight: str, bias: str) -> Any:
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) / tf.sqrt(variance + eps) * variables[weight] + variables[bias]

    def forward(ids: Any, mask: Any, training: bool) -> Any:
        def drop(x: Any) -> Any:
            return tf.nn.dropout(x, rate) if training and rate > 0 else x

        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        x = tf.gather(variables["word"], ids) + variables["position"][None, :length] \
            + token_type
        x = drop(norm(x, "embed_norm_w", "embed_norm_b"))
        blocked = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(len(start.layers)):
            def project(name: str, value: Any, i: int = i) -> Any:
                return tf.matmul(value, variables[f"layer{i}.{name}.w"]) \
                    + variables[f"layer{i}.{name}.b"]

            def split(value: Any) -> Any:
                return tf.transpose(tf.reshape(value, [batch, length, start.heads, head_size]),
                                    [0, 2, 1, 3])

            q, k, v = (split(project(n, x)) for n in ("q", "k", "v"))
            attention = tf.nn.softmax(tf.matmul(q, k, transpose_b=True)
                                      / math.sqrt(head_size) + blocked)
            context = tf.reshape(tf.transpose(tf.matmul(attention, v), [0, 2, 1, 3]),
                                 [batch, length, hidden])
            x = norm(x + drop(project("ao", context)), f"layer{i}.aln.w", f"layer{i}.aln.b")
            x = norm(x + drop(project("fo", tf.nn.gelu(project("fi", x), approximate=False))),
                     f"layer{i}.oln.w", f"layer{i}.oln.b")
        pooled = tf.reduce_sum(x * mask[:, :, None], 1) / tf.reduce_sum(mask, 1, keepdims=True)
        return tf.matmul(drop(pooled), variables["head"]) + variables["head_bias"]

    batch_size, epochs = settings.plan(len(texts))
    steps = epochs * math.ceil(len(texts) / batch_size)
    schedule = tf.keras.optimizers.schedules.PolynomialDecay(settings.learning_rate, steps, 0.0)
    optimiser = tf.keras.optimizers.AdamW(learning_rate=schedule,
                                          weight_decay=settings.weight_decay)
    trainable = list(variables.values())
    smoothing = settings.label_smoothing

    @tf.autograph.experimental.do_not_convert  # type: ignore[untyped-decorator]
    def pairs(gradients: list[Any]) -> list[tuple[Any, Any]]:
        return list(zip(gradients, trainable, strict=True))

    @tf.function(reduce_retracing=True)  # type: ignore[untyped-decorator]
    def step(ids: Any, mask: Any, target: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = forward(ids, mask, training=True)
            soft = tf.one_hot(target, n_labels) * (1.0 - smoothing) + smoothing / n_labels
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(soft, logits))
        optimiser.apply_gradients(pairs(tape.gradient(loss, trainable)))
        return loss

    target = np.asarray(gold, dtype=np.int32)
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for begin in range(0, len(order), batch_size):
            rows = order[begin:begin + batch_size]
            ids, mask = _padded([local_sequences[r] for r in rows])
            step(tf.constant(ids), tf.constant(mask), tf.constant(target[rows]))

    def value(name: str) -> NDArray[np.float32]:
        result: NDArray[np.float32] = variables[name].numpy().astype(np.float32)
        return result

    layers = [{name: value(f"layer{i}.{name}") for name in LAYER_TENSORS}
              for i in range(len(start.layers))]
    weights = replace(start, position=value("position"), embed_norm_w=value("embed_norm_w"),
                      embed_norm_b=value("embed_norm_b"), layers=layers)
    trained = [p for p in used if p != PAD]
    trained_rows = value("word")[[local[p] for p in trained]]
    return TrainedEncoder(vocabulary, weights, np.array(trained, np.int32), trained_rows,
                          value("head"), value("head_bias"))
