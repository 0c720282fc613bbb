"""Names, never ids: the directory in Redis, the leaderboard's names and its tie order."""

from __future__ import annotations

import re

from actions import runtime
from actions.checkin import ActionCheckIn
from actions.clock import FixedClock
from actions.points import ActionLeaderboard
from actions.store import GameStore, Turn
from qunzhu.config import CheckinRules
from qunzhu.names import NameBook, masked
from qunzhu.redisconn import AsyncRedis
from tests.conftest import TEST_BRAND
from tests.helpers import run, texts, tracker

RULES = CheckinRules.parse_obj({"base_points": 5})


def test_masked_names_are_neutral_stable_and_hide_the_id() -> None:
    label = masked("wm_fyhkn8xo")
    assert re.fullmatch(r"群友·[a-z2-7]{4}", label)
    assert label == masked("wm_fyhkn8xo") and label != masked("wm_fyhkn8xp")
    assert "n8xo" not in label and "wm" not in label
    assert masked("wrxyz", "群聊").startswith("群聊·")


async def test_group_nickname_beats_the_persons_name_beats_the_mask(
    redis_client: AsyncRedis,
) -> None:
    book = NameBook(redis_client, TEST_BRAND)
    await book.remember_person("zhangsan", "张三", 60)
    await book.remember_person("lisi", "李四", 60)
    await book.remember_group("g1", "咖啡群", {"zhangsan": "三哥 ☕", "lisi": ""}, 60)
    names = await book.members("g1", ["zhangsan", "lisi", "wo_unknown"])
    assert names == {"zhangsan": "三哥 ☕", "lisi": "李四", "wo_unknown": masked("wo_unknown")}
    assert await book.members("g2", ["zhangsan"]) == {"zhangsan": "张三"}
    assert await book.group("g1") == "咖啡群"
    assert (await book.group("g9")).startswith("群聊·")
    # A fresh list replaces the old one: who left is no longer named from this group.
    await book.remember_group("g1", "咖啡群", {"lisi": "小李"}, 60)
    assert await book.members("g1", ["zhangsan", "lisi"]) == {"zhangsan": "张三", "lisi": "小李"}
    assert await redis_client.ttl(book.keys.group_members("g1")) > 0  # cached with a TTL
    assert await book.is_fresh("g1") and not await book.is_fresh("g2")


async def test_names_are_cleaned_and_bounded(redis_client: AsyncRedis) -> None:
    book = NameBook(redis_client, TEST_BRAND)
    await book.remember_person("u1", "  多行\n名字  " + "长" * 80, 60)
    name = await book.member("", "u1")
    assert "\n" not in name and name.startswith("多行 名字") and len(name) == 32


async def _check_in(store: GameStore, user: str, now: int, msgid: str,
                    group: str = "g1") -> None:
    await store.check_in(Turn(user=user, group=group, msgid=msgid, now=now), RULES,
                         today="2026-11-23", yesterday="2026-11-22")


async def test_ties_rank_whoever_reached_the_score_first(store: GameStore) -> None:
    base = 1_795_000_000
    # 阿强 checks in before 莉莉 and 小红 — in the same second: neither reverse-alphabetical
    # ids nor the clock's resolution may decide.
    for i, user in enumerate(["aqiang", "lili", "xiaohong"]):
        await _check_in(store, user, base, f"m{i}")
    top = await store.leaderboard("g1", 10)
    assert [(s.user, s.score, s.rank) for s in top] == [
        ("aqiang", 5, 1), ("lili", 5, 2), ("xiaohong", 5, 3)]
    for s in top:  # the rank a member is told equals the listed order
        mine = await store.rank_of("g1", s.user)
        assert mine is not None and (mine.rank, mine.score) == (s.rank, s.score)
    # Next day 小红 checks in first: she reaches 10 first and leads; points still rule.
    await store.check_in(Turn(user="xiaohong", group="g1", msgid="d2a", now=base + 86_400),
                         RULES, today="2026-11-24", yesterday="2026-11-23")
    await store.check_in(Turn(user="aqiang", group="g1", msgid="d2b", now=base + 86_401),
                         RULES, today="2026-11-24", yesterday="2026-11-23")
    assert [(s.user, s.score) for s in await store.leaderboard("g1", 10)] == [
        ("xiaohong", 10), ("aqiang", 10), ("lili", 5)]


async def test_an_old_integer_score_keeps_its_points(store: GameStore) -> None:
    await store._r.zadd(store.keys.leaderboard("g1"), {"veteran": 40})
    await _check_in(store, "veteran", 1_795_000_000, "v1")
    [row] = await store.leaderboard("g1", 10)
    assert (row.user, row.score) == ("veteran", 45)


async def test_leaderboard_shows_names_in_check_in_order(
    services: runtime.Services, clock: FixedClock,
) -> None:
    await services.names.remember_group("g1", "福利群", {"aqiang": "阿强", "xiaohong": "小红"},
                                        60)
    for user in ("aqiang", "xiaohong", "wm_fyhkn8xo"):
        await run(ActionCheckIn(), tracker("打卡", user=user))
        clock.advance(seconds=30)
    msgs, _ = await run(ActionLeaderboard(), tracker("排行榜", user="xiaohong"))
    rows = msgs[0]["rows"]
    assert rows.index("阿强") < rows.index("小红") < rows.index(masked("wm_fyhkn8xo"))
    assert not any(i in rows for i in ("aqiang", "xiaohong", "wm_fyhkn8xo", "n8xo"))
    assert msgs[0]["rank"] == 2  # what she is told matches where she is listed
    assert all("{" not in t for t in texts(msgs))


async def test_a_name_never_becomes_markdown(redis_client: AsyncRedis) -> None:
    book = NameBook(redis_client, TEST_BRAND)
    await book.remember_group("g1", "群", {"u1": "[领奖](http://x.cn) <font>*#`"}, 60)
    name = await book.member("g1", "u1")
    assert not any(ch in name for ch in "[]()<>*#`") and "领奖" in name
