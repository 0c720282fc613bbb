"""Operator-editable brand facts and game rules, validated with file:line:field errors.

Operators edit ``data/brand.yml`` and ``data/games.yml``; a typo must be reported with the
file, the line and the field, never surface later as a member-facing crash. Both the action
server and the bridge read these models (the bridge never imports the actions).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, root_validator, validator

from qunzhu import settings
from qunzhu.yamlconfig import ConfigError, Strict, load_yaml, validate

__all__ = ["Brand", "ConfigError", "Games", "brand_file", "games_file", "load_brand",
           "load_games"]

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _parse_local_time(value: Any) -> datetime:
    """Accept '2026-01-01 00:00', a date or a datetime; naive means Asia/Shanghai."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("/", "-"))
        except ValueError as exc:
            raise ValueError("expected a time like 2026-01-01 00:00") from exc
    else:
        raise ValueError("expected a time like 2026-01-01 00:00")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)


# ---------------------------------------------------------------- brand facts
_DASHES = re.compile(r"\s*[-~～—–至到]\s*")
_HOURS = re.compile(r"^([01]?\d|2[0-4]):[0-5]\d–([01]?\d|2[0-4]):[0-5]\d$")


_WORDS = re.compile(r"[^\d\s:：\-~～—–.]")


def _hours(value: Any) -> str:
    """Hours as a range, stored one way ('7:30-21:00' → 7:30–21:00), or words kept as written.

    Words ("工作日 7:30–21:00，周末 9:00–22:00") are a description to quote as is; digits and
    dashes that are not a valid range are a typo ("25:00-26:00", "8:00").
    """
    raw = str(value).strip()
    text = _DASHES.sub("–", raw.replace("：", ":"))
    if _HOURS.match(text):
        return text
    if raw and _WORDS.search(raw):
        return raw
    raise ValueError("expected opening hours like 7:30–21:00, or words describing them")


def is_range(hours: str) -> bool:
    """Whether hours are a plain range (7:30–21:00) rather than a description."""
    return bool(_HOURS.match(hours))


class Store(Strict):
    """A physical store members ask about; no `hours` means the brand's usual hours."""

    id: str = Field(regex=r"^[a-z0-9_]+$")
    name: str = Field(min_length=1)
    aliases: list[str] = []
    address: str
    hours: str | None = None
    phone: str = ""

    _check_hours = validator("hours", pre=True, allow_reuse=True)(
        lambda v: None if v is None else _hours(v))


class StoreHours(Strict):
    """One store's hours and whether they differ from the brand's usual hours."""

    name: str
    address: str
    hours: str
    usual: bool


class Delivery(Strict):
    """Delivery terms quoted by the FAQ."""

    radius_km: float = Field(gt=0)
    min_order_yuan: float = Field(ge=0)
    fee_yuan: float = Field(ge=0)
    free_over_yuan: float = Field(ge=0)
    hours: str
    channels: str


class Brand(Strict):
    """Facts about the brand that FAQ answers and game replies quote."""

    id: str = Field(regex=r"^[a-z0-9_]+$")
    name: str
    bot_name: str
    hotline: str
    service_hours: str
    opening_hours: str  # the usual hours of a store; a store with others says so itself
    hours_note: str = ""  # e.g. 节假日照常营业
    delivery: Delivery
    membership: str
    refund: str
    invoice: str
    stores: list[Store] = Field(min_items=1)

    _check_hours = validator("opening_hours", pre=True, allow_reuse=True)(_hours)

    @root_validator(skip_on_failure=True)
    def _described_hours_need_every_store(cls, values: dict[str, Any]) -> dict[str, Any]:
        if not is_range(values["opening_hours"]):
            missing = [s.name for s in values["stores"] if not s.hours]
            if missing:
                raise ValueError(
                    "opening_hours is a description, not a range like 7:30–21:00, so every "
                    f"store needs its own hours: (missing for {', '.join(missing)})")
        return values

    def store_hours(self) -> list[StoreHours]:
        """Every store with the hours it keeps: one source of truth for every answer."""
        return [StoreHours(name=s.name, address=s.address, hours=s.hours or self.opening_hours,
                           usual=(s.hours or self.opening_hours) == self.opening_hours)
                for s in self.stores]

    def most_stores_keep_usual_hours(self) -> bool:
        """True when 'most stores' is an honest way to state the usual hours."""
        if not is_range(self.opening_hours):
            return False
        counts = Counter(s.hours for s in self.store_hours())
        return counts.get(self.opening_hours, 0) * 2 > len(self.stores)

    def template_vars(self) -> dict[str, Any]:
        """Flatten the facts into the {placeholders} used by responses in domain.yml."""
        return {
            "brand_name": self.name,
            "bot_name": self.bot_name,
            "hotline": self.hotline,
            "service_hours": self.service_hours,
            "opening_hours": self.opening_hours,
            "hours_note": self.hours_note,
            "delivery_radius_km": _num(self.delivery.radius_km),
            "delivery_min_order": _num(self.delivery.min_order_yuan),
            "delivery_fee": _num(self.delivery.fee_yuan),
            "delivery_free_over": _num(self.delivery.free_over_yuan),
            "delivery_hours": self.delivery.hours,
            "delivery_channels": self.delivery.channels,
            "membership": self.membership,
            "refund_policy": self.refund,
            "invoice_policy": self.invoice,
        }


def _num(value: float) -> str:
    """Print 3.0 as 3 and 2.5 as 2.5, as people write prices."""
    return f"{value:g}"


