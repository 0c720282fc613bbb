"""The publisher's first training cache is `make train`'s: Rasa finds every result in it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qunzhu.tools import trainingcache


class Note:
    """A Cacheable result as Rasa's graph components write one: a folder with a file."""

    def __init__(self, text: str) -> None:
        self.text = text

    def to_cache(self, directory: Path, model_storage: Any) -> None:
        (directory / "note.txt").write_text(self.text, "utf-8")

    @classmethod
    def from_cache(cls, node_name: str, directory: Path, model_storage: Any,
                   output_fingerprint: str) -> Note:
        return cls((directory / "note.txt").read_text("utf-8"))


def _cache(location: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from rasa.engine.caching import LocalTrainingCache

    monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(location))
    return LocalTrainingCache()


def test_every_result_of_the_source_is_found_in_the_seeded_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, seeded = tmp_path / "cache", tmp_path / "publish-cache"
    made = _cache(source, monkeypatch)
    for i in range(3):
        made.cache_output(f"key{i}", Note(f"结果 {i}"), f"out{i}", None)
    assert trainingcache.seed(seeded, source)
    cache = _cache(seeded, monkeypatch)
    for i in range(3):
        assert cache.get_cached_output_fingerprint(f"key{i}") == f"out{i}"
        found = cache.get_cached_result(f"out{i}", "node", None)
        assert isinstance(found, Note) and found.text == f"结果 {i}"
    with sqlite3.connect(seeded / "cache.db") as conn:
        places = [row[0] for row in conn.execute("SELECT result_location FROM cache_entry")]
    assert all(p.startswith(str(seeded.resolve()) + os.sep) for p in places), places
    # Hard links: the source keeps its own, and the seeded cache can drop entries freely.
    note = next(seeded.glob("tmp*/note.txt"))
    assert note.stat().st_nlink == 2
    cache.cache_output("key9", Note("新的"), "out9", None)
    assert _cache(source, monkeypatch).get_cached_output_fingerprint("key9") is None


def test_relative_paths_as_make_train_records_them_are_found_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rasa's default cache location is relative (.rasa/cache), and so are its rows."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    made = _cache(Path(".rasa/cache"), monkeypatch)
    made.cache_output("k", Note("相对路径"), "out", None)
    with sqlite3.connect(project / ".rasa/cache/cache.db") as conn:
        (recorded,) = conn.execute("SELECT result_location FROM cache_entry").fetchone()
    assert not Path(recorded).is_absolute(), recorded
    seeded = project / ".rasa/publish-cache"
    assert trainingcache.seed(seeded, project / ".rasa/cache", base=project)
    monkeypatch.chdir(tmp_path)  # the publisher trains in a folder of its own
    found = _cache(seeded, monkeypatch).get_cached_result("out", "node", None)
    assert isinstance(found, Note) and found.text == "相对路径"


def test_a_cache_with_results_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, seeded = tmp_path / "cache", tmp_path / "publish-cache"
    _cache(source, monkeypatch).cache_output("a", Note("make train"), "out-a", None)
    _cache(seeded, monkeypatch).cache_output("b", Note("publisher"), "out-b", None)
    assert not trainingcache.seed(seeded, source)
    cache = _cache(seeded, monkeypatch)
    assert cache.get_cached_output_fingerprint("a") is None
    assert cache.get_cached_output_fingerprint("b") == "out-b"


def test_no_source_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    seeded = tmp_path / "publish-cache"
    seeded.mkdir()
    assert not trainingcache.seed(seeded, tmp_path / "nothing-trained-yet")
    assert list(seeded.iterdir()) == []
    assert not (tmp_path / "publish-cache.seeding").exists()
