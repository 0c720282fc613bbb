"""活动规则: game rules change in a form, checked as the actions load them, committed, live."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from console import gamerules, keys
from console.roles import Role
from qunzhu.config import load_games
from qunzhu.liveconfig import LiveFile
from tests.console.conftest import Login, csrf_of, editor_and_root

pytestmark = pytest.mark.redis


def _changed_lines(before: str, after: str) -> list[str]:
    return [b.strip() for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
            if a != b]


def _last_commit(root: Path) -> str:
    return subprocess.run(["git", "log", "-1", "--format=%an|%s"], cwd=root, text=True,
                          capture_output=True, check=True).stdout.strip()


async def test_the_page_shows_every_rule_by_its_chinese_name(login: Login) -> None:
    editor, _root = await editor_and_root(login)
    page = await (await editor.get("/games")).text()
    for shown in ("每次打卡得几分", "领券 · 满30减5券", "一共发多少张", "抽奖奖品 · 任意饮品免单券",
                  "积分商城 · 美式咖啡兑换券", "新增一张优惠券", 'value="500"'):
        assert shown in page


async def test_changed_rules_are_previewed_then_saved_as_one_commit_and_nothing_else_moves(
    login: Login, tmp_path: Path,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / "data/games.yml"
    before = path.read_text("utf-8")
    live = LiveFile("games", path, load_games, keep=tmp_path / "keep", check_every_s=0)
    form = {"coupons.#cut_30_5.stock": "800", "checkin.streak_bonus.7": "25",
            "coupons.#latte_half.aliases": "第二杯半价、半价券",
            "_csrf": await csrf_of(editor, "/games")}
    preview = await (await editor.post("/games/preview", data=form)).text()
    assert "+    stock: 800" in preview and "确认保存" in preview
    assert 'action="/games/save"' in preview and 'action="/games/preview"' in preview
    assert path.read_text("utf-8") == before
    saved = await editor.post("/games/save", data=form, allow_redirects=False)
    assert saved.status == 303 and "live=1" in saved.headers["Location"]
    after = path.read_text("utf-8")
    assert _changed_lines(before, after) == ["7: 25", "stock: 800",
                                              "aliases: [第二杯半价, 半价券]"]
    assert "# extra points on the day the streak reaches N days" in after
    author, message = _last_commit(root).split("|")
    assert "一共发多少张" in message and "连续 7 天" in message and author
    audit = await editor.app[keys.AUDIT].latest()  # type: ignore[index]
    assert audit[0].diff["领券 · 满30减5券 · 一共发多少张"] == ["500", "800"]
    # What the action server reads: the new rules, without a restart or a training.
    settled = time.time() - 5  # as if saved a while ago (a file written just now may be half)
    os.utime(path, (settled, settled))
    live.refresh()
    games = live.value
    assert games.coupons[0].stock == 800 and games.checkin.streak_bonus[7] == 25


@pytest.mark.parametrize("form,reason", [
    ({"coupons.#cut_30_5.stock": "-1"}, "领券 · 满30减5券 · 一共发多少张：不能小于 0"),
    ({"coupons.#cut_30_5.ends": "2025-01-01 00:00"}, "领券 · 满30减5券：结束时间要晚于开始时间"),
    ({"coupons.#cut_30_5.starts": "明天"}, "开始领取：时间请写成"),
    ({"checkin.base_points": "五"}, "每日打卡 · 每次打卡得几分：请填一个整数"),
    ({"lucky_draw.prizes.#points_20.points": "0"}, "积分奖品的积分要大于 0"),
    ({"coupons.#cut_30_5.name": " "}, "领券 · 满30减5券 · 名称：不能为空"),
    ({"coupons.#cut_30_5.stock": "500"}, "没有改动"),
    ({"coupons.#gone.stock": "5"}, "没有改动"),
])
async def test_a_wrong_rule_is_refused_naming_the_field_and_nothing_is_written(
    login: Login, form: dict[str, str], reason: str,
) -> None:
    editor, root = await editor_and_root(login)
    before = (root / "data/games.yml").read_text("utf-8")
    heads = _last_commit(root)
    response = await editor.post("/games/save",
                                 data={**form, "_csrf": await csrf_of(editor, "/games")})
    text = await response.text()
    assert response.status == 400 and reason in text, text[:2000]
    assert (root / "data/games.yml").read_text("utf-8") == before
    assert _last_commit(root) == heads


async def test_a_new_coupon_is_added_in_the_files_own_style_and_claimable_by_name(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / "data/games.yml"
    form = {"name": "满50减10券", "value_yuan": "10", "condition": "满 50 元: 可用 #门店",
            "stock": "100", "per_member_limit": "1", "starts": "2026-12-01 09:00",
            "ends": "2026-12-31 23:59", "valid_days": "7", "aliases": "满50减10、十元券",
            "_csrf": await csrf_of(editor, "/games")}
    preview = await (await editor.post("/games/coupons/preview", data=form)).text()
    shown = re.search(r"\+  - id: (coupon_50_10_[0-9a-f]{4})", preview)
    assert shown and "确认新增" in preview, preview[:3000]
    confirm = re.search(r'name="id" value="([^"]+)"', preview)
    assert confirm and confirm[1] == shown[1], "the confirm form carries the id shown"
    saved = await editor.post("/games/coupons/save", data={**form, "id": confirm[1]},
                              allow_redirects=False)
    assert saved.status == 303
    text = path.read_text("utf-8")
    assert "    aliases: [满50减10, 十元券]\n" in text
    assert "\n\nlucky_draw:" in text, "the blank line before the next section stays"
    coupon = load_games(path).coupons[-1]
    assert (coupon.id, coupon.name, coupon.condition, coupon.stock) == (
        shown[1], "满50减10券", "满 50 元: 可用 #门店", 100)
    assert yaml.safe_load(text)["coupons"][-1]["aliases"] == ["满50减10", "十元券"]
    again = await editor.post("/games/coupons/save", data=form)
    assert again.status == 400 and "已经有一张叫“满50减10券”的券了" in await again.text()


async def test_a_new_coupon_missing_a_field_is_refused_naming_it(login: Login) -> None:
    editor, root = await editor_and_root(login)
    before = (root / "data/games.yml").read_text("utf-8")
    form = {"name": "满50减10券", "value_yuan": "", "stock": "100",
            "_csrf": await csrf_of(editor, "/games")}
    response = await editor.post("/games/coupons/save", data=form)
    assert response.status == 400 and "新优惠券 · 面值（元）：不能为空" in await response.text()
    assert (root / "data/games.yml").read_text("utf-8") == before


async def test_the_api_lists_previews_and_saves_rules(login: Login) -> None:
    editor, root = await editor_and_root(login)
    listed = await (await editor.get("/api/games")).json()
    titles = [s["title"] for s in listed["sections"]]
    assert "每日打卡" in titles and "领券 · 满30减5券" in titles
    csrf = {"X-CSRF-Token": await csrf_of(editor, "/me")}  # a session's API call needs it
    dry = await editor.post("/api/games", json={"values": {"checkin.base_points": "6"},
                                                "dry_run": True}, headers=csrf)
    body = await dry.json()
    assert dry.status == 200 and body["commit"] is None and "+  base_points: 6" in body["diff"]
    assert load_games(root / "data/games.yml").checkin.base_points == 5
    done = await editor.post("/api/games", json={"values": {"checkin.base_points": "6"}},
                             headers=csrf)
    assert done.status == 200 and len((await done.json())["commit"]) == 40
    assert load_games(root / "data/games.yml").checkin.base_points == 6
    for bad in ([1, 2], {"values": "x"}, {"values": {"checkin.base_points": "-1"}}):
        refused = await editor.post("/api/games", json=bad, headers=csrf)
        assert refused.status == 400 and (await refused.json())["error"]


def test_every_field_of_the_project_file_reads_back_as_written() -> None:
    form = gamerules.current(Path(__file__).resolve().parents[2])
    assert form.values["coupons.#cut_30_5.starts"] == "2026-01-01 00:00"
    assert form.values["checkin.announce_streaks"] == "7、30、100"
    assert form.values["lucky_draw.prizes.#thanks.weight"]
    assert "lucky_draw.prizes.#thanks.stock" not in form.values, "the consolation has no stock"


async def test_a_coupon_added_undone_and_added_again_gets_a_new_id(login: Login) -> None:
    """Its id names its stock and claims in Redis: reusing one would inherit old claims."""
    editor, root = await editor_and_root(login)
    form = {"name": "满５０减１０券", "value_yuan": "１０", "stock": "100", "per_member_limit": "1",
            "starts": "2026-12-01 09:00", "ends": "2026-12-31 23:59", "valid_days": "7",
            "_csrf": await csrf_of(editor, "/games")}
    ids: list[str] = []
    for _ in range(3):  # the third time the old confirm form, with the first id, is sent again
        offered = {**form, "id": ids[0]} if ids else form
        saved = await editor.post("/games/coupons/save", data=offered, allow_redirects=False)
        assert saved.status == 303, await saved.text()
        ids.append(load_games(root / "data/games.yml").coupons[-1].id)
        subprocess.run(["git", "revert", "--no-edit", "HEAD"], cwd=root, check=True,
                       capture_output=True)
    assert len(set(ids)) == 3 and all(re.fullmatch(r"coupon_50_10_[0-9a-f]{4}", i) for i in ids)


async def test_a_save_from_a_page_drawn_before_someone_elses_save_is_refused(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    page = await (await editor.get("/games")).text()
    version = re.search(r'name="_version" value="([0-9a-f]+)"', page)
    assert version
    other = await login(Role.EDITOR)
    done = await other.post("/games/save", data={
        "coupons.#cut_30_5.stock": "900", "_csrf": await csrf_of(other, "/games")},
        allow_redirects=False)
    assert done.status == 303
    form = {"checkin.base_points": "6", "coupons.#cut_30_5.stock": "500",
            "_version": version[1], "_csrf": await csrf_of(editor, "/games")}
    for step in ("/games/preview", "/games/save"):
        refused = await editor.post(step, data=form)
        assert refused.status == 400 and "有人改过这个文件" in await refused.text()
    games = load_games(root / "data/games.yml")
    assert games.coupons[0].stock == 900 and games.checkin.base_points == 5


async def test_a_broken_file_is_said_so_in_chinese_not_a_server_error(login: Login) -> None:
    editor, root = await editor_and_root(login)
    (root / "data/games.yml").write_text("coupons: [\n", "utf-8")
    page = await editor.get("/games")
    assert page.status == 409 and "现在有错误" in await page.text()
    api = await editor.get("/api/games")
    assert api.status == 409 and "现在有错误" in (await api.json())["error"]
    refused = await editor.post("/games/save", data={
        "checkin.base_points": "6", "_csrf": await csrf_of(editor, "/me")})
    assert refused.status in (400, 409) and "现在有错误" in await refused.text()


async def test_a_quoted_streak_day_is_shown_and_saved_as_written(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = root / "data/games.yml"
    path.write_text(path.read_text("utf-8").replace("    7: 20", "    '7': 20"), "utf-8")
    subprocess.run(["git", "commit", "-qam", "quoted"], cwd=root, check=True,
                   capture_output=True, env={**os.environ, "GIT_AUTHOR_NAME": "dev",
                   "GIT_AUTHOR_EMAIL": "d@x", "GIT_COMMITTER_NAME": "dev",
                   "GIT_COMMITTER_EMAIL": "d@x"})
    page = await (await editor.get("/games")).text()
    assert 'name="checkin.streak_bonus.7" value="20"' in page
    saved = await editor.post("/games/save", data={
        "checkin.streak_bonus.7": "25", "_csrf": await csrf_of(editor, "/games")},
        allow_redirects=False)
    assert saved.status == 303
    assert load_games(path).checkin.streak_bonus[7] == 25
