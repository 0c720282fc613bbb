"""Did it help? What followed each campaign post in its group, against days without one.

For every post a campaign sent (from its status records), the 2 hours from the hour it was
queued are read from the group's hourly counters (`qunzhu.metrics`: `h:checkins:<HH>`,
`h:claims:<HH>`): check-ins after a reminder, claims after a coupon post. The baseline is
the same group, the same hours, on the days of the last four weeks when this campaign posted
nothing there and it did anything at all (a daily reminder's baseline is the days before
it started, or it skipped). The window starts at the top of the post's hour (the counters
are hourly), so check-ins earlier in that hour count as after it.
For promotional campaigns, opt-outs and "too many posts" signals in the group on days with
a post are set against days without. A sample of groups keeps it one quick read for 30,000
groups; the answer says how many groups and posts it rests on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from qunzhu import metrics
from qunzhu.campaign_status import Outcome, StatusBook
from qunzhu.campaigns import Campaign
from qunzhu.config import SHANGHAI
from qunzhu.redisconn import AsyncRedis, batch, text_of

Measure = Literal["checkins", "claims"]
WINDOW_HOURS = 2
BASELINE_DAYS = 28  # within the status records' 35 days: older days' posts are unknown
SAMPLE_GROUPS = 200


@dataclass(frozen=True)
class Effect:
    """What followed a campaign's posts, with the baseline it is read against."""

    measure: Measure
    days: int
    groups_measured: int
    posts_measured: int
    after: float | None  # mean count in the 2 h after a post
    baseline: float | None  # mean count in the same hours of the same group, days without
    baseline_days: int  # group-days the baseline rests on
    lift: float | None  # after − baseline
    optouts_per_day_with: float | None = None  # promotional only: per group-day with a post
    optouts_per_day_without: float | None = None
    too_many_per_day_with: float | None = None
    too_many_per_day_without: float | None = None

    def to_json(self) -> dict[str, Any]:
        """For the API (means rounded to two places)."""
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def measure_of(campaign: Campaign) -> Measure:
    """Claims for a coupon post, check-ins for everything else."""
    return "claims" if campaign.coupon else "checkins"


def _hours(at: float) -> list[int]:
    start = datetime.fromtimestamp(at, SHANGHAI).hour
    return [h for h in range(start, start + WINDOW_HOURS) if h < 24]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


async def effect(r: AsyncRedis, brand: str, campaign: Campaign, book: StatusBook,
                 today: date, now: datetime, days: int) -> Effect:
    """The campaign's effect over the `days` days up to `today`."""
    measure = measure_of(campaign)
    span = [today - timedelta(days=n) for n in range(max(days, BASELINE_DAYS))]
    recent = set(span[:days])
    sent: dict[tuple[str, date], Outcome] = {}
    for day in span:
        _counts, outcomes = await book.day(campaign.id, day)
        for outcome in outcomes:
            if outcome.state == "sent":  # on the day it went out (a deferral: the next)
                went = datetime.fromtimestamp(outcome.at, SHANGHAI).date()
                sent.setdefault((outcome.chatid, went), outcome)
    groups = sorted({g for g, _d in sent})
    if len(groups) > SAMPLE_GROUPS:
        groups = sorted(random.Random(campaign.id).sample(groups, SAMPLE_GROUPS))
    counts = await _day_counts(r, brand, groups, span)

    after: list[float] = []
    baseline: list[float] = []
    measured = 0
    quiet: set[tuple[str, date]] = set()
    for (group, day), outcome in sent.items():
        if (group not in counts or day not in recent or day not in counts[group]
                or now.timestamp() < outcome.at + WINDOW_HOURS * 3600):
            continue  # not sampled, older than asked, or its window has not ended yet
        hours = _hours(outcome.at)
        measured += 1
        after.append(sum(counts[group][day].get(f"h:{measure}:{h:02d}", 0) for h in hours))
        # days without a post on which the group did anything at all (a day with no data —
        # before the group was served, or the counters were not kept — says nothing)
        quiet_days = [d for d in span if (group, d) not in sent and d < today
                      and sum(counts[group][d].values()) > 0]
        for other in quiet_days:
            baseline.append(sum(counts[group][other].get(f"h:{measure}:{h:02d}", 0)
                                for h in hours))
        quiet.update((group, d) for d in quiet_days)
    mean_after, mean_base = _mean(after), _mean(baseline)
    lift = (mean_after - mean_base) if mean_after is not None and mean_base is not None else None
    out = Effect(measure, days, len(groups), measured, mean_after, mean_base, len(quiet), lift)
    if not campaign.promotional:
        return out
    with_post: dict[str, list[float]] = {"optout_asks": [], "too_many": []}
    without: dict[str, list[float]] = {"optout_asks": [], "too_many": []}
    for group in groups:
        for day in span:
            if day >= today or not sum(counts[group][day].values()):
                continue  # today's signals are still coming in; a day with no data is none
            bucket = with_post if (group, day) in sent else without
            for field in bucket:
                bucket[field].append(counts[group][day].get(field, 0))
    return Effect(**{**asdict(out),
                     "optouts_per_day_with": _mean(with_post["optout_asks"]),
                     "optouts_per_day_without": _mean(without["optout_asks"]),
                     "too_many_per_day_with": _mean(with_post["too_many"]),
                     "too_many_per_day_without": _mean(without["too_many"])})


async def _day_counts(r: AsyncRedis, brand: str, groups: list[str],
                      span: list[date]) -> dict[str, dict[date, Counter[str]]]:
    """Each sampled group's counters on each day (one pipelined round trip)."""
    keys = metrics.MetricKeys(brand)
    pipe = batch(r)
    for group in groups:
        for day in span:
            pipe.hgetall(keys.group_counts(day, group))
    replies = await pipe.execute()
    out: dict[str, dict[date, Counter[str]]] = {}
    it = iter(replies)
    for group in groups:
        out[group] = {day: Counter({text_of(k): int(v) for k, v in next(it).items()})
                      for day in span}
    return out
