"""data/campaigns.yml: croniter schedules, budgets that only tighten, errors with line and field."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest

from qunzhu.campaigns import CEILING, CampaignsFile, Limits, Schedule, load_campaigns
from qunzhu.config import SHANGHAI
from qunzhu.settings import PROJECT_ROOT
from qunzhu.yamlconfig import ConfigError

HERE = Path("data/campaigns.yml")


def load(text: str) -> CampaignsFile:
    return load_campaigns(HERE, text=text)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def test_the_project_file_is_valid_and_tightens_the_budget() -> None:
    loaded = load_campaigns(PROJECT_ROOT / HERE)
    assert [c.id for c in loaded.campaigns] == ["checkin_reminder", "weekly_recap",
                                                "noon_coupon_rush"]
    assert loaded.limits("sandbox", []).promo_per_day == 2
    assert loaded.limits("staff", []).promo_per_day == 0


@pytest.mark.parametrize("schedule,after,until,expected", [
    ({"daily": "09:00"}, local(2026, 11, 25, 8), local(2026, 11, 27, 8),
     [local(2026, 11, 25, 9), local(2026, 11, 26, 9)]),
    ({"weekly": "周一 10:00"}, local(2026, 11, 25), local(2026, 12, 8),
     [local(2026, 11, 30, 10), local(2026, 12, 7, 10)]),
    ({"weekly": "mon 10:00"}, local(2026, 11, 25), local(2026, 12, 1),
     [local(2026, 11, 30, 10)]),
    ({"cron": "30 12 * * 1-5"}, local(2026, 11, 27, 13), local(2026, 12, 1, 13),
     [local(2026, 11, 30, 12, 30), local(2026, 12, 1, 12, 30)]),
    ({"once": "2026-12-12 12:00"}, local(2026, 12, 1), local(2026, 12, 31),
     [local(2026, 12, 12, 12)]),
    ({"once": "2026-12-12 12:00"}, local(2026, 12, 12, 12), local(2026, 12, 31), []),
])
def test_a_schedule_lists_its_local_times_in_a_window(
    schedule: dict[str, str], after: datetime, until: datetime, expected: list[datetime],
) -> None:
    assert list(Schedule.parse_obj(schedule).between(after, until)) == expected


def test_an_occurrence_exactly_at_the_window_end_counts_once() -> None:
    daily = Schedule.parse_obj({"daily": "09:00"})
    first = list(daily.between(local(2026, 11, 25, 8), local(2026, 11, 25, 9)))
    second = list(daily.between(local(2026, 11, 25, 9), local(2026, 11, 25, 10)))
    assert first == [local(2026, 11, 25, 9)] and second == []


CAMPAIGN = """\
campaigns:
  - id: c1
    name: 提醒
    text: 打卡啦
    schedule: {daily: "09:00"}
    promotional: false
