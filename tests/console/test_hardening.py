"""What a hostile or unlucky request meets: each case here was a real hole once (a review
of the console found them; each test failed before its fix)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from console import keys
from console.accounts import Accounts
from console.clusters import MAX_TEXTS, cluster
from console.roles import Role
from console.views.login import safe_next
from qunzhu import coupons, metrics
from qunzhu.events import Event, Kind
from qunzhu.inbox import Item
from qunzhu.redisconn import AsyncRedis
from tests.console.conftest import PASSWORD, Login, csrf_of, sign_in
from tests.console.test_redeem import STORE, issue

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("target", [
    "//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil.example/",
    "javascript:alert(1)", "/ /evil.example", "evil.example",
])
def test_sign_in_never_sends_anyone_off_the_console(target: str) -> None:
    assert safe_next(target) == "/"


def test_sign_in_keeps_a_real_page_to_go_back_to() -> None:
    assert safe_next("/groups?window=14&sort=leaves") == "/groups?window=14&sort=leaves"


async def test_thirty_guesses_sent_at_once_are_thirty_attempts(
    anonymous: TestClient, accounts: Accounts,
) -> None:
    await accounts.create("clerk", "店员", Role.VIEWER, PASSWORD)
    token = await csrf_of(anonymous)
    answers = await asyncio.gather(*(anonymous.post("/login", data={
        "name": "clerk", "password": "wrong-password!", "_csrf": token, "next": "/"},
        allow_redirects=False) for _ in range(30)))
    statuses = [a.status for a in answers]
    assert statuses.count(401) <= 5 and statuses.count(429) >= 25


async def test_a_session_ends_when_its_account_is_re_created_or_its_password_changes(
    console_server: TestServer, accounts: Accounts,
) -> None:
    await accounts.create("ops", "运营", Role.ADMIN, PASSWORD)
    async with TestClient(console_server) as old, TestClient(console_server) as other:
        assert await sign_in(old, "ops") == 303 and await sign_in(other, "ops") == 303
        await old.post("/me/password", data={"current": PASSWORD, "new": "another-password",
                                             "again": "another-password",
                                             "_csrf": await csrf_of(old, "/me")})
        assert (await old.get("/api/me")).status == 200  # the one that changed it goes on
        assert (await other.get("/api/me")).status == 401  # every other session ends
        await accounts.create("ops2", "另一位", Role.ADMIN, PASSWORD)
        await accounts.delete("ops")
        await accounts.create("ops", "新来的", Role.VIEWER, PASSWORD)
        assert (await old.get("/api/me")).status == 401  # not the new account's session


@pytest.mark.parametrize("ask,reason", [
    ({"mode": "examples", "intent": "checkin", "texts": ["优惠[券]{满30减5}"]}, "方括号"),
    ({"mode": "examples", "intent": "checkin", "texts": ["我要[团购](group_buy)"]}, "方括号"),
    ({"mode": "faq", "key": "group_buy", "texts": ["团购"], "answers": ["满{30 减 5"]}, "花括号"),
    ({"mode": "examples", "intent": "checkin", "texts": 5}, "列表"),
    ({"mode": "examples", "intent": "checkin", "texts": "打卡啦"}, "列表"),
])
async def test_teaching_refuses_what_would_break_training_with_a_reason(
    login: Login, ask: dict[str, object], reason: str,
) -> None:
    editor = await login(Role.EDITOR)
    response = await editor.post("/api/teach", json=ask,
                                 headers={"X-CSRF-Token": await csrf_of(editor, "/me")})
    assert response.status == 400 and reason in (await response.json())["error"]


async def test_a_save_git_cannot_commit_leaves_the_files_as_they_were(login: Login) -> None:
    editor = await login(Role.EDITOR)
    root: Path = editor.app[keys.SETTINGS].project_root  # type: ignore[index]
    before = (root / "data/nlu/checkin.yml").read_text("utf-8")
    (root / ".git" / "index.lock").write_text("")  # another git is busy
    token = await csrf_of(editor, "/me")
    ask = {"mode": "examples", "intent": "checkin", "texts": ["报到一下"]}
    refused = await editor.post("/api/teach", json=ask, headers={"X-CSRF-Token": token})
    assert refused.status == 400 and "恢复原样" in (await refused.json())["error"]
    assert (root / "data/nlu/checkin.yml").read_text("utf-8") == before
    (root / ".git" / "index.lock").unlink()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                            text=True).stdout
    assert status == ""
    assert (await editor.post("/api/teach", json=ask, headers={"X-CSRF-Token": token})
            ).status == 200


async def test_another_stores_till_with_the_same_key_is_told_the_coupon_was_used(
    redis_client: AsyncRedis,
) -> None:
    code = await issue(redis_client)
    first = await coupons.redeem(redis_client, "testbrand", code, store="a", clerk="c1",
                                 key="order-1001", now=1_700_000_000)
    again = await coupons.redeem(redis_client, "testbrand", code, store="a", clerk="c1",
                                 key="order-1001", now=1_700_000_001)
    other = await coupons.redeem(redis_client, "testbrand", code, store="b", clerk="c2",
                                 key="order-1001", now=1_700_000_002)
    assert (first.status, again.status, again.again) == ("redeemed", "redeemed", True)
    assert other.status == "used" and other.store == "a"
    assert STORE.id  # the console's stores come from data/brand.yml


async def test_a_retry_across_midnight_in_the_same_batch_is_counted_once(
    redis_client: AsyncRedis,
) -> None:
    day = datetime(2026, 11, 2, 23, 59, tzinfo=metrics.TZ)
    copies = [Event(Kind.CHECKIN, "checkin:m1", "g1", "u1", (day + timedelta(minutes=m))
                    .timestamp(), {"streak": 1, "points": 5}) for m in (2, 0)]
    assert await metrics.record(redis_client, "testbrand", copies) == 1
    stats = await metrics.range_stats(redis_client, "testbrand", day.date(),
                                      day.date() + timedelta(days=1))
    assert stats.total["checkins"] == 1 and stats.days[0].get("checkins") == 1


def test_every_message_is_in_some_cluster_and_wordless_ones_stay_alone() -> None:
    def item(n: int, text: str) -> Item:
        return Item(f"t{n}", n, "g1", f"u{n}", text, "", "nlu_fallback", 0.1, "", ("fallback",))

    wordless = [item(n, t) for n, t in enumerate(["😀😀", "👍", "？？"])]
    assert sorted(c.size for c in cluster(wordless)) == [1, 1, 1]
    many = [item(n, f"商品{n}号什么时候到货") for n in range(MAX_TEXTS + 300)]
    assert sum(c.size for c in cluster(many)) == len(many)
