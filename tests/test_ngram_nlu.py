"""The n-gram intent classifier and FAQ selector: features, calibration, storage, Rasa output."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfVectorizer

from qunzhu.plugins.ngram_features import NgramFeatures, char_ngrams, word_ngrams
from qunzhu.plugins.ngram_intent import NgramIntentClassifier
from qunzhu.plugins.ngram_model import NgramModel, NgramSettings, fit_temperature, softmax
from qunzhu.plugins.ngram_selector import NgramResponseSelector

TRAINING = {
    "checkin": ["打卡", "我要打卡", "签到", "今天签到", "帮我打个卡", "打卡打卡"],
    "coupon": ["领券", "我要领优惠券", "有券吗", "给我一张券", "领个券", "优惠券在哪领"],
    "draw": ["抽奖", "我要抽奖", "抽一次", "来抽个奖", "今天还能抽奖吗", "抽个大奖"],
}
FAQ = {
    "faq/opening_hours": ["几点开门", "营业时间", "你们几点关门", "周末开门吗", "晚上开到几点"],
    "faq/invoice": ["怎么开发票", "能开发票吗", "电子发票", "发票抬头怎么填", "报销要发票"],
}


@functools.cache
def jieba() -> JiebaTokenizer:
    """Rasa's JiebaTokenizer, as the pipeline runs it before the n-gram components."""
    storage = LocalModelStorage(Path(tempfile.mkdtemp(prefix="qz-jieba-")))
    return JiebaTokenizer.create(JiebaTokenizer.get_default_config(), storage,
                                 Resource("jieba"), _context())


def tokens(text: str) -> list[str]:
    """What JiebaTokenizer gives the components."""
    message = Message(data={"text": text})
    jieba().process([message])
    return [t.text for t in message.get("text_tokens")]


def test_features_equal_scikit_learns_tfidf() -> None:
    texts = [text for examples in TRAINING.values() for text in examples]
    words = [tokens(t) for t in texts]
    ours = NgramFeatures.fit(texts, words, (1, 3), (1, 2))
    reference = TfidfVectorizer(analyzer=lambda i: ours.grams(texts[i], words[i]),
                                sublinear_tf=True)
    expected = reference.fit_transform(range(len(texts)))
    got = ours.transform(texts, words)
    order = [reference.vocabulary_[g] for g in sorted(ours.vocabulary,
                                                      key=ours.vocabulary.__getitem__)]
    assert np.allclose(got.toarray(), expected.toarray()[:, order], atol=1e-6)


def test_ngrams_of_characters_and_words() -> None:
    assert char_ngrams("领 券", 1, 2) == ["领", " ", "券", "领 ", " 券"]
    assert char_ngrams("ABC", 2, 2) == ["ab", "bc"]
    assert word_ngrams(["我要", "领", "券"], 2, 2) == ["我要\x01领", "领\x01券"]


def test_unknown_text_is_an_empty_row_not_an_error() -> None:
    features = NgramFeatures.fit(["打卡"], [["打卡"]], (1, 2), (1, 1))
    row = features.transform(["🙂", ""], [["🙂"], []])
    assert row.shape == (2, len(features.vocabulary)) and row.nnz == 0


def _fit(data: dict[str, list[str]], settings: NgramSettings | None = None) -> NgramModel:
    texts = [t for examples in data.values() for t in examples]
    gold = [label for label, examples in data.items() for _ in examples]
    return NgramModel.fit(texts, [tokens(t) for t in texts], gold, settings or NgramSettings())


def test_model_learns_unseen_wordings_and_its_probabilities_sum_to_one() -> None:
    model = _fit(TRAINING)
    asked = ["帮我签个到", "我想领券", "能抽奖吗"]
    probabilities = model.probabilities(asked, [tokens(t) for t in asked])
    assert [model.labels[i] for i in probabilities.argmax(axis=1)] == ["checkin", "coupon",
                                                                       "draw"]
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert 0.01 <= model.temperature <= 10


