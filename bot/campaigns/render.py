"""A campaign's text for one group at send time, filled with that group's live numbers.

Each placeholder (`qunzhu.campaigns.PLACEHOLDERS`) is read only when the text uses it:
yesterday's top three by name, today's check-ins, the coupon's stock, the member count,
days left. When a value a post needs is missing for a group, the group is skipped with the
reason — a half-rendered post never goes out. `mention_top3` @-mentions yesterday's top
three, leaving out anyone who opted out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from bot.common.groups import Directory
from qunzhu import metrics
from qunzhu.campaigns import Campaign, P, placeholders
from qunzhu.config import SHANGHAI, Brand, CouponCampaign, Games
from qunzhu.coupons import issued_key
from qunzhu.names import NameBook
from qunzhu.optouts import OptOuts
from qunzhu.redisconn import AsyncRedis, text_of

SkipReason = Literal[
    "no_group", "no_checkins_yesterday", "no_checkins_last_week", "member_count_unknown",
    "coupon_unknown", "coupon_ended", "sold_out", "in_stock", "countdown_over"]
WEEK = 7
TOP = 3


@dataclass(frozen=True)
class Rendered:
    """The post's text and whom it @-mentions."""

    text: str
    mention: tuple[str, ...] = ()
    instead_of: SkipReason | None = None  # the fallback text went out, for this reason


@dataclass(frozen=True)
class Skipped:
    """Why this group gets no post this time."""

    reason: SkipReason


class Missing(Exception):
    """A value the template needs is not there for this group."""

    def __init__(self, reason: SkipReason) -> None:
        super().__init__(reason)
        self.reason: SkipReason = reason


class LiveData:
    """Reads what templates show, from the counters, the name book and the games' stock."""

    def __init__(self, client: AsyncRedis, brand: Callable[[], Brand],
                 games: Callable[[], Games], groups: Callable[[], Directory],
                 member_count: Callable[[str], Awaitable[int]]) -> None:
        self._r = client
        self._brand = brand
        self._games = games
        self._groups = groups
        self._member_count = member_count

    async def render(self, campaign: Campaign, chatid: str, now: datetime) -> Rendered | Skipped:
        """The post for this group now, or why it is skipped."""
        robot = self._groups().robot(chatid)
        if robot is None:
            return Skipped("no_group")
        try:
            if campaign.condition is not None:
                await self._check_condition(campaign, now)
        except Missing as missing:
            return Skipped(missing.reason)
        try:
            text = await self._fill(campaign.text, campaign, chatid, now)
        except Missing as missing:
            if campaign.fallback_text is None:
                return Skipped(missing.reason)
            try:
                fallback = await self._fill(campaign.fallback_text, campaign, chatid, now)
            except Missing:
                return Skipped(missing.reason)
            return Rendered(fallback, instead_of=missing.reason)
        mention = await self._mentions(campaign, chatid, now) if campaign.mention_top3 else ()
        return Rendered(text, mention)

    async def _fill(self, template: str, campaign: Campaign, chatid: str, now: datetime) -> str:
        """The template with every placeholder it uses; Missing when one has no value."""
        values = {name: await self._value(name, campaign, chatid, now)
                  for name in dict.fromkeys(placeholders(template))}
        return template.format_map(values)

    # ------------------------------------------------------------------ values
    async def _value(self, name: str, campaign: Campaign, chatid: str, now: datetime) -> str:
        local = now.astimezone(SHANGHAI)
        brand = self._brand()
        match name:
            case P.GROUP:
                robot = self._groups().robot(chatid)
                return (robot.name if robot and robot.name else
                        await NameBook(self._r, brand.id).group(chatid))
            case P.BRAND:
                return brand.name
            case P.TOP3_YESTERDAY:
                names = await self._top_names(chatid, [local.date() - timedelta(days=1)])
                if not names:
                    raise Missing("no_checkins_yesterday")
                return "、".join(names)
            case P.TOP3_WEEK:
                names = await self._top_names(chatid, _last_week(local.date()))
                if not names:
                    raise Missing("no_checkins_last_week")
                return "、".join(names)
            case P.CHECKINS_TODAY:
                counts = await metrics.group_day_counts(self._r, brand.id, local.date(), chatid)
                return str(counts.get("checkins", 0))
            case P.CHECKINS_WEEK:
                total = 0
                for day in _last_week(local.date()):
                    total += (await metrics.group_day_counts(self._r, brand.id, day,
                                                             chatid)).get("checkins", 0)
                return str(total)
            case P.MEMBERS:
                count = await self._member_count(chatid)
                if count <= 0:
                    raise Missing("member_count_unknown")
                return str(count)
            case P.COUPON:
                return self._coupon(campaign, now).name
            case P.LEFT:
                return str(await self._left(campaign, now))
            case P.DAYS_LEFT:
                target = campaign.countdown_to or campaign.ends
                assert target is not None  # checked when the file was loaded
                days = (target - local.date()).days
                if days < 0:
                    raise Missing("countdown_over")
                return str(days)
        raise KeyError(name)  # pragma: no cover - the file's schema lists every name

    def _coupon(self, campaign: Campaign, now: datetime) -> CouponCampaign:
        coupon = next((c for c in self._games().coupons if c.id == campaign.coupon), None)
        if coupon is None:
            raise Missing("coupon_unknown")
        if now >= coupon.ends:
            raise Missing("coupon_ended")
        return coupon

    async def _left(self, campaign: Campaign, now: datetime) -> int:
        coupon = self._coupon(campaign, now)
        issued = int(text_of(await self._r.get(issued_key(self._brand().id, coupon.id)) or 0))
        return max(0, coupon.stock - issued)

    async def _check_condition(self, campaign: Campaign, now: datetime) -> None:
        left = await self._left(campaign, now)
        if campaign.condition == "in_stock" and left <= 0:
            raise Missing("sold_out")
        if campaign.condition == "sold_out" and left > 0:
            raise Missing("in_stock")

    async def _top_ids(self, chatid: str, days: list[date]) -> list[str]:
        """The longest streaks over these days (each member once), best first."""
        brand = self._brand().id
        best: dict[str, int] = {}
        for day in days:
            raw = await self._r.zrevrange(metrics.MetricKeys(brand).top(day, chatid), 0,
                                          2 * TOP + 10, withscores=True)
            for user, score in raw:
                uid = text_of(user)
                best[uid] = max(best.get(uid, 0), int(score))
        return [u for u, _s in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))]

    async def _top_names(self, chatid: str, days: list[date]) -> list[str]:
        ids = (await self._top_ids(chatid, days))[:TOP]
        names = await NameBook(self._r, self._brand().id).members(chatid, ids)
        return [names[u] for u in ids]

    async def _mentions(self, campaign: Campaign, chatid: str, now: datetime) -> tuple[str, ...]:
        """Yesterday's top three, less anyone who asked not to be @-mentioned."""
        yesterday = now.astimezone(SHANGHAI).date() - timedelta(days=1)
        ids = (await self._top_ids(chatid, [yesterday]))[:TOP]
        out = await OptOuts(self._r, self._brand().id).which(ids)
        return tuple(u for u in ids if u not in out)


def _last_week(today: date) -> list[date]:
    return [today - timedelta(days=n) for n in range(1, WEEK + 1)]
