"""What an operator reads: the brand's and a group's numbers, the group list, CSV, the API."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest

from console.roles import Role
from qunzhu import metrics
from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis
from tests.console.conftest import BRAND, Login

pytestmark = pytest.mark.redis

TODAY = metrics.today()


def at(day: date, hour: int = 10) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=metrics.TZ).timestamp()


async def a_fortnight(r: AsyncRedis) -> None:
    """g1 (国贸店) stopped checking in this week; g2 (望京店) kept going; g1 had fallbacks."""
    batch = []
    for offset in range(14):
        day = TODAY - timedelta(days=13 - offset)
        for group in ("g1", "g2"):
            for u in range(5):
                user = f"{group}u{u}"
                batch.append(Event(Kind.TURN, f"t{group}{u}{offset}", group, user, at(day),
                                   {"intent": "checkin", "confidence": 0.95}))
                if group == "g2" or offset < 7:
                    batch.append(Event(Kind.CHECKIN, f"c{group}{u}{offset}", group, user,
                                       at(day), {"streak": offset + 1, "points": 10}))
        batch.append(Event(Kind.TURN, f"fb{offset}", "g1", "g1u0", at(day, 11),
                           {"intent": "nlu_fallback", "confidence": 0.2, "fallback": True}))
    batch.append(Event(Kind.CLAIM, "claim1", "g2", "g2u1", at(TODAY), {"campaign": "c1"}))
    batch.append(Event(Kind.CLAIM, "claim2", "g2", "g2u2", at(TODAY), {"campaign": "c1"}))
    batch.append(Event(Kind.REDEEMED, "red1", "g2", "g2u1", at(TODAY), {"campaign": "c1"}))
    batch.append(Event(Kind.JOINED, "join1", "g2", "g2u9", at(TODAY)))
    await metrics.record(r, BRAND, batch)


async def test_the_api_gives_the_brand_and_a_groups_numbers_over_a_range(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await a_fortnight(redis_client)
    viewer = await login(Role.VIEWER)
    first = (TODAY - timedelta(days=13)).isoformat()
    brand = await (await viewer.get(f"/api/stats?from={first}&to={TODAY}")).json()
    assert brand["kpis"]["active_members"] == 10
    assert brand["kpis"]["checkins"] == 5 * 7 + 5 * 14
    assert brand["kpis"]["claims"] == 2 and brand["kpis"]["redeemed"] == 1
    assert brand["kpis"]["redeem_rate"] == 0.5
    assert brand["kpis"]["fallback_rate"] == pytest.approx(14 / (14 * 10 + 14))
    assert len(brand["days"]) == 14 and brand["days"][-1]["day"] == TODAY.isoformat()
    assert dict(brand["top_intents"])["checkin"] == 140
    g1 = await (await viewer.get(f"/api/stats?from={first}&to={TODAY}&group=g1")).json()
    assert g1["kpis"]["checkins"] == 35 and g1["kpis"]["active_members"] == 5


async def test_a_bad_range_gets_a_clear_reason_not_an_error_page(login: Login) -> None:
    viewer = await login(Role.VIEWER)
    for query, reason in [("from=2026-13-01", "开始日期"), ("from=2026-11-10&to=2026-11-01",
                                                          "不能晚于"),
                          ("from=2024-01-01&to=2026-01-01", "最多")]:
        api = await viewer.get(f"/api/stats?{query}")
        assert api.status == 400 and reason in (await api.json())["error"]
        page = await viewer.get(f"/?{query}")
        assert page.status == 400 and reason in await page.text()
    assert (await viewer.get("/api/groups?window=9")).status == 400


async def test_the_group_list_puts_the_group_whose_check_ins_fell_first_by_name(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await a_fortnight(redis_client)
    viewer = await login(Role.VIEWER)
    rows = (await (await viewer.get(f"/api/groups?window=7&to={TODAY}")).json())["groups"]
    assert [r["name"] for r in rows] == ["国贸店福利群", "望京店福利群"]
    assert rows[0]["checkin_trend"] == pytest.approx(-1.0) and rows[0]["checkin_rate"] == 0.0
    page = await (await viewer.get(f"/groups?to={TODAY}")).text()
    assert page.index("国贸店福利群") < page.index("望京店福利群")
    assert "-100 个百分点" in page and "g1</a>" not in page  # names, not ids


async def test_the_csv_export_has_a_row_per_day_and_a_total_in_chinese(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await a_fortnight(redis_client)
    viewer = await login(Role.VIEWER)
    first = (TODAY - timedelta(days=6)).isoformat()
    response = await viewer.get(f"/export.csv?from={first}&to={TODAY}&group=g2")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    text = (await response.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0][:3] == ["日期", "活跃成员", "对话"]
    assert len(rows) == 1 + 7 + 1 and rows[-1][0] == "合计"
    checkins = rows[0].index("打卡")
    assert [int(r[checkins]) for r in rows[1:-1]] == [5] * 7 and rows[-1][checkins] == "35"


async def test_the_dashboard_page_shows_the_numbers_and_carries_the_chart_data(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await a_fortnight(redis_client)
    viewer = await login(Role.VIEWER)
    page = await (await viewer.get("/groups/g1")).text()
    assert "国贸店福利群" in page and "活跃成员" in page and "每日明细" in page
    assert 'id="chart-data"' in page and "/static/vendor/echarts.min.js" in page
    empty = await (await viewer.get("/groups/nosuchgroup")).text()
    assert "每日明细" in empty  # a group with no data yet is an empty dashboard, not an error


async def test_echarts_is_served_by_the_console_itself(login: Login) -> None:
    viewer = await login(Role.VIEWER)
    response = await viewer.get("/static/vendor/echarts.min.js")
    assert response.status == 200
    assert b"echarts" in (await response.read())[:2000]


async def test_the_group_list_shows_which_groups_say_too_many_posts_and_sorts_by_it(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await a_fortnight(redis_client)
    said = [Event(Kind.TOO_MANY, f"too_many:g2:{user}:{TODAY}", "g2", user, at(TODAY), {})
            for user in ("g2u1", "g2u2", "g2u1")]  # g2u1's second is the same member-day
    await metrics.record(redis_client, BRAND, said)
    viewer = await login(Role.VIEWER)
    rows = (await (await viewer.get(f"/api/groups?window=7&to={TODAY}&sort=too_many"))
            .json())["groups"]
    assert [(r["name"], r["too_many"]) for r in rows] == [("望京店福利群", 2), ("国贸店福利群", 0)]
    page = await (await viewer.get(f"/groups?to={TODAY}&sort=too_many")).text()
    assert "嫌消息多" in page and page.index("望京店福利群") < page.index("国贸店福利群")
    csv_text = (await (await viewer.get(f"/export.csv?from={TODAY}&to={TODAY}&group=g2"))
                .read()).decode("utf-8")
    rows_csv = list(csv.reader(io.StringIO(csv_text[1:])))
    assert rows_csv[-1][rows_csv[0].index("嫌消息多")] == "2"
