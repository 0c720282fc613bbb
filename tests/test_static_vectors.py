"""The static vector table: it loads without pickles, places words by meaning, stays in models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qunzhu.plugins.ngram_features import NgramFeatures
from qunzhu.plugins.static_vectors import DEFAULT_TABLE, StaticVectors
from qunzhu.tools.distill_vectors import quantise, save_table


@pytest.fixture(scope="module")
def table() -> StaticVectors:
    return StaticVectors.load(DEFAULT_TABLE)


def similarity(table: StaticVectors, a: str, b: str) -> float:
    import jieba

    return float(table.message(a, jieba.lcut(a)) @ table.message(b, jieba.lcut(b)))


def test_shipped_table_has_every_common_character_and_unit_vectors(table: StaticVectors) -> None:
    assert all(c in table.index for c in "打卡领券抽奖积分门店几点开")
    assert table.size == 768
    vector = table.message("我要领券", ["我要", "领券"])
    assert vector.shape == (768,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_words_nobody_trained_on_land_near_their_meaning(table: StaticVectors) -> None:
    assert similarity(table, "黄疸", "肝炎怎么治") > similarity(table, "黄疸", "明天去北京的火车票")
    assert (similarity(table, "干锅香辣虾", "红烧肉怎么做")
            > similarity(table, "干锅香辣虾", "播放周杰伦的歌"))


def test_unknown_words_fall_back_to_characters_and_nothing_is_zero(table: StaticVectors) -> None:
    assert "福利官领券" not in table.index
    assert float(np.linalg.norm(table.message("福利官领券", ["福利官领券"]))) > 0.99
    assert float(np.linalg.norm(table.message("", []))) == 0
    assert float(np.linalg.norm(table.message("🙂🙂", ["🙂🙂"]))) == 0


def test_quantised_rows_keep_the_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 1, (50, 384)).astype(np.float32) + 3.0  # all pointing one way
    rows, scales = quantise(vectors)
    restored = rows.astype(np.float32) * scales[:, None]
    centred = vectors - vectors.mean(axis=0)
    assert np.abs(restored - centred).max() <= scales.max() / 2 + 1e-6
    save_table(tmp_path / "t.npz", [f"w{i}" for i in range(50)], vectors)
    loaded = StaticVectors.load(tmp_path / "t.npz")
    assert loaded.index["w7"] == 7 and np.array_equal(loaded.rows, rows)


def test_features_with_vectors_survive_a_round_trip(table: StaticVectors) -> None:
    texts, words = ["我要打卡", "领个券"], [["我要", "打卡"], ["领个", "券"]]
    features = NgramFeatures.fit(texts, words, (1, 2), (1, 1), table, 1.5)
    matrix = features.transform(texts, words)
    assert matrix.shape == (2, features.width) == (2, len(features.vocabulary) + 768)
    restored = NgramFeatures.restore(features.meta(), features.arrays())
    assert restored.vector_weight == 1.5
    assert np.allclose(restored.transform(texts, words).toarray(), matrix.toarray())
    without = NgramFeatures.fit(texts, words, (1, 2), (1, 1), table, 0.0)
    assert without.vectors is None and without.width == len(without.vocabulary)


def test_a_table_stored_twice_in_a_model_is_in_memory_once(table: StaticVectors) -> None:
    first = StaticVectors.from_arrays(table.arrays())
    again = StaticVectors.from_arrays({k: v.copy() for k, v in table.arrays().items()})
    assert first is again and first is not None
    other = {**table.arrays(), "vector_scales": table.scales * 2}
    assert StaticVectors.from_arrays(other) is not first
    assert StaticVectors.from_arrays({"idf": np.zeros(1)}) is None
