"""Due occurrences: every one listed once across consecutive windows, spread by a shared jitter."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise

from bot.campaigns.occurrences import SpreadCache, due_between
from qunzhu.campaigns import CampaignsFile, jitter
from qunzhu.config import SHANGHAI

DAY = datetime(2026, 11, 25, tzinfo=SHANGHAI)


def campaigns(**extra: object) -> CampaignsFile:
    base = {"id": "checkin_reminder", "name": "每日打卡提醒", "text": "打卡啦",
            "schedule": {"daily": "09:00"}, "promotional": False, **extra}
    return CampaignsFile.parse_obj({"campaigns": [base]})


def test_the_same_occurrence_gets_the_same_moment_in_every_process() -> None:
    assert jitter("a:20261125T0900:g1", 5) == jitter("a:20261125T0900:g1", 5)
    offsets = [jitter(f"a:20261125T0900:g{i}", 5) for i in range(1000)]
    assert all(timedelta(minutes=-5) <= o <= timedelta(minutes=5) for o in offsets)
    assert jitter("anything", 0) == timedelta(0)


def test_thirty_thousand_groups_are_spread_over_the_window_not_one_second() -> None:
    groups: dict[str, list[str]] = {f"g{i}": [] for i in range(30_000)}
    found = due_between(campaigns(), groups, DAY, DAY + timedelta(days=1))
    assert len(found) == 30_000
    per_minute = Counter(o.due.replace(second=0) for o in found)
    assert len(per_minute) == 11, "09:00 ± 5 minutes, every minute used"
    assert max(per_minute.values()) < 30_000 / 11 * 1.2
    assert min(o.due for o in found) >= DAY + timedelta(hours=8, minutes=55)


def test_consecutive_windows_list_every_occurrence_exactly_once() -> None:
    groups: dict[str, list[str]] = {f"g{i}": [] for i in range(500)}
    file = campaigns()
    start = DAY + timedelta(hours=8, minutes=50)
    whole = due_between(file, groups, start, start + timedelta(minutes=20))
    ticks = [start + timedelta(seconds=7 * i) for i in range(0, 20 * 60 // 7 + 2)]
    pieces = [o for a, b in pairwise(ticks)
              for o in due_between(file, groups, a, b)]
    assert len(pieces) == len(whole) == 500
    assert sorted(o.id for o in pieces) == sorted(o.id for o in whole)


def test_dates_tags_and_switches_decide_who_gets_what() -> None:
    groups = {"g1": ["vip"], "g2": [], "g3": ["vip"]}
    week = (DAY, DAY + timedelta(days=7))
    windowed = due_between(campaigns(starts="2026-11-26", ends="2026-11-27"), groups, *week)
    assert sorted({o.scheduled.day for o in windowed}) == [26, 27]
    tagged = due_between(campaigns(tags=["vip"]), groups, DAY, DAY + timedelta(days=1))
    assert sorted(o.chatid for o in tagged) == ["g1", "g3"]
    assert due_between(campaigns(enabled=False), groups, *week) == []


def test_an_occurrence_knows_its_id_deadline_and_when_it_was_missed() -> None:
    (found,) = due_between(campaigns(jitter_minutes=0, timely_minutes=60), {"g1": []},
                           DAY, DAY + timedelta(days=1))
    assert found.id == "checkin_reminder:20261125T0900:g1"
    assert found.deadline == DAY + timedelta(hours=10)
    assert not found.missed(found.due + timedelta(minutes=15), timedelta(minutes=15))
    assert found.missed(found.due + timedelta(minutes=16), timedelta(minutes=15))


def test_the_scheduler_s_cache_of_spreads_changes_no_answer() -> None:
    groups: dict[str, list[str]] = {f"g{i}": [] for i in range(300)}
    file = campaigns(jitter_minutes=10)
    cache: SpreadCache = {}
    start = DAY + timedelta(hours=8, minutes=45)
    for step in range(60):
        after = start + timedelta(seconds=30 * step)
        until = after + timedelta(seconds=30)
        assert due_between(file, groups, after, until, cache) == due_between(
            file, groups, after, until)
    assert len(cache) == 1, "one scheduled time, computed once"
