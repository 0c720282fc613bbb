"""Coupon codes and expiry dates: unguessable, easy to read aloud, dated in Shanghai."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from actions.clock import SHANGHAI, local_day
from actions.results import CODE_TAKEN, Coupon, HasStatus
from qunzhu.config import CouponTemplate

# No 0/O, 1/I/L: staff read codes off phone screens.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PREFIX = "QZ"
CODE_LENGTH = 8
# ASCII-only boundaries: CJK counts as a word character, so \b fails on "QZ7K2P9QMX这张".
_OURS = re.compile(rf"(?<![A-Za-z0-9]){PREFIX}[{ALPHABET}]{{{CODE_LENGTH}}}(?![A-Za-z0-9])",
                   re.IGNORECASE)
_CODE_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[A-Za-z0-9]{6,10}(?![A-Za-z0-9])")


def new_code() -> str:
    """A fresh coupon code such as QZ7K2P9QMX (31^8 ≈ 8.5e11 possibilities)."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def codes_in(text: str) -> list[str]:
    """Coupon codes in a message, upper-cased: ours always, others if they have a digit.

    The digit rule keeps English words ("coupons") from being taken for codes.
    """
    text = text or ""
    found = [m.upper() for m in _OURS.findall(text)]
    found += [m.upper() for m in _CODE_LIKE.findall(text)
              if any(c.isdigit() for c in m) and m.upper() not in found]
    return found


CODE_ATTEMPTS = 5
Result = TypeVar("Result", bound=HasStatus)


async def with_fresh_code(attempt: Callable[[str], Awaitable[Result]]) -> Result:
    """Run a store script with a new code, again if that code was already issued.

    The scripts refuse a taken code before writing anything, so a retry is safe; with
    8.5e11 codes a second attempt is already rare, a sixth never needed in practice.
    """
    result = await attempt(new_code())
    for _ in range(CODE_ATTEMPTS - 1):
        if result.status != CODE_TAKEN:
            break
        result = await attempt(new_code())
    return result


def expiry(now: datetime, valid_days: int) -> datetime:
    """A coupon valid for N days is usable through the end of day N (Shanghai time)."""
    last_day = local_day(now) + timedelta(days=valid_days - 1)
    return datetime(last_day.year, last_day.month, last_day.day, 23, 59, 59, tzinfo=SHANGHAI)


def coupon_record(terms: CouponTemplate, *, code: str, now: datetime, source: str) -> Coupon:
    """The coupon a wallet keeps, from the terms in games.yml (campaign, reward or prize)."""
    expires = expiry(now, terms.valid_days)
    return Coupon(code=code, name=terms.name, value_yuan=terms.value_yuan,
                  condition=terms.condition, issued_at=int(now.timestamp()),
                  expires_at=int(expires.timestamp()), expires=expires.strftime("%Y-%m-%d"),
                  source=source)
