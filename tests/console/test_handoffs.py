"""转人工 for staff: a member's request becomes a ticket; claimed once, noted, closed, timed."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from console.roles import Role
from qunzhu import events, metrics, tickets
from qunzhu.events import Event, Kind
from qunzhu.names import NameBook
from qunzhu.redisconn import AsyncRedis
from tests.console.conftest import BRAND, Login, csrf_of

pytestmark = pytest.mark.redis


async def opened(r: AsyncRedis, msgid: str = "wx-1", waited_s: float = 300) -> Event:
    await NameBook(r, BRAND).remember_group("g1", "国贸店福利群", {"u1": "小明"}, 3600)
    history = [{"from": "member", "text": "券用不了"}, {"from": "bot", "text": "没太明白"}]
    event = Event(Kind.HANDOFF_OPENED, f"handoff_opened:{msgid}", "g1", "u1",
                  time.time() - waited_s, {"ticket": msgid, "text": "转人工",
                                           "history": json.dumps(history, ensure_ascii=False)})
    assert await tickets.file(r, BRAND, event)
    assert not await tickets.file(r, BRAND, event)  # a redelivered event: one ticket
    return event


async def sent(r: AsyncRedis, kind: Kind) -> list[Event]:
    found = [Event.from_fields(f) for key in events.stream_keys(BRAND)
             for _id, f in await r.xrange(key)]
    return [e for e in found if e.kind is kind]


async def test_staff_see_the_request_with_names_and_the_conversation(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await opened(redis_client)
    staff = await login(Role.VIEWER)
    page = await (await staff.get("/handoffs")).text()
    assert "小明" in page and "国贸店福利群" in page and "券用不了" in page
    assert "u1" not in page and "已等 5 分钟" in page
    api = await (await staff.get("/api/handoffs")).json()
    assert api["open"][0]["member"] == "小明" and api["open"][0]["history"][0]["who"] == "小明"


async def test_two_staff_claiming_at_once_one_wins_and_the_wait_is_counted(
    login: Login, redis_client: AsyncRedis,
) -> None:
    event = await opened(redis_client, waited_s=300)
    first, second = await login(Role.VIEWER), await login(Role.EDITOR)
    tokens = [await csrf_of(c, "/me") for c in (first, second)]
    answers = await asyncio.gather(*(
        c.post("/api/handoffs/wx-1/claim", headers={"X-CSRF-Token": t})
        for c, t in zip((first, second), tokens, strict=True)))
    assert sorted(a.status for a in answers) == [200, 409]
    loser = next(a for a in answers if a.status == 409)
    assert "已经被" in (await loser.json())["error"]
    [taken] = await sent(redis_client, Kind.HANDOFF_TAKEN)
    assert taken.eid == "handoff_taken:wx-1" and 299 <= int(taken.data["wait_s"]) <= 330
    await metrics.record(redis_client, BRAND, [event, taken])
    today = metrics.day_of(time.time())
    stats = await metrics.range_stats(redis_client, BRAND, today, today, "g1")
    assert stats.total["handoffs_taken"] == 1 and stats.total["handoff_wait_s"] >= 299


async def test_a_note_and_a_close_move_the_ticket_to_the_closed_list(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await opened(redis_client)
    staff = await login(Role.VIEWER)
    token = await csrf_of(staff, "/me")
    await staff.post("/handoffs/wx-1/note", data={"note": "已电话联系，补发券", "_csrf": token})
    done = await staff.post("/handoffs/wx-1/close", data={"_csrf": token})
    assert done.status == 200 and "已关闭" in await done.text()
    again = await staff.post("/api/handoffs/wx-1/close", headers={"X-CSRF-Token": token})
    assert again.status == 409
    api = await (await staff.get("/api/handoffs")).json()
    assert api["open"] == [] and api["closed"][0]["note"] == "已电话联系，补发券"
    assert [e.eid for e in await sent(redis_client, Kind.HANDOFF_CLOSED)] == [
        "handoff_closed:wx-1"]
    missing = await staff.post("/api/handoffs/nope/claim", headers={"X-CSRF-Token": token})
    assert missing.status == 404
