"""Campaigns (data/campaigns.yml): what a group hears without asking, and the budget over it.

Operators write campaigns as YAML, validated like games.yml (file:line:field). A campaign
targets groups (all, a list, or tags from data/groups.yml), runs on a schedule (daily or
weekly at a local time, a cron expression, or once; Asia/Shanghai), between optional start
and end dates, and is promotional (counted against the anti-spam budget) or service.

The anti-spam budget has hard ceilings set here, in one place: operators may tighten it for
all groups, a tag or a group in the YAML, and a looser value is an error, not a setting. Cron
arithmetic is croniter's (a maintained library), never hand-written.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from croniter import CroniterError, croniter
from pydantic import Field, root_validator, validator

from qunzhu import settings
from qunzhu.config import SHANGHAI
from qunzhu.yamlconfig import ConfigError, Strict, load_yaml, validate

__all__ = ["CEILING", "Campaign", "CampaignsFile", "Limits", "Schedule", "campaigns_file",
           "jitter", "load_campaigns", "next_due", "occurrence_key"]

MIN_GAP = timedelta(minutes=30)  # a schedule firing more often helps no group (and costs)
MIN_GAP_CHECKS = 200  # fires of a cron expression looked at for its smallest gap
NEXT_TRIES = 1000  # scheduled times looked at for the next one the campaign is active on
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0,
             "周一": 1, "周二": 2, "周三": 3, "周四": 4, "周五": 5, "周六": 6, "周日": 0,
             "周天": 0, "星期一": 1, "星期二": 2, "星期三": 3, "星期四": 4, "星期五": 5,
             "星期六": 6, "星期日": 0, "星期天": 0}


def _clock(value: Any) -> time:
    """'09:00' → 09:00 (YAML 1.1 would read 09:00 unquoted as a number of minutes)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)  # ruamel read 9:30 as sexagesimal 570
    found = _CLOCK.match(unicodedata.normalize("NFKC", str(value)).strip())  # ８：４５ too
    if not found:
        raise ValueError("expected a local time like 09:00")
    return time(int(found[1]), int(found[2]))


# ------------------------------------------------------------------ the budget
@dataclass(frozen=True)
class Limits:
    """What a group may receive in its local day, besides replies to members."""

    promo_per_day: int
    promo_gap_minutes: int
    quiet_start: time  # no post from here …
    quiet_end: time  # … until here (wrapping past midnight when start > end)
    service_per_day: int
    reaction_per_day: int = 30  # posts a member's own message caused (streaks, big wins)
    service_gap_minutes: int = 30  # between two service posts

    def quiet_minutes(self) -> tuple[int, int]:
        """The quiet window as minutes of the local day: [start, end)."""
        return (self.quiet_start.hour * 60 + self.quiet_start.minute,
                self.quiet_end.hour * 60 + self.quiet_end.minute)

    def is_quiet(self, local: datetime) -> bool:
        """Whether a local time falls in the quiet hours."""
        start, end = self.quiet_minutes()
        minute = local.hour * 60 + local.minute
        if start == end:
            return False
        return start <= minute < end if start < end else minute >= start or minute < end


# The hard ceilings, in one place: nothing in the YAML can loosen them.
CEILING = Limits(promo_per_day=3, promo_gap_minutes=120, quiet_start=time(22, 0),
                 quiet_end=time(8, 0), service_per_day=10, reaction_per_day=30,
                 service_gap_minutes=30)


def _quiet_set(limits: Limits) -> set[int]:
    start, end = limits.quiet_minutes()
    if start == end:
        return set()
    if start < end:
        return set(range(start, end))
    return set(range(start, 24 * 60)) | set(range(0, end))