"""


@pytest.mark.parametrize("text,expected", [
    (CAMPAIGN.replace('{daily: "09:00"}', '{daily: "25:00"}'),
     "data/campaigns.yml:5: campaigns[0].schedule.daily: expected a local time like 09:00"),
    (CAMPAIGN.replace('{daily: "09:00"}', '{cron: "0 9 * *"}'),
     "campaigns[0].schedule.cron: expected a cron expression of five fields"),
    (CAMPAIGN.replace('{daily: "09:00"}', '{daily: "09:00", once: "2026-12-01 09:00"}'),
     "give exactly one of daily, weekly, cron or once"),
    (CAMPAIGN.replace('{daily: "09:00"}', '{weekly: "someday 10:00"}'),
     "expected a weekday and a time"),
    (CAMPAIGN.replace("    promotional: false\n", ""),
     "campaigns[0].promotional: field required"),
    (CAMPAIGN + "    starts: 2026-12-02\n    ends: 2026-12-01\n",
     "ends must be on or after starts"),
    ("budget:\n  promo_per_day: 5\n" + CAMPAIGN, "budget.promo_per_day: at most 3"),
    ("budget:\n  promo_gap_minutes: 30\n" + CAMPAIGN, "promo_gap_minutes: at least 120"),
    ("budget:\n  quiet_hours: 23:00-07:00\n" + CAMPAIGN, "quiet_hours: must cover 22:00-08:00"),
    ("budget_by_tag:\n  vip: {service_per_day: 11}\n" + CAMPAIGN,
     "budget_by_tag.vip.service_per_day: at most 10"),
    (CAMPAIGN + CAMPAIGN.removeprefix("campaigns:\n"), "duplicate id c1"),
    (CAMPAIGN.replace("    text: 打卡啦\n", "    text: 打卡啦\n    colour: red\n"),
     "campaigns[0].colour: extra fields not permitted"),
])
def test_a_mistake_is_named_with_its_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(text)
    assert expected in str(error.value), str(error.value)


def test_an_empty_file_means_no_campaigns() -> None:
    assert load("").campaigns == [] and load("# nothing yet\n").limits("g", []) == CEILING


def test_budgets_tighten_from_all_groups_to_a_tag_to_a_group_and_never_loosen() -> None:
    loaded = load("budget:\n  promo_per_day: 2\n  quiet_hours: 21:00-09:00\n"
                  "budget_by_tag:\n  vip: {promo_per_day: 1, promo_gap_minutes: 240}\n"
                  "  calm: {quiet_hours: 22:00-08:00}\n"
                  "budget_by_group:\n  g1: {promo_per_day: 3}\n" + CAMPAIGN)
    assert loaded.limits("g0", []) == Limits(2, 120, time(21), time(9), 10)
    assert loaded.limits("g0", ["vip"]) == Limits(1, 240, time(21), time(9), 10)
    assert loaded.limits("g1", []).promo_per_day == 2, "a group cannot get more than all"
    assert loaded.limits("g0", ["calm"]).quiet_start == time(21), "nor a shorter night"


def test_targets_by_list_tag_or_all() -> None:
    groups = {"g1": ["vip"], "g2": [], "g3": ["vip", "north"]}
    base = {"id": "c", "name": "n", "text": "t", "schedule": {"daily": "09:00"},
            "promotional": True}
    from qunzhu.campaigns import Campaign
    assert Campaign.parse_obj(base).targets(groups) == ["g1", "g2", "g3"]
    assert Campaign.parse_obj({**base, "groups": ["g2", "gone"]}).targets(groups) == ["g2"]
    assert Campaign.parse_obj({**base, "tags": ["vip"]}).targets(groups) == ["g1", "g3"]
    window = Campaign.parse_obj({**base, "starts": "2026-12-01", "ends": "2026-12-03"})
    assert [window.active_on(date(2026, 12, d)) for d in (1, 3, 4)] == [True, True, False]


def test_a_welcome_must_name_the_newcomers_and_use_known_placeholders() -> None:
    from pydantic import ValidationError

    from qunzhu.campaigns import Welcome
    with pytest.raises(ValidationError, match="新人"):
        Welcome.parse_obj({"text": "欢迎加入！"})
    with pytest.raises(ValidationError, match="unknown placeholder"):
        Welcome.parse_obj({"text": "欢迎 {新人}，{生日}快乐"})
    file = CampaignsFile.parse_obj({"welcomes": [
        {"text": "北区欢迎 {新人}", "tags": ["north"]}, {"text": "欢迎 {新人} 来到{群名}"}]})
    assert file.welcome_for("g1", ["north"]) == "北区欢迎 {新人}"
    assert file.welcome_for("g2", []) == "欢迎 {新人} 来到{群名}"


@pytest.mark.parametrize("cron, problem", [
    ("0 10 30 2 *", "never fires"),  # 30 February: valid syntax, no date
    ("* * * * *", "fires too often"),
    ("*/20 9 * * *", "fires too often"),
])
def test_a_schedule_that_never_fires_or_fires_too_often_is_refused(cron: str,
                                                                    problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Schedule.parse_obj({"cron": cron})