def test_model_saved_and_loaded_scores_the_same(tmp_path: Path) -> None:
    model = _fit(TRAINING)
    model.save(tmp_path, "m")
    assert not list(tmp_path.glob("*.pkl"))
    loaded = NgramModel.load(tmp_path, "m")
    asked = ["打卡", "抽奖吧", "完全无关的话"]
    words = [tokens(t) for t in asked]
    assert np.allclose(loaded.probabilities(asked, words), model.probabilities(asked, words))
    assert loaded.labels == model.labels


def test_a_label_with_one_example_still_trains_and_calibrates() -> None:
    model = _fit({**TRAINING, "handoff": ["转人工"]})
    assert "handoff" in model.labels and model.temperature != 1.0
    with pytest.raises(ValueError):
        _fit({"checkin": TRAINING["checkin"]})


def test_temperature_fits_overconfident_and_underconfident_scores() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 600)
    noisy = rng.normal(0, 1, (600, 3))
    noisy[np.arange(600), gold] += 1.0  # right about 70 % of the time
    assert fit_temperature(noisy * 10, gold) > 5  # scores ten times too sharp: cooled
    assert fit_temperature(noisy / 10, gold) < 0.2  # ten times too flat: sharpened
    assert np.allclose(softmax(np.array([[1.0, 1.0]]), 1.0), [[0.5, 0.5]])