class BudgetOverride(Strict):
    """Tightening an operator may write (for all groups, a tag, or one group)."""

    promo_per_day: int | None = Field(None, ge=0)
    promo_gap_minutes: int | None = Field(None, ge=0)
    quiet_hours: str | None = None  # "22:00-08:00"
    service_per_day: int | None = Field(None, ge=0)

    @validator("quiet_hours")
    def _window(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = re.split(r"\s*[-~～—–至到]\s*", str(value).strip())
        if len(parts) != 2:
            raise ValueError("expected quiet hours like 22:00-08:00")
        start, end = _clock(parts[0]), _clock(parts[1])
        return f"{start:%H:%M}-{end:%H:%M}"

    def apply(self, base: Limits) -> Limits:
        """`base` tightened by this override: a value looser than `base` keeps `base`'s
        (one looser than the ceilings was refused at load)."""
        quiet_start, quiet_end = base.quiet_start, base.quiet_end
        if self.quiet_hours:
            start, end = (_clock(part) for part in self.quiet_hours.split("-"))
            wider = Limits(0, 0, start, end, 0)
            if _quiet_set(base) <= _quiet_set(wider):
                quiet_start, quiet_end = start, end
        return Limits(
            promo_per_day=min(base.promo_per_day, _or(self.promo_per_day, base.promo_per_day)),
            promo_gap_minutes=max(base.promo_gap_minutes,
                                  _or(self.promo_gap_minutes, base.promo_gap_minutes)),
            quiet_start=quiet_start, quiet_end=quiet_end,
            service_per_day=min(base.service_per_day,
                                _or(self.service_per_day, base.service_per_day)),
            reaction_per_day=base.reaction_per_day,
            service_gap_minutes=base.service_gap_minutes)

    def looser_than(self, ceiling: Limits) -> list[str]:
        """What in this override exceeds the ceilings (empty: it only tightens)."""
        out = []
        if self.promo_per_day is not None and self.promo_per_day > ceiling.promo_per_day:
            out.append(f"promo_per_day: at most {ceiling.promo_per_day} (the ceiling)")
        if (self.promo_gap_minutes is not None
                and self.promo_gap_minutes < ceiling.promo_gap_minutes):
            out.append(f"promo_gap_minutes: at least {ceiling.promo_gap_minutes} (the ceiling)")
        if self.service_per_day is not None and self.service_per_day > ceiling.service_per_day:
            out.append(f"service_per_day: at most {ceiling.service_per_day} (the ceiling)")
        if self.quiet_hours:
            start, end = (_clock(part) for part in self.quiet_hours.split("-"))
            if not _quiet_set(ceiling) <= _quiet_set(Limits(0, 0, start, end, 0)):
                out.append(f"quiet_hours: must cover {ceiling.quiet_start:%H:%M}-"
                           f"{ceiling.quiet_end:%H:%M} (the ceiling)")
        return out


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


# ---------------------------------------------------------------- the schedule
class Schedule(Strict):
    """When a campaign fires: exactly one of daily, weekly, cron or once."""

    daily: str | None = None  # "09:00"
    weekly: str | None = None  # "mon 10:00" / "周一 10:00"
    cron: str | None = None  # "0 9 * * 1-5"
    once: datetime | None = None  # "2026-12-01 12:00"

    @validator("daily", pre=True)
    def _daily(cls, value: Any) -> str | None:
        return None if value is None else f"{_clock(value):%H:%M}"

    @validator("weekly", pre=True)
    def _weekly(cls, value: Any) -> str | None:
        if value is None:
            return None
        parts = str(value).strip().split()
        if len(parts) != 2 or parts[0].lower() not in _WEEKDAYS:
            raise ValueError("expected a weekday and a time, like mon 10:00 or 周一 10:00")
        return f"{parts[0].lower()} {_clock(parts[1]):%H:%M}"

    @validator("cron")
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = " ".join(str(value).split())
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError("expected a cron expression of five fields, like 0 9 * * 1-5")
        start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
        try:  # valid syntax can still never fire (30 February)
            times = croniter(text, start, ret_type=datetime, max_years_between_matches=5)
            fires = [times.get_next(datetime) for _ in range(MIN_GAP_CHECKS)]
        except CroniterError:
            raise ValueError("this cron expression never fires") from None
        gaps = [later - earlier for earlier, later in pairwise(fires)]
        if min(gaps) < MIN_GAP:
            raise ValueError(f"fires too often: campaigns may run at most every "
                             f"{MIN_GAP.seconds // 60} minutes")
        return text

    @validator("once", pre=True)
    def _once(cls, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip().replace("/", "-"))
            except ValueError:
                raise ValueError("expected a time like 2026-12-01 12:00") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=SHANGHAI)

    @root_validator(skip_on_failure=True)
    def _exactly_one(cls, values: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("daily", "weekly", "cron", "once") if values.get(k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of daily, weekly, cron or once")
        return values

    def expression(self) -> str | None:
        """The schedule as a cron expression (None for a one-shot)."""
        if self.daily:
            at = _clock(self.daily)
            return f"{at.minute} {at.hour} * * *"
        if self.weekly:
            day, clock = self.weekly.split()
            at = _clock(clock)
            return f"{at.minute} {at.hour} * * {_WEEKDAYS[day]}"
        return self.cron

    def between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Scheduled local times t with after < t <= until (both aware)."""
        if self.once is not None:
            if after < self.once <= until:
                yield self.once.astimezone(SHANGHAI)
            return
        expression = self.expression()
        assert expression is not None
        times = croniter(expression, after.astimezone(SHANGHAI), ret_type=datetime)
        while True:
            at: datetime = times.get_next(datetime)
            if at > until:
                return
            yield at


# ---------------------------------------------------------------- templates
# What a campaign's text may say, filled in at send time for each group. A value that is
# missing for a group (nobody checked in yesterday, no member count yet) skips that group
# with the reason recorded; a half-rendered post never goes out.
class P:
    """The placeholders' names as operators write them (Chinese: the file is theirs)."""

    GROUP = "群名"
    BRAND = "品牌"
    TOP3_YESTERDAY = "昨日前三"
    TOP3_WEEK = "上周前三"
    CHECKINS_TODAY = "今日打卡人数"
    CHECKINS_WEEK = "上周打卡次数"
    MEMBERS = "群人数"
    COUPON = "券名"
    LEFT = "剩余张数"
    DAYS_LEFT = "剩余天数"
    NEWCOMERS = "新人"
    BOT = "机器人"


PLACEHOLDERS: dict[str, str] = {
    P.GROUP: "the group's name",
    P.BRAND: "the brand's name",
    P.TOP3_YESTERDAY: "yesterday's three longest check-in streaks in this group, by name",
    P.TOP3_WEEK: "the last seven days' three longest check-in streaks in this group, by name",
    P.CHECKINS_TODAY: "how many members of this group checked in today so far",
    P.CHECKINS_WEEK: "check-ins in this group over the last seven days",
    P.MEMBERS: "the group's member count",
    P.COUPON: "the campaign's coupon (coupon:), its name",
    P.LEFT: "how many of the campaign's coupon are left",
    P.DAYS_LEFT: "days left until countdown_to (or ends)",
}
NEEDS_COUPON = {P.COUPON, P.LEFT}
# A text that says 券 is about a coupon, whatever it is labelled: a "service" post offering
# one would be a promotion outside the promotional budget (the way groups become ad feeds).
COUPON_WORD = "券"
Condition = Literal["in_stock", "sold_out"]


def placeholders(text: str) -> list[str]:
    """The placeholders a template uses ({群名} …); ValueError when it is malformed."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise ValueError("braces must pair: write {群名}, or {{ and }} for a brace") from None
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            raise ValueError(f"placeholder {{{name}}} must be a plain name like {{群名}}")
        names.append(name)
    return names


# ---------------------------------------------------------------- campaigns
class Campaign(Strict):
    """One campaign: what it posts, where, when, and whether it counts as promotion."""

    id: str = Field(regex=r"^[a-z0-9_]+$", max_length=40)
    name: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=1000)
    fallback_text: str | None = Field(None, min_length=1, max_length=1000)  # when text's data
    # is missing for a group (say, nobody checked in yesterday); without it the group is skipped
    groups: Literal["all"] | list[str] = "all"
    tags: list[str] = Field(default_factory=list)
    schedule: Schedule
    starts: date | None = None
    ends: date | None = None
    promotional: bool
    grace_minutes: int = Field(15, ge=0, le=24 * 60)  # sent late once after downtime this short
    jitter_minutes: int = Field(5, ge=0, le=60)  # groups' posts spread over ± this
    timely_minutes: int = Field(180, ge=0, le=7 * 24 * 60)  # a deferral past this is dropped
    coupon: str | None = Field(None, regex=r"^[a-z0-9_]+$")  # a coupon id from games.yml
    condition: Condition | None = None  # post only while the coupon is in stock / sold out
    countdown_to: date | None = None  # {剩余天数} counts to this day (default: ends)
    mention_top3: bool = False  # @-mention yesterday's top 3 (never one who opted out)
    enabled: bool = True

    @validator("text", "fallback_text")
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        unknown = [n for n in placeholders(value) if n not in PLACEHOLDERS]
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use "
                             + " ".join(f"{{{n}}}" for n in PLACEHOLDERS))
        return value

    @root_validator(skip_on_failure=True)
    def _window(cls, values: dict[str, Any]) -> dict[str, Any]:
        starts, ends = values.get("starts"), values.get("ends")
        if starts and ends and ends < starts:
            raise ValueError("ends must be on or after starts")
        if values.get("tags") and values.get("groups") != "all":
            raise ValueError("give groups or tags, not both")
        used = set(placeholders(values["text"]))
        used |= set(placeholders(values.get("fallback_text") or ""))
        about_coupon = values.get("coupon") or any(
            COUPON_WORD in text for text in (values["text"], values.get("fallback_text") or ""))
        if about_coupon and not values.get("promotional") and not values.get("condition"):
            raise ValueError("a post about a coupon is a promotion (promotional: true), unless "
                             "it follows the coupon's stock (condition: in_stock or sold_out)")
        if (used & NEEDS_COUPON or values.get("condition")) and not values.get("coupon"):
            raise ValueError("{券名}, {剩余张数} and condition need coupon: <a coupon id>")
        if P.DAYS_LEFT in used and not (values.get("countdown_to") or ends):
            raise ValueError("{剩余天数} needs countdown_to: <date> (or ends)")
        return values

    def uses(self, name: str) -> bool:
        """Whether the text (or its fallback) uses a placeholder."""
        return name in placeholders(self.text) + placeholders(self.fallback_text or "")

    def active_on(self, day: date) -> bool:
        """Whether the campaign runs on this local date."""
        return (self.enabled and (self.starts is None or day >= self.starts)
                and (self.ends is None or day <= self.ends))

    def next_run(self, now: datetime) -> datetime | None:
        """The next scheduled time it runs after `now` (None: over, off, or no run within
        a year)."""
        if self.starts is not None:  # a campaign starting later: look from its first day on
            now = max(now, local_day_start(self.starts) - timedelta(seconds=1))
        try:
            for n, moment in enumerate(self.schedule.between(now, now + timedelta(days=366))):
                if self.active_on(moment.date()):
                    return moment
                if n >= NEXT_TRIES or (self.ends is not None and moment.date() > self.ends):
                    return None
        except CroniterError:
            return None
        return None

    def targets(self, groups: dict[str, list[str]]) -> list[str]:
        """The chatids it posts into, from each group's tags (chatid → tags)."""
        if self.tags:
            return [chatid for chatid, tags in groups.items() if set(tags) & set(self.tags)]
        if self.groups == "all":
            return list(groups)
        return [chatid for chatid in self.groups if chatid in groups]


# What a welcome may say: the newcomers' names, the group, the bot.
WELCOME_PLACEHOLDERS: dict[str, str] = {
    P.NEWCOMERS: "the newcomers' names (up to ten, then …)",
    P.GROUP: "the group's name",
    P.BOT: "the bot's name, to @-mention it",
}


def fill_welcome(text: str, *, newcomers: str, group: str, bot: str) -> str:
    """An operator's welcome with the newcomers' names, the group and the bot filled in."""
    return text.format_map({P.NEWCOMERS: newcomers, P.GROUP: group, P.BOT: bot})


class Welcome(Strict):
    """The robot's welcome to newcomers in internal groups, for all groups, a list or tags."""

    text: str = Field(min_length=1, max_length=500)
    groups: Literal["all"] | list[str] = "all"
    tags: list[str] = Field(default_factory=list)

    @validator("text")
    def _template(cls, value: str) -> str:
        used = placeholders(value)
        unknown = [n for n in used if n not in WELCOME_PLACEHOLDERS]
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use "
                             + " ".join(f"{{{n}}}" for n in WELCOME_PLACEHOLDERS))
        if P.NEWCOMERS not in used:
            raise ValueError("a welcome names the newcomers: put {新人} in it")
        return value

    def applies(self, chatid: str, tags: list[str]) -> bool:
        """Whether this welcome is the one for a group."""
        if self.tags:
            return bool(set(tags) & set(self.tags))
        return self.groups == "all" or chatid in self.groups


class CampaignsFile(Strict):
    """The whole data/campaigns.yml."""

    budget: BudgetOverride = Field(default_factory=lambda: BudgetOverride.parse_obj({}))
    budget_by_tag: dict[str, BudgetOverride] = Field(default_factory=dict)
    budget_by_group: dict[str, BudgetOverride] = Field(default_factory=dict)
    campaigns: list[Campaign] = Field(default_factory=list)
    welcomes: list[Welcome] = Field(default_factory=list)  # the first that applies is used

    @root_validator(skip_on_failure=True)
    def _checked(cls, values: dict[str, Any]) -> dict[str, Any]:
        problems = [f"budget.{p}" for p in values["budget"].looser_than(CEILING)]
        for where in ("budget_by_tag", "budget_by_group"):
            for name, override in values[where].items():
                problems += [f"{where}.{name}.{p}" for p in override.looser_than(CEILING)]
        ids = [c.id for c in values["campaigns"]]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"campaigns: duplicate id {', '.join(dupes)}")
        if problems:
            raise ValueError("; ".join(problems))
        return values

    def welcome_for(self, chatid: str, tags: list[str]) -> str | None:
        """The welcome text for a group (None: the bot's own wording from domain.yml)."""
        return next((w.text for w in self.welcomes if w.applies(chatid, tags)), None)

    def limits(self, chatid: str, tags: list[str]) -> Limits:
        """A group's budget: the ceilings, tightened for all, then its tags, then itself."""
        limits = self.budget.apply(CEILING)
        for tag in sorted(tags):
            if tag in self.budget_by_tag:
                limits = self.budget_by_tag[tag].apply(limits)
        if chatid in self.budget_by_group:
            limits = self.budget_by_group[chatid].apply(limits)
        return limits


