"""Built-in campaign templates operators start from: the rhythm brand groups run on.

Each function returns campaigns as the YAML holds them (dicts), ready to paste into
data/campaigns.yml or to be filled in by the console; every one validates as a `Campaign`.
The wordings live in data/campaign_templates.yml, beside the operators' other files.
The sets follow what community operators run every day:

- 每日打卡提醒 — 09:00, naming yesterday's three longest streaks (a plain reminder when
  nobody checked in yesterday);
- 周报 — Monday morning, the week's check-ins and its three longest streaks;
- 限时抢券 — a coupon pool opening at a set time: a countdown 10 minutes before, the
  opening, a "还剩 N 张" follow-up only while stock lasts, a "已抢光" close only once it is
  gone. The opening is the one promotion; the other three are service notices about it, so
  a rush costs one of the day's promotional posts, not four;
- 迁群 — moving members to a new group: 服务升级通知, a daily 新群领福利 with the days left,
  and a last call the evening before the old group closes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qunzhu.campaigns import Campaign
from qunzhu.config import SHANGHAI
from qunzhu.settings import PROJECT_ROOT, shown_path
from qunzhu.yamlconfig import ConfigError, load_yaml

Doc = dict[str, Any]
WORDINGS = PROJECT_ROOT / "data" / "campaign_templates.yml"


@cache
def _wordings(path: Path = WORDINGS) -> dict[str, dict[str, str]]:
    loaded = load_yaml(path, None)
    return {str(key): {str(f): str(v) for f, v in fields.items()}
            for key, fields in loaded.items()}


def _words(key: str, **fill: str) -> Doc:
    """A template's name and texts, with its <…> parameters filled in."""
    out: Doc = {}
    for field, value in _wordings()[key].items():
        for name, given in fill.items():
            value = value.replace(f"<{name}>", given)
        out[field] = value
    return out


def _at(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def checkin_reminder(*, at: str = "09:00", groups: str | list[str] = "all",
                     campaign_id: str = "checkin_reminder") -> list[Doc]:
    """The morning reminder, with yesterday's top three by name."""
    return [{"id": campaign_id, "groups": groups, **_words("checkin_reminder"),
             "schedule": {"daily": at}, "promotional": False}]


def weekly_recap(*, at: str = "周一 10:00", groups: str | list[str] = "all",
                 campaign_id: str = "weekly_recap") -> list[Doc]:
    """Monday's recap of the week in this group."""
    return [{"id": campaign_id, "groups": groups, **_words("weekly_recap"),
             "schedule": {"weekly": at}, "promotional": False}]


def coupon_rush(*, coupon: str, opens: datetime, groups: str | list[str] = "all",
                campaign_id: str = "rush") -> list[Doc]:
    """A coupon pool opening at `opens`: countdown, opening, stock follow-up, sold-out close."""
    common = {"groups": groups, "coupon": coupon, "jitter_minutes": 0}
    return [
        {**common, "id": f"{campaign_id}_countdown", **_words("rush_countdown"),
         "schedule": {"once": _at(opens - timedelta(minutes=10))}, "promotional": False,
         "condition": "in_stock", "grace_minutes": 5, "timely_minutes": 5},
        {**common, "id": f"{campaign_id}_open", **_words("rush_open"),
         "schedule": {"once": _at(opens)}, "promotional": True, "condition": "in_stock",
         "grace_minutes": 10, "timely_minutes": 30},
        {**common, "id": f"{campaign_id}_left", **_words("rush_left"),
         "schedule": {"once": _at(opens + timedelta(minutes=30))}, "promotional": False,
         "condition": "in_stock", "grace_minutes": 10, "timely_minutes": 30},
        {**common, "id": f"{campaign_id}_closed", **_words("rush_closed"),
         "schedule": {"once": _at(opens + timedelta(minutes=90))}, "promotional": False,
         "condition": "sold_out", "grace_minutes": 30, "timely_minutes": 120},
    ]


def migration(*, new_group: str, notice_at: datetime, closes_on: date,
              groups: str | list[str] = "all", campaign_id: str = "move") -> list[Doc]:
    """Moving a group's members to a new one (`new_group`: its join link or how to join)."""
    fill = {"新群": new_group, "停用日期": f"{closes_on.month}月{closes_on.day}日"}
    return [
        {"id": f"{campaign_id}_notice", "groups": groups, **_words("move_notice", **fill),
         "schedule": {"once": _at(notice_at)}, "promotional": False, "jitter_minutes": 0},
        {"id": f"{campaign_id}_perk", "groups": groups, **_words("move_perk", **fill),
         "schedule": {"daily": "10:00"}, "starts": (notice_at.date() + timedelta(days=1)),
         "ends": closes_on - timedelta(days=1), "countdown_to": closes_on,
         "promotional": False},
        {"id": f"{campaign_id}_last_call", "groups": groups,
         **_words("move_last_call", **fill),
         "schedule": {"once": _at(datetime.combine(closes_on - timedelta(days=1),
                                                   datetime.min.time(), SHANGHAI)
                                  + timedelta(hours=20))},
         "promotional": False, "jitter_minutes": 0},
    ]


def validated(docs: list[Doc]) -> list[Campaign]:
    """The documents as campaigns; ConfigError naming the template when one is not valid."""
    out = []
    for doc in docs:
        try:
            out.append(Campaign.parse_obj(doc))
        except ValidationError as exc:
            raise ConfigError(f"{shown_path(WORDINGS)}: {doc.get('name')}: "
                              f"{exc.errors()[0]['msg']}") from None
    return out


def builtin_examples() -> list[Doc]:
    """Every built-in template once, with example parameters (what `make validate` checks)."""
    opens = datetime(2026, 12, 12, 12, 0, tzinfo=SHANGHAI)
    return (checkin_reminder() + weekly_recap() + coupon_rush(coupon="cut_30_5", opens=opens)
            + migration(new_group="https://work.weixin.qq.com/gm/example", notice_at=opens,
                        closes_on=opens.date() + timedelta(days=7)))
