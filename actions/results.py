"""What the game scripts answer, as frozen types: a status the type checker knows, and fields.

Each Lua script returns JSON; `parse` turns it into one of these, so the actions match on a
`Literal` status and read attributes — never loose dicts and status strings spelt by hand.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar

CODE_TAKEN: Final = "code_taken"  # the random code was already issued: try again with another


@dataclass(frozen=True)
class CheckinResult:
    """A check-in, or the one already made today (a retried message gets the first answer)."""

    status: Literal["checked_in", "already"]
    streak: int = 0
    points: int = 0
    earned: int = 0
    checkins: int = 0
    best: int = 0


@dataclass(frozen=True)
class ClaimResult:
    """A coupon claim: issued (with its code), or why not."""

    status: Literal["issued", "not_started", "ended", "limit_reached", "sold_out",
                    "code_taken"]
    code: str = ""
    mine: int = 0
    remaining: int = 0


@dataclass(frozen=True)
class RedeemResult:
    """Points spent on a reward (with the coupon's code), or why not."""

    status: Literal["redeemed", "insufficient", "sold_out", "code_taken"]
    points: int = 0
    code: str = ""
    cost: int = 0
    short: int = 0


@dataclass(frozen=True)
class DrawResult:
    """One lucky draw: the prize won, or why there was no draw."""

    status: Literal["drawn", "limit_reached", "insufficient", "code_taken"]
    prize: str = ""
    kind: str = ""
    code: str = ""
    points: int = 0
    draws_left: int = 0
    fell_back: bool = False
    used: int = 0
    short: int = 0


@dataclass(frozen=True)
class UnderWay:
    """The middle of a saga: what the first delivery of a message began (its campaign, its
    code, what is left after paying), so every later delivery finishes that, not anew."""

    status: Literal["under_way", "paid"]
    code: str = ""
    campaign: str = ""
    used: int = 0
    points: int = 0


@dataclass(frozen=True)
class Pick:
    """The prize a paid draw got (kept per message on the prizes' slot)."""

    prize: str
    kind: str
    points: int = 0
    fell_back: bool = False


@dataclass(frozen=True)
class Coupon:
    """One coupon in a member's wallet, as issued."""

    code: str
    name: str
    value_yuan: float
    condition: str
    issued_at: int
    expires_at: int
    expires: str  # YYYY-MM-DD, the last day it can be used (Shanghai)
    source: str  # campaign:<id>, reward:<id> or draw:<prize>


class HasStatus(Protocol):
    """Any script result."""

    @property
    def status(self) -> str:
        """What happened."""
        ...


R = TypeVar("R")


def parse(cls: type[R], raw: Any) -> R:
    """A script's JSON answer as its result type (fields it does not know are ignored)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    doc = json.loads(text)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in doc.items() if k in names})
