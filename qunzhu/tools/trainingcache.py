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


def seed(cache: Path, source: Path, *, base: Path | None = None) -> bool:
    """Fill an empty `cache` from `source`; False (and nothing changed) when there is no
    need or no way: the cache has results already, or the source has none.

    `base` is the folder relative result paths are relative to (where `make train` ran:
    Rasa records `.rasa/cache/tmp…` unless RASA_CACHE_DIRECTORY is absolute).
    """
    if (cache / DB).exists() or not (source / DB).exists():
        return False
    base = base or source.parent.parent
    staging = cache.with_name(f"{cache.name}.seeding")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        # The table first, as one consistent snapshot: a folder a row names was moved into
        # place before the row was written, so it is complete when linked below.
        with sqlite3.connect(source / DB) as live, sqlite3.connect(staging / DB) as copy:
            live.backup(copy)
        live.close()
        copy.close()
        for folder in source.iterdir():
            if folder.is_dir():
                shutil.copytree(folder, staging / folder.name, copy_function=os.link)
        _repoint(staging / DB, source, cache, base)
        shutil.rmtree(cache, ignore_errors=True)  # an empty folder left by an earlier run
        os.replace(staging, cache)
    except (OSError, sqlite3.Error) as exc:
        log.warning("could not start the publish cache from %s (%s); the first publish "
                    "trains everything", source, exc)
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def _repoint(db: Path, source: Path, cache: Path, base: Path) -> None:
    """Point every cached result's folder at the same folder under `cache` (absolute)."""
    old, new = source.resolve(), cache.resolve()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rowid, result_location FROM cache_entry "
                            "WHERE result_location IS NOT NULL").fetchall()
        for rowid, location in rows:
            path = Path(location)
            found = (path if path.is_absolute() else base / path).resolve()
            moved = new / found.relative_to(old) if found.is_relative_to(old) else None
            conn.execute("UPDATE cache_entry SET result_location = ? WHERE rowid = ?",
                         (str(moved) if moved else None, rowid))
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("the copied cache table is damaged")
    conn.close()
