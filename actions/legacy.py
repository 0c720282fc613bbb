"""Move game state from the one-slot layout to today's keys, once, before the actions serve.

Until the keys were spread over Redis Cluster slots every game key of a brand shared the hash
tag `{<brand>}` (`qz:{brand}:member:<user>` and so on). This copies each into its place in
`actions.gamekeys` — values, expiry and stream entry ids kept — then deletes the old key.
Every step is safe to repeat: a copy that already exists is kept (it was made by an earlier,
interrupted run and nothing else writes before this finishes), ledger entries already moved
are refused by their ids. A marker key records that the brand is done, so later starts skip
the scan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from redis.exceptions import ResponseError

from actions.gamekeys import GameKeys
from actions.store import IDEMPOTENCY_TTL_S
from qunzhu.redisconn import REDIS_DOWN, SyncRedis, text_of

log = logging.getLogger(__name__)

LAYOUT = "slots-v2"
PAGE = 500
LOCK_TTL_S = 600


def marker(brand: str) -> str:
    """Present once a brand's keys are in today's layout."""
    return f"qz:{{{brand}:meta}}:layout"


def _new_name(keys: GameKeys, rest: str) -> str | None:
    """Today's name of an old key (given without its `qz:{brand}:` prefix), if it is a game key
    that moves as a whole; None for the ones moved entry by entry or not ours."""
    kind, _, tail = rest.partition(":")
    if kind == "member" and tail:
        return keys.member(tail)
    if kind == "wallet" and tail:
        return keys.wallet(tail)
    if kind == "draws" and ":" in tail:
        user, day = tail.rsplit(":", 1)
        return keys.draws(user, day)
    if kind == "idem" and tail.count(":") >= 2:
        op, user, msgid = tail.split(":", 2)
        return keys.result(op, user, msgid)
    if kind == "lb" and tail:
        return keys.leaderboard(tail)
    if kind == "lbseq" and tail:
        return keys.leaderboard_seq(tail)
    if kind == "coupon" and tail.endswith((":issued", ":claims")):
        campaign, what = tail.rsplit(":", 1)
        return keys.issued(campaign) if what == "issued" else keys.claims(campaign)
    if rest == "reward:issued":
        return keys.rewards_issued
    if rest == "prize:issued":
        return keys.prizes_issued
    if rest == "drawlog":
        return keys.drawlog
    return None


def _move(r: SyncRedis, old: str, new: str) -> bool:
    """Copy a key with its expiry under a new name (any slot), then drop the old one."""
    payload = r.dump(old)
    ttl = int(r.pttl(old))
    if payload is None or ttl == -2:  # gone, or expired between the two reads
        return False
    try:
        r.restore(new, max(ttl, 0), payload)
        moved = True
    except ResponseError as exc:
        if "BUSYKEY" not in str(exc):
            raise
        moved = False  # copied by an earlier run that stopped before deleting the old key
    r.delete(old)
    return moved


def _move_codes(r: SyncRedis, keys: GameKeys, old: str) -> int:
    """The one hash of every code → owner becomes one small key per code."""
    moved = 0
    for code, owner in r.hscan_iter(old, count=PAGE):
        moved += int(bool(r.hsetnx(keys.code(text_of(code)), "owner", text_of(owner))))
    r.delete(old)
    return moved


def _stream_pages(r: SyncRedis, stream: str) -> Iterator[list[tuple[str, dict[str, str]]]]:
    start = "-"
    while True:
        rows: Any = r.xrange(stream, min=start, max="+", count=PAGE)
        if not rows:
            return
        yield [(text_of(i), {text_of(k): text_of(v) for k, v in f.items()}) for i, f in rows]
        if len(rows) < PAGE:
            return
        start = "(" + text_of(rows[-1][0])


def _mark_counted(r: SyncRedis, keys: GameKeys, entry_id: str, fields: dict[str, str]) -> None:
    """A recent check-in was already on its group's leaderboard: a retry of its message,
    replayed from the moved result, must not count it again."""
    group, msgid = fields.get("group", ""), fields.get("msgid", "")
    if fields.get("reason") != "checkin" or not group or not msgid:
        return
    age_s = time.time() - int(entry_id.split("-", 1)[0]) / 1000
    ttl = int(IDEMPOTENCY_TTL_S - age_s)
    if ttl > 0:
        r.set(keys.counted(group, fields["user"], msgid), "1", ex=ttl, nx=True)


def _move_ledger(r: SyncRedis, keys: GameKeys, old: str) -> int:
    """The brand's one ledger becomes one per member, entry ids kept (so a rerun skips)."""
    moved = 0
    for page in _stream_pages(r, old):
        for entry_id, fields in page:
            user = fields.get("user", "")
            if not user:
                continue
            _mark_counted(r, keys, entry_id, fields)
            try:
                r.xadd(keys.ledger(user), fields, id=entry_id)
                moved += 1
            except ResponseError as exc:
                if "equal or smaller" not in str(exc):
                    raise
    r.delete(old)
    return moved


def lock(brand: str) -> str:
    """Held by the one process moving a brand's keys (others wait for the marker)."""
    return f"qz:{{{brand}:meta}}:moving"


def migrate(r: SyncRedis, brand: str, *, wait_s: float = 1.0) -> dict[str, int]:
    """Move a brand's game keys from the one-slot layout; counts of what moved.

    Several action servers may start together: one moves, the others wait until it is done
    (or until its lock expires, should it die, and then one of them takes over).
    """
    while r.get(marker(brand)) is None:
        if r.set(lock(brand), "1", nx=True, ex=LOCK_TTL_S):
            try:
                return _migrate(r, brand)
            finally:
                r.delete(lock(brand))
        time.sleep(wait_s)
    return {}


def _migrate(r: SyncRedis, brand: str) -> dict[str, int]:
    keys = GameKeys(brand)
    prefix = f"qz:{{{brand}}}:"
    counts = {"keys": 0, "codes": 0, "ledger entries": 0}
    for raw in list(r.scan_iter(match=prefix + "*", count=PAGE)):
        old = text_of(raw)
        rest = old[len(prefix):]
        if rest == "codes":
            counts["codes"] += _move_codes(r, keys, old)
        elif rest == "ledger":
            counts["ledger entries"] += _move_ledger(r, keys, old)
        else:
            new = _new_name(keys, rest)
            if new is not None:
                counts["keys"] += int(_move(r, old, new))
    r.set(marker(brand), LAYOUT)
    if any(counts.values()):
        log.warning("moved game state to the per-slot layout: %d key(s), %d code(s), "
                    "%d ledger entr(ies)", counts["keys"], counts["codes"],
                    counts["ledger entries"])
    return counts


def migrate_when_ready(connect: Callable[[], SyncRedis], brand: str, *,
                       wait_s: float = 1.0) -> dict[str, int]:
    """Migrate, waiting for Redis (or a cluster) that is not up yet: serving on a half-moved
    layout would let a new check-in start a fresh member next to the old one. An error that
    is not an outage (a refused copy) stops the start, loudly."""
    said = 0.0
    while True:
        try:
            r = connect()
            try:
                return migrate(r, brand)
            finally:
                r.close()
        except ResponseError:
            raise
        except REDIS_DOWN as exc:
            if time.monotonic() - said > 60:
                log.warning("waiting for Redis to move the game keys: %s", exc)
                said = time.monotonic()
            time.sleep(wait_s)