@pytest.fixture
def storage(tmp_path: Path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


def _context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test")


def _messages(data: dict[str, list[str]]) -> TrainingData:
    examples = []
    for label, texts in data.items():
        intent, _, key = label.partition("/")
        for text in texts:
            fields = {"text": text, "intent": intent}
            if key:
                fields["intent_response_key"] = label
            examples.append(Message(data=fields))
    training = TrainingData(examples, responses={
        f"utter_{k}": [{"text": f"答案 {k}"}] for k in FAQ})
    jieba().process_training_data(training)
    return training


def _parsed(*texts: str, intent: str | None = None) -> list[Message]:
    messages = [Message(data={"text": t}) for t in texts]
    jieba().process(messages)
    if intent:
        for m in messages:
            m.set("intent", {"name": intent, "confidence": 0.9})
    return messages


def test_classifier_trains_persists_and_sets_rasas_fields(storage: LocalModelStorage) -> None:
    resource = Resource("ngram_intent")
    config = {**NgramIntentClassifier.get_default_config(), "ranking_length": 2}
    NgramIntentClassifier.create(config, storage, resource, _context()).train(
        _messages({**TRAINING, "faq": FAQ["faq/invoice"]}))
    loaded = NgramIntentClassifier.load(config, storage, resource, _context())
    [message] = loaded.process(_parsed("我要签到"))
    assert message.get("intent")["name"] == "checkin"
    ranking = message.get("intent_ranking")
    assert len(ranking) == 2 and ranking[0] == message.get("intent")
    assert ranking[0]["confidence"] >= ranking[1]["confidence"]


def test_previous_classifier_is_blended_in(storage: LocalModelStorage) -> None:
    resource = Resource("blend")
    config = {**NgramIntentClassifier.get_default_config(), "previous_classifier_weight": 0.5}
    component = NgramIntentClassifier.create(config, storage, resource, _context())
    component.train(_messages(TRAINING))
    alone = {r["name"]: r["confidence"]
             for r in component.process(_parsed("抽奖"))[0].get("intent_ranking")}
    [message] = _parsed("抽奖")
    message.set("intent_ranking", [{"name": "checkin", "confidence": 1.0}])
    blended = {r["name"]: r["confidence"] for r in component.process([message])[0]
               .get("intent_ranking")}
    assert blended["draw"] == pytest.approx(alone["draw"] / 2)
    assert blended["checkin"] == pytest.approx(0.5 + alone["checkin"] / 2)


def test_selector_answers_only_faq_messages_in_rasas_format(
        storage: LocalModelStorage) -> None:
    resource = Resource("ngram_selector")
    config = NgramResponseSelector.get_default_config()
    NgramResponseSelector.create(config, storage, resource, _context()).train(
        _messages({**TRAINING, **FAQ}))
    selector = NgramResponseSelector.load(config, storage, resource, _context())
    faq, other = _parsed("你们几点开门", intent="faq") + _parsed("打卡", intent="checkin")
    assert selector.process([faq, other]) == [faq, other]
    assert other.get("response_selector") is None
    chosen = faq.get("response_selector")
    assert chosen["all_retrieval_intents"] == ["faq"]
    response = chosen["faq"]["response"]
    assert response["intent_response_key"] == "faq/opening_hours"
    assert response["utter_action"] == "utter_faq/opening_hours"
    assert response["responses"] == [{"text": "答案 faq/opening_hours"}]
    assert 0.5 < response["confidence"] <= 1
    keys = [r["intent_response_key"] for r in chosen["faq"]["ranking"]]
    assert keys == ["faq/opening_hours", "faq/invoice"]


def test_a_message_the_model_knows_nothing_of_is_not_confident() -> None:
    model = _fit(TRAINING)
    asked = ["", "🙂🙂", "ᠮᠣᠩᠭᠣᠯ"]  # empty (a bare @-mention), emoji only, an unseen script
    probabilities = model.probabilities(asked, [tokens(t) if t else [] for t in asked])
    assert np.allclose(probabilities, 1 / 3)


@pytest.mark.parametrize("per_label", [1, 2, 4])
def test_labels_smaller_than_the_folds_still_train(per_label: int) -> None:
    small = {label: texts[:per_label] for label, texts in TRAINING.items()}
    model = _fit(small)
    assert model.labels == ["checkin", "coupon", "draw"]
    assert 0.01 <= model.temperature <= 10


def test_untrained_classifier_says_it_has_no_intent(storage: LocalModelStorage) -> None:
    resource = Resource("never_trained")
    config = NgramIntentClassifier.get_default_config()
    component = NgramIntentClassifier.create(config, storage, resource, _context())
    component.train(_messages({"checkin": TRAINING["checkin"]}))  # one intent: no model
    loaded = NgramIntentClassifier.load(config, storage, resource, _context())
    [message] = loaded.process(_parsed("打卡"))
    assert message.get("intent") == {"name": None, "confidence": 0.0}
    assert message.get("intent_ranking") == []


def test_a_single_faq_key_is_always_the_answer(storage: LocalModelStorage) -> None:
    resource = Resource("one_key")
    config = NgramResponseSelector.get_default_config()
    only = {"faq/invoice": FAQ["faq/invoice"]}
    NgramResponseSelector.create(config, storage, resource, _context()).train(
        _messages({**TRAINING, **only}))
    selector = NgramResponseSelector.load(config, storage, resource, _context())
    [faq] = selector.process(_parsed("发票呢", intent="faq"))
    response = faq.get("response_selector")["faq"]["response"]
    assert (response["intent_response_key"], response["confidence"]) == ("faq/invoice", 1.0)


def test_the_training_cache_key_follows_the_vector_table(tmp_path: Path) -> None:
    table = tmp_path / "v.npz"
    table.write_bytes(b"one")
    config = {"vectors_path": str(table)}
    first = NgramIntentClassifier.fingerprint_addon(config)
    table.write_bytes(b"two")
    assert NgramIntentClassifier.fingerprint_addon(config) != first
    no_table = NgramResponseSelector.fingerprint_addon({})
    assert NgramIntentClassifier.fingerprint_addon({}) == no_table


def test_a_message_the_ngrams_know_nothing_of_is_not_rescued_by_the_blend(
        storage: LocalModelStorage) -> None:
    resource = Resource("blend_unknown")
    config = {**NgramIntentClassifier.get_default_config(), "previous_classifier_weight": 0.4}
    component = NgramIntentClassifier.create(config, storage, resource, _context())
    component.train(_messages(TRAINING))
    [message] = _parsed("🫠🫠")
    message.set("intent_ranking", [{"name": "draw", "confidence": 0.99}])
    [parsed] = component.process([message])
    assert parsed.get("intent")["confidence"] == pytest.approx(1 / 3)  # fallback, not a guess
