"""The publisher's Rasa training cache, started from the one `make train` left.

Rasa skips training a component whose inputs have not changed when its cache has the result
(rasa.engine.caching: a SQLite table of fingerprints → result folders). The publisher keeps a
cache of its own (its trainings run on one thread, deterministically), which on a fresh
machine is empty: the first publish trained everything, dialogue policies included, and took
about 150 s where a later one takes about 40. `make run` and `make test` have just trained
the live model, so the publisher's first cache is that one's: the folders hard-linked (instant,
no space; Rasa never changes a cached folder, it only adds and removes whole ones) and the
SQLite table copied with its absolute paths pointed at the new place. A published model then
reuses exactly the components members are talking to now, and retrains what an edit changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

DB = "cache.db"  # rasa.engine.caching.DEFAULT_CACHE_NAME


def seed(cache: Path, source: Path) -> bool:
    """Fill an empty `cache` from `source`; False (and nothing changed) when there is no
    need or no way: the cache has results already, or the source has none."""
    if (cache / DB).exists() or not (source / DB).exists():
        return False
    staging = cache.with_name(f"{cache.name}.seeding")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging, copy_function=os.link,
                        ignore=shutil.ignore_patterns(f"{DB}*"))
        shutil.copy2(source / DB, staging / DB)  # a copy: its paths are rewritten below
        _repoint(staging / DB, source.resolve(), cache.resolve())
        shutil.rmtree(cache, ignore_errors=True)  # an empty folder left by an earlier run
        os.replace(staging, cache)
    except (OSError, sqlite3.Error) as exc:
        log.warning("could not start the publish cache from %s (%s); the first publish "
                    "trains everything", source, exc)
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def _repoint(db: Path, old: Path, new: Path) -> None:
    """Point every cached result's folder at the same name under `new`."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE cache_entry SET result_location = ? || substr(result_location, ?) "
            "WHERE substr(result_location, 1, ?) = ?",
            (str(new), len(str(old)) + 1, len(str(old)), str(old)))
    conn.close()
