"""Coupon codes and expiry dates: unguessable, easy to read aloud, dated in Shanghai."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from actions.clock import SHANGHAI, local_day

# No 0/O, 1/I/L: staff read codes off phone screens.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PREFIX = "QZ"
CODE_LENGTH = 8
CODE_PATTERN = re.compile(rf"\b{PREFIX}[{ALPHABET}]{{{CODE_LENGTH}}}\b", re.IGNORECASE)
_ANY_CODE_LIKE = re.compile(r"\b[A-Za-z]{2}[A-Za-z0-9]{6,10}\b")


def new_code() -> str:
    """A fresh coupon code such as QZ7K2P9QMX (31^8 ≈ 8.5e11 possibilities)."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def codes_in(text: str) -> list[str]:
    """Coupon-code-looking tokens in a message (ours or not), upper-cased."""
    return [m.upper() for m in _ANY_CODE_LIKE.findall(text or "") if any(c.isdigit() for c in m)]


def expiry(now: datetime, valid_days: int) -> datetime:
    """A coupon valid for N days is usable through the end of day N (Shanghai time)."""
    last_day = local_day(now) + timedelta(days=valid_days - 1)
    return datetime(last_day.year, last_day.month, last_day.day, 23, 59, 59, tzinfo=SHANGHAI)


def coupon_record(
    *, code: str, name: str, value_yuan: float, condition: str, now: datetime,
    valid_days: int, source: str,
) -> dict[str, object]:
    """The JSON a wallet keeps for one coupon."""
    expires = expiry(now, valid_days)
    return {
        "code": code,
        "name": name,
        "value_yuan": value_yuan,
        "condition": condition,
        "issued_at": int(now.timestamp()),
        "expires_at": int(expires.timestamp()),
        "expires": expires.strftime("%Y-%m-%d"),
        "source": source,
    }
