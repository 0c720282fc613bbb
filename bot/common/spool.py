"""A durable local-disk spool for what Redis could not take: callbacks and accepted posts.

When Redis is down the bridge still answers WeCom 200 and the API still answers 202, because
the record is on disk first: appended as one checksummed line and fsynced before we answer.
The spool is bounded (a full spool refuses, so the caller answers 503 and WeCom retries) and
survives a restart of the bridge (one directory per stable consumer name). A drainer moves
records into Redis in order once it answers; each record is applied idempotently (the
callback's dedupe mark, the post's fixed id), so a crash halfway through a drain, or a WeCom
retry of a spooled message, still makes exactly one turn or one post.

A record may carry `keys` (strings) under which `find` looks it up while it waits.

Layout: segment files `<seq>.spool`, each line `<crc32 hex> <json>\n`. Appends go to the
newest segment; a drain first seals it (later appends open the next one), then applies and
deletes sealed segments oldest first. A torn last line (a crash mid-append, never
acknowledged) fails its checksum and is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.common.outage import OutageLog

log = logging.getLogger(__name__)

SUFFIX = ".spool"
DRAIN_BATCH = 200

Record = dict[str, Any]
Apply = Callable[[list[Record]], Awaitable[None]]


class SpoolFull(Exception):
    """The spool reached its size bound (or the disk refused the write)."""


def encode(record: Record) -> bytes:
    """One spool line: checksum, space, compact JSON, newline."""
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode(line: bytes) -> Record | None:
    """The record of one line, or None for a torn or corrupted one."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_segment(path: Path) -> list[Record]:
    """Every intact record of a segment file, in order."""
    records: list[Record] = []
    with path.open("rb") as handle:
        for line in handle:
            record = decode(line)
            if record is None:
                log.warning("skipped a torn line in spool segment %s", path.name)
                continue
            records.append(record)
    return records


def _fsync_dir(directory: Path) -> None:
    """Make a created or deleted file name durable too, not only its bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class SpoolStats:
    """What the spool did since start, for /api/metrics (Redis may be down to count it)."""

    spooled: int = 0
    drained: int = 0
    refused_full: int = 0


class Spool:
    """Append-only, fsynced, bounded segments in one directory, drained in order."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.stats = SpoolStats()
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._handle: Any = None  # the open newest segment, if any
        segments = self._segments()
        self._seq = int(segments[-1].stem) + 1 if segments else 1
        self._bytes = sum(p.stat().st_size for p in segments)
        self._index: dict[str, Record] = {}  # a record's lookup keys → the record
        self._records = 0
        for path in segments:
            for record in read_segment(path):
                self._records += 1
                self._remember(record)
        if self._records:
            log.warning("spool has %d record(s) from before a restart; they will be drained",
                        self._records)

    def _segments(self) -> list[Path]:
        found = [p for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit()]
        return sorted(found, key=lambda p: int(p.stem))

    @property
    def pending(self) -> bool:
        """Records wait on disk: new ones must queue behind them to keep members' order."""
        return self._records > 0

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk (for metrics and the bound)."""
        return self._bytes

    @property
    def pending_records(self) -> int:
        """Records on disk not yet drained."""
        return self._records

    def _remember(self, record: Record) -> None:
        for key in record.get("keys") or ():
            self._index[str(key)] = record

    def _forget_key_of(self, record: Record) -> None:
        """Drop index entries of a drained record (read back from disk: a new object)."""
        for key in record.get("keys") or ():
            found = self._index.get(str(key))
            if found is not None and found == record:
                del self._index[str(key)]

    def find(self, key: str) -> Record | None:
        """The waiting record filed under one of its `keys` (e.g. a post id), if any."""
        return self._index.get(key)

    def records(self) -> list[Record]:
        """Every record waiting on disk, oldest first (status lookups, tests)."""
        out: list[Record] = []
        for path in self._segments():
            out += read_segment(path)
        return out

    async def put(self, record: Record) -> None:
        """Append one record durably (fsync) or raise SpoolFull; returns once it is on disk."""
        line = encode(record)
        async with self._lock:
            if self._bytes + len(line) > self.max_bytes:
                self.stats.refused_full += 1
                raise SpoolFull(f"spool is full ({self._bytes} of {self.max_bytes} bytes)")
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                self.stats.refused_full += 1
                raise SpoolFull(f"spool write failed: {type(exc).__name__}") from exc
            self._bytes += len(line)
            self._records += 1
            self._remember(record)
            self.stats.spooled += 1
        self._wake.set()

    def _append(self, line: bytes) -> None:
        if self._handle is None:
            path = self.directory / f"{self._seq:012d}{SUFFIX}"
            self._handle = path.open("ab")
            _fsync_dir(self.directory)
        try:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError:
            # The line may be half written: never append after it; a new segment starts.
            self._close_segment()
            raise

    def _close_segment(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None
            self._seq += 1

    async def _seal(self) -> list[Path]:
        """Close the newest segment so later appends start a new one; the sealed segments."""
        async with self._lock:
            self._close_segment()
            return [p for p in self._segments() if int(p.stem) < self._seq]

    async def drain(self, apply: Apply) -> int:
        """Apply sealed records in order (batches), deleting each segment once applied.

        `apply` must be idempotent: a failure leaves the segment on disk and the next drain
        applies its records again from the start. Returns how many records were applied.
        """
        applied = 0
        for path in await self._seal():
            records = read_segment(path)
            for start in range(0, len(records), DRAIN_BATCH):
                await apply(records[start:start + DRAIN_BATCH])
            size = path.stat().st_size
            path.unlink()
            await asyncio.to_thread(_fsync_dir, self.directory)
            async with self._lock:
                self._bytes -= size
                self._records -= len(records)
                for record in records:
                    self._forget_key_of(record)
            applied += len(records)
            self.stats.drained += len(records)
        return applied

    async def run(self, ready: Callable[[], Awaitable[bool]], apply: Apply,
                  stopping: asyncio.Event, every_s: float = 0.5) -> None:
        """Drain whenever records wait and `ready()` says Redis answers; until stopped."""
        outage = OutageLog("moving the spool into Redis", log)
        while not stopping.is_set():
            if self.pending:
                try:
                    if await ready():
                        drained = await self.drain(apply)
                        outage.ok()
                        if drained:
                            log.info("moved %d spooled record(s) into Redis", drained)
                except Exception as exc:  # Redis went away again, or a bad record: retry later
                    outage.failed(exc)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every_s)

    def close(self) -> None:
        """Close the open segment (shutdown)."""
        self._close_segment()
