"""What the console shows, computed once for a page, its JSON API and its CSV export alike."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.ranges import DateRange
from qunzhu import metrics
from qunzhu.metrics import GroupHealth, RangeStats
from qunzhu.redisconn import AsyncRedis

# The per-day table's columns: counter name → heading.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("turns", "对话"), ("fallbacks", "未答上"), ("checkins", "打卡"), ("claims", "领券"),
    ("redeemed", "核销"), ("draws", "抽奖"), ("prizes", "中奖"), ("points_earned", "积分发放"),
    ("points_spent", "积分消耗"), ("handoffs_opened", "转人工"), ("posts_sent", "群发消息"),
    ("joins", "入群"), ("leaves", "退群"), ("optouts", "关闭@提醒（净增）"),
    ("too_many", "嫌消息多"),
)
STREAK_ORDER = [name for _upper, name in metrics.STREAK_BUCKETS] + ["31+"]


@dataclass(frozen=True)
class Report:
    """A brand's (or one group's) numbers over a range."""

    range: DateRange
    group: str
    stats: RangeStats

    def kpis(self) -> dict[str, Any]:
        t = self.stats.total
        turns = t.get("turns", 0)
        taken = t.get("handoffs_taken", 0)
        return {
            "active_members": self.stats.active,
            "turns": turns,
            "checkins": t.get("checkins", 0),
            "checkin_rate": self.stats.checkin_rate(),
            "claims": t.get("claims", 0),
            "redeemed": t.get("redeemed", 0),
            "redeem_rate": self.stats.rate("redeemed", "claims"),
            "draws": t.get("draws", 0),
            "prizes": t.get("prizes", 0),
            "points_earned": t.get("points_earned", 0),
            "points_spent": t.get("points_spent", 0),
            "handoffs": t.get("handoffs_opened", 0),
            "first_response_s": None if not taken else t.get("handoff_wait_s", 0) / taken,
            "fallback_rate": None if not turns else t.get("fallbacks", 0) / turns,
            "posts_sent": t.get("posts_sent", 0),
            "joins": t.get("joins", 0),
            "leaves": t.get("leaves", 0),
        }

    def as_json(self) -> dict[str, Any]:
        """The whole report for the API and the charts."""
        return {
            "from": self.range.first.isoformat(), "to": self.range.last.isoformat(),
            "group": self.group, "kpis": self.kpis(),
            "days": [{"day": d.day.isoformat(), "active_members": d.active,
                      **{name: d.get(name) for name in metrics.COUNTERS}}
                     for d in self.stats.days],
            "top_intents": self.stats.distribution("i:")[:15],
            "streaks": [(b, self.stats.total.get(f"s:{b}", 0)) for b in STREAK_ORDER],
            "prizes": self.stats.distribution("p:"),
            "claims_by_campaign": self.stats.distribution("c:"),
            "redeemed_by_campaign": self.stats.distribution("r:"),
        }

    def csv(self) -> str:
        """One row per day, Chinese headings, with a BOM so spreadsheet programs read it."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["日期", "活跃成员", *[label for _n, label in COLUMNS]])
        for d in self.stats.days:
            writer.writerow([d.day.isoformat(), d.active, *[d.get(n) for n, _l in COLUMNS]])
        writer.writerow(["合计", self.stats.active,
                         *[self.stats.total.get(n, 0) for n, _l in COLUMNS]])
        return "\ufeff" + out.getvalue()


async def report(r: AsyncRedis, brand: str, span: DateRange, group: str = "") -> Report:
    return Report(span, group,
                  await metrics.range_stats(r, brand, span.first, span.last, group))


SORTS: dict[str, tuple[str, Callable[[GroupHealth], Any]]] = {
    "trend": ("打卡率变化", lambda h: (h.checkin_trend is None, h.checkin_trend or 0.0)),
    "checkin_rate": ("打卡率", lambda h: (h.checkin_rate is None, h.checkin_rate or 0.0)),
    "active": ("日均活跃", lambda h: -h.active),
    "fallback": ("未答上比例", lambda h: (h.fallback_rate is None, -(h.fallback_rate or 0.0))),
    "handoffs": ("转人工", lambda h: -h.handoffs),
    "leaves": ("退群", lambda h: -h.leaves),
    "too_many": ("嫌消息多", lambda h: -h.too_many),
}


def health_rows(health: list[GroupHealth], names: dict[str, str],
                sort: str) -> list[dict[str, Any]]:
    """The group list, neediest first by the chosen measure; groups shown by name."""
    key = SORTS.get(sort, SORTS["trend"])[1]
    rows = sorted(health, key=lambda h: (key(h), names.get(h.group, h.group)))
    return [{"group": h.group, "name": names.get(h.group, h.group), "active": round(h.active, 1),
             "turns": h.turns, "checkins": h.checkins, "checkin_rate": h.checkin_rate,
             "checkin_rate_before": h.checkin_rate_before, "checkin_trend": h.checkin_trend,
             "fallback_rate": h.fallback_rate, "handoffs": h.handoffs, "joins": h.joins,
             "leaves": h.leaves, "too_many": h.too_many} for h in rows]