# ---------------------------------------------------------------- game rules
class CheckinRules(Strict):
    """Daily check-in: base points plus a bonus on the day a streak reaches N."""

    base_points: int = Field(ge=0, le=10_000)
    streak_bonus: dict[int, int] = {}
    announce_streaks: list[int] = []
    leaderboard_size: int = Field(10, ge=1, le=50)

    @validator("streak_bonus")
    def _positive_days(cls, value: dict[int, int]) -> dict[int, int]:
        for day, bonus in value.items():
            if day < 2 or bonus < 0:
                raise ValueError("streak days must be ≥ 2 and bonuses ≥ 0")
        return value


class CouponTemplate(Strict):
    """What an issued coupon says: its name, value, conditions and how long it lasts."""

    name: str
    value_yuan: float = Field(gt=0)
    condition: str = ""
    valid_days: int = Field(ge=1, le=366)


class CouponCampaign(CouponTemplate):
    """A claimable coupon with finite stock, a per-member limit and a claim window."""

    id: str = Field(regex=r"^[a-z0-9_]+$")
    aliases: list[str] = []
    stock: int = Field(ge=0)
    per_member_limit: int = Field(ge=1)
    starts: datetime
    ends: datetime

    _times = validator("starts", "ends", pre=True, allow_reuse=True)(_parse_local_time)

    @root_validator(skip_on_failure=True)
    def _window(cls, values: dict[str, Any]) -> dict[str, Any]:
        if values["ends"] <= values["starts"]:
            raise ValueError("ends must be after starts")
        return values


class Prize(Strict):
    """One outcome of the lucky draw; weight is relative, stock None means unlimited."""

    id: str = Field(regex=r"^[a-z0-9_]+$")
    name: str
    weight: int = Field(ge=0)
    stock: int | None = Field(None, ge=0)
    kind: Literal["coupon", "points", "nothing"]
    points: int = Field(0, ge=0)
    coupon: CouponTemplate | None = None
    announce: bool = False

    @root_validator(skip_on_failure=True)
    def _payload(cls, values: dict[str, Any]) -> dict[str, Any]:
        kind = values["kind"]
        if kind == "coupon" and values.get("coupon") is None:
            raise ValueError("a coupon prize needs a 'coupon:' block")
        if kind == "points" and not values.get("points"):
            raise ValueError("a points prize needs 'points:' > 0")
        return values


class LuckyDraw(Strict):
    """Daily lucky draw: limit per member, optional points cost, weighted prizes."""

    daily_limit: int = Field(ge=1, le=100)
    cost_points: int = Field(0, ge=0)
    prizes: list[Prize] = Field(min_items=1)

    @validator("prizes")
    def _one_unlimited_consolation(cls, prizes: list[Prize]) -> list[Prize]:
        consolation = [p for p in prizes if p.kind == "nothing" and p.stock is None]
        if len(consolation) != 1:
            raise ValueError(
                "exactly one prize must be kind: nothing without stock "
                "(a sold-out prize's chance falls to it, so odds never change)"
            )
        if sum(p.weight for p in prizes) <= 0:
            raise ValueError("the weights must add up to more than 0")
        return prizes

    @property
    def consolation(self) -> Prize:
        """The prize that a draw falls back to when the drawn prize is sold out."""
        return next(p for p in self.prizes if p.kind == "nothing" and p.stock is None)


class Reward(CouponTemplate):
    """A points-shop item: spend points, receive a coupon."""

    id: str = Field(regex=r"^[a-z0-9_]+$")
    aliases: list[str] = []
    cost_points: int = Field(ge=1)
    stock: int | None = Field(None, ge=0)


class Games(Strict):
    """All game rules an operator can change without a programmer."""

    checkin: CheckinRules
    coupons: list[CouponCampaign] = []
    lucky_draw: LuckyDraw
    rewards: list[Reward] = []

    @root_validator(skip_on_failure=True)
    def _unique_ids(cls, values: dict[str, Any]) -> dict[str, Any]:
        for field in ("coupons", "rewards"):
            ids = [item.id for item in values[field]]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{field}: duplicate id {', '.join(dupes)}")
        prize_ids = [p.id for p in values["lucky_draw"].prizes]
        if len(set(prize_ids)) != len(prize_ids):
            raise ValueError("lucky_draw.prizes: duplicate id")
        return values


def brand_file() -> Path:
    """Where the brand facts live (QZ_BRAND_FILE)."""
    return settings.project_path("QZ_BRAND_FILE")


def games_file() -> Path:
    """Where the game rules live (QZ_GAMES_FILE)."""
    return settings.project_path("QZ_GAMES_FILE")


def load_brand(path: Path | None = None, text: str | None = None) -> Brand:
    """Load and validate the brand facts (from `text` if given, named `path`)."""
    path = path or brand_file()
    brand: Brand = validate(path, load_yaml(path, text), Brand, "brand")
    return brand


def load_games(path: Path | None = None, text: str | None = None) -> Games:
    """Load and validate the game rules (from `text` if given, named `path`)."""
    path = path or games_file()
    games: Games = validate(path, load_yaml(path, text), Games, None)
    return games


def brand_loader() -> Callable[[Path, str], Brand]:
    """load_brand for a running process: brand.id may not change until a restart.

    Every key in Redis is under the brand's id; the services built at start keep using it,
    so a new id would split members' data in two. The change is reported, not applied.
    """
    first: list[str] = []

    def load(path: Path, text: str) -> Brand:
        brand = load_brand(path, text)
        if first and brand.id != first[0]:
            raise ConfigError(f"{path}: brand.id: cannot change from {first[0]} to {brand.id} "
                              "while running (it names all stored data); restart to switch")
        first[:] = [brand.id]
        return brand

    return load
