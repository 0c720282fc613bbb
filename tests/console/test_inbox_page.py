"""The inbox as an operator reads it: one row per topic, counted by members, with names."""

from __future__ import annotations

import time

import pytest

from console.clusters import cluster
from console.roles import Role
from qunzhu import inbox
from qunzhu.events import Event, Kind
from qunzhu.inbox import Item
from qunzhu.names import NameBook
from qunzhu.redisconn import AsyncRedis
from tests.console.conftest import BRAND, Login

ASKED = {
    "团购": ["团购怎么买", "你们有团购吗", "团购在哪里下单", "公司团购能开发票吗", "团购有优惠吗",
             "能團購嗎？", "请问你们的团购怎么参加呀"],
    "停车": ["停车方便吗", "附近有停车位吗", "门店能停车吗", "停车场在哪"],
    "燕麦": ["有没有燕麦拿铁", "燕麦奶可以换吗", "拿铁能换燕麦奶吗"],
    "wifi": ["wifi密码多少", "店里有wifi吗", "无线网密码是啥"],
}
ALONE = ["哈哈哈", "今天天气不错", "你们招聘吗"]


def item(n: int, text: str, user: str, group: str = "g1") -> Item:
    closest = "faq/delivery" if text in ASKED["团购"] else ""
    return Item(f"t{n}", 1_800_000_000 + n, group, user, text, "没太明白", "nlu_fallback", 0.3,
                closest, ("fallback",))


def test_questions_about_one_thing_are_one_cluster_however_they_are_worded() -> None:
    items = [item(n, text, f"u{n}") for n, text in enumerate(
        [t for texts in ASKED.values() for t in texts] + ALONE)]
    found = cluster(items)
    topics = [sorted(i.text for i in c.items) for c in found if c.size > 1]
    assert sorted(topics) == sorted(sorted(t) for t in ASKED.values())
    assert found[0].members == 7 and found[0].title in ASKED["团购"]  # the most asked first
    assert found[0].closest == ("faq/delivery", 1.0)
    assert all(c.size == 1 for c in found if c.items[0].text in ALONE)


def test_the_same_words_from_many_members_count_members_not_just_messages() -> None:
    items = [item(n, "积分什么时候过期", f"u{n % 3}") for n in range(9)]
    [only] = cluster(items)
    assert (only.size, only.members, len(only.examples)) == (9, 3, 1)


@pytest.mark.redis
async def test_the_inbox_page_and_api_show_topics_with_group_and_member_names(
    login: Login, redis_client: AsyncRedis,
) -> None:
    await NameBook(redis_client, BRAND).remember_group("g1", "国贸店福利群",
                                                       {"u1": "小明", "u2": "阿强"}, 3600)
    now = time.time()
    turns = [Event(Kind.TURN, f"turn:{n}", "g1", user, now - 60 * n, {
        "intent": "nlu_fallback", "confidence": 0.3, "fallback": True, "text": text,
        "answer": "没太明白，换个说法试试？", "closest": "faq/delivery"})
        for n, (user, text) in enumerate([("u1", "团购怎么买"), ("u2", "你们有团购吗"),
                                          ("u1", "停车方便吗")])]
    await inbox.collect(redis_client, BRAND, turns)
    viewer = await login(Role.VIEWER)
    api = await (await viewer.get("/api/inbox?days=7")).json()
    top = api["clusters"][0]
    assert (top["members"], top["messages"]) == (2, 2) and "团购" in top["title"]
    assert top["groups"] == ["国贸店福利群"]
    assert {e["member"] for e in top["examples"]} == {"小明", "阿强"}
    assert top["reasons"] == [["没听懂", 2]]
    page = await (await viewer.get("/inbox")).text()
    assert "2 人问了 2 次" in page and "小明" in page and "u1" not in page
    assert (await viewer.get("/api/inbox?days=3")).status == 400
