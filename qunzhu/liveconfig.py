"""Operator files kept live: reloaded when they change, the last good copy kept on disk.

An operator's mistake must never silence the groups. A file that fails validation is
reported (file:line:field) and ignored while the last configuration that passed keeps
serving — after a restart too, from the copy saved when it last passed. A process refuses
to start only when there has never been a good configuration.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from qunzhu import settings
from qunzhu.yamlconfig import ConfigError, read_text

log = logging.getLogger(__name__)

T = TypeVar("T")
Parse = Callable[[Path, str], T]
SETTLE_S = 0.3  # an editor may still be writing a file changed this recently


def keep_dir() -> Path:
    """Where last-good copies are kept: QZ_DATA_DIR/config."""
    data = Path(settings.get("QZ_DATA_DIR"))
    return (data if data.is_absolute() else settings.PROJECT_ROOT / data) / "config"


@dataclass(frozen=True)
class Problem:
    """A live file that is invalid now, while its last good version serves."""

    name: str
    path: Path
    message: str

    @property
    def fingerprint(self) -> str:
        """Stable id of this exact error, so it is announced once, not on every check."""
        return hashlib.sha256(f"{self.path}\n{self.message}".encode()).hexdigest()[:16]


class LiveFile(Generic[T]):
    """One operator file: its current valid value, reloaded when the file changes."""

    def __init__(self, name: str, path: Path, parse: Parse[T], *, keep: Path | None = None,
                 check_every_s: float = 1.0) -> None:
        self.name = name
        self.path = path
        self._parse = parse
        self._keep = (keep or keep_dir()) / (
            f"{path.stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
            f"{path.suffix}")
        self._check_every_s = check_every_s
        self._checked_at = time.monotonic()
        self._signature = self._stat()
        self.problem: Problem | None = None
        self._value = self._first_value()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _first_value(self) -> T:
        """The file if it is valid, else the last good copy; neither is a ConfigError."""
        try:
            value = self._load()
        except ConfigError as exc:
            if not self._keep.exists():
                raise
            try:
                value = self._parse(self.path, read_text(self._keep))
            except Exception:
                raise exc from None
            self._report(str(exc), serving="the last good version")
            return value
        return value

    def _load(self) -> T:
        """Parse the file once and keep that exact text as the last good copy."""
        text = read_text(self.path)
        try:
            value = self._parse(self.path, text)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{self.path}: cannot be read as configuration "
                              f"({type(exc).__name__})") from None
        self._save_good(text)
        self.problem = None
        return value

    def _save_good(self, text: str) -> None:
        """Keep the text (owner-only: groups files may hold webhook keys), atomically."""
        try:
            if self._keep.exists() and self._keep.read_text(encoding="utf-8") == text:
                return
            self._keep.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self._keep.parent, prefix=".tmp-")  # mode 0600
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._keep)
        except OSError as exc:  # serving matters more than the copy
            log.warning("cannot keep a copy of %s (%s)", self.path, exc.strerror)

    def _report(self, message: str, serving: str) -> None:
        problem = Problem(self.name, self.path, message)
        if self.problem != problem:
            log.error("%s is invalid; serving %s until it is fixed:\n%s",
                      self.path, serving, message)
        self.problem = problem

    @property
    def value(self) -> T:
        """The current valid configuration (checks the file at most once per interval)."""
        if time.monotonic() - self._checked_at >= self._check_every_s:
            self.refresh()
        return self._value

    def refresh(self) -> bool:
        """Reload if the file changed and is valid; True when the value changed."""
        self._checked_at = time.monotonic()
        signature = self._stat()
        if signature == self._signature:
            return False
        if signature is not None and time.time() - signature[0] / 1e9 < SETTLE_S:
            return False  # still being written: look again next time
        self._signature = signature
        try:
            value = self._load()
        except ConfigError as exc:
            self._report(str(exc), serving="the previous version")
            return False
        self._value = value
        log.info("%s reloaded", self.path)
        return True
