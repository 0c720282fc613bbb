"""Date ranges from a page's or a script's query: checked, bounded, in the brand's calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from qunzhu import metrics

MAX_DAYS = 400
DEFAULT_DAYS = 30


class RangeError(ValueError):
    """A range the console cannot show, with the reason in Chinese."""


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of the brand's calendar days."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RangeError(f"{field}应为 年-月-日，例如 2026-11-01（收到：{text[:20]}）") from None


def parse_range(query: dict[str, str], today: date | None = None) -> DateRange:
    """`from`/`to` (YYYY-MM-DD) of the query; the last 30 days when absent."""
    today = today or metrics.today()
    last = _day(query["to"], "结束日期") if query.get("to") else today
    first = (_day(query["from"], "开始日期") if query.get("from")
             else last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise RangeError("开始日期不能晚于结束日期")
    if (last - first).days + 1 > MAX_DAYS:
        raise RangeError(f"一次最多查看 {MAX_DAYS} 天")
    return DateRange(first, last)


def parse_health(query: dict[str, str]) -> tuple[int, date]:
    """The group list's window and the day it ends (`window`, `to`; today when absent)."""
    return parse_window(query.get("window")), parse_range({"to": query.get("to", "")}).last


def parse_window(text: str | None) -> int:
    """The group list's comparison window in days (7, 14 or 30)."""
    if not text:
        return 7
    if text not in ("7", "14", "30"):
        raise RangeError("对比周期只能是 7、14 或 30 天")
    return int(text)