def occurrence_key(campaign: str, scheduled: datetime, chatid: str) -> str:
    """One post of one campaign into one group, named the same in every process."""
    return f"{campaign}:{scheduled.astimezone(SHANGHAI):%Y%m%dT%H%M}:{chatid}"


def jitter(key: str, minutes: int) -> timedelta:
    """An offset in [-minutes, +minutes], to the second, that depends only on `key`."""
    if minutes <= 0:
        return timedelta(0)
    span = 2 * minutes * 60 + 1
    drawn = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % span
    return timedelta(seconds=drawn - minutes * 60)


def next_due(file: CampaignsFile, chatid: str, tags: list[str], after: datetime,
             horizon: timedelta = timedelta(days=8)) -> tuple[Campaign, datetime] | None:
    """The next campaign post due in one group after `after` (within `horizon`), jitter
    included: what the sandbox fast-forwards to."""
    best: tuple[Campaign, datetime] | None = None
    for campaign in file.campaigns:
        if not campaign.enabled or chatid not in campaign.targets({chatid: tags}):
            continue
        spread = timedelta(minutes=campaign.jitter_minutes)
        try:
            moments = list(campaign.schedule.between(after - spread, after + horizon))
        except CroniterError:
            continue
        for scheduled in moments:
            if not campaign.active_on(scheduled.astimezone(SHANGHAI).date()):
                continue
            due = scheduled + jitter(occurrence_key(campaign.id, scheduled, chatid),
                                     campaign.jitter_minutes)
            if due > after:
                if best is None or due < best[1]:
                    best = (campaign, due)
                break
    return best


def campaigns_file() -> Path:
    """Where the campaigns live (QZ_CAMPAIGNS_FILE)."""
    return settings.project_path("QZ_CAMPAIGNS_FILE")


def load_campaigns(path: Path | None = None, text: str | None = None) -> CampaignsFile:
    """Load and validate the campaigns (from `text` if given, named `path`)."""
    path = path or campaigns_file()
    raw = load_yaml(path, text)
    if raw is None:
        return CampaignsFile()
    loaded: CampaignsFile = validate(path, raw, CampaignsFile, None)
    return loaded


def local_day_start(day: date) -> datetime:
    """00:00 of a local date, aware."""
    return datetime.combine(day, time(0, 0), tzinfo=SHANGHAI)


def next_day(local: datetime) -> datetime:
    """00:00 of the local day after `local`."""
    return local_day_start(local.astimezone(SHANGHAI).date() + timedelta(days=1))


__all__ += ["ConfigError", "local_day_start", "next_day"]
