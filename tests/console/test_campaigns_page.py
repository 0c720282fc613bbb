"""群推送: operators see what each campaign did, edit it in a form, start new ones from the
templates — and no form input can loosen the anti-spam budget."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from console import campaignrules, keys
from console.roles import Role
from qunzhu.campaign_status import StatusBook
from qunzhu.campaigns import CEILING, load_campaigns
from qunzhu.config import SHANGHAI
from qunzhu.liveconfig import LiveFile
from tests.console.conftest import BRAND, Login, csrf_of, editor_and_root

pytestmark = pytest.mark.redis
FILE = "data/campaigns.yml"


def _last_commit(root: Path) -> str:
    return subprocess.run(["git", "log", "-1", "--format=%an|%s"], cwd=root, text=True,
                          capture_output=True, check=True).stdout.strip()


def _doc(root: Path) -> dict[str, object]:
    loaded = yaml.safe_load((root / FILE).read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _campaign(root: Path, ident: str) -> dict[str, object]:
    campaigns = _doc(root)["campaigns"]
    assert isinstance(campaigns, list)
    return next(c for c in campaigns if c["id"] == ident)


async def refused_everywhere(login: Login, path: str, form: dict[str, str],
                            reason: str) -> None:
    """Previewed and saved, `form` is refused with `reason` (400) and the file is unchanged."""
    editor, root = await editor_and_root(login)
    before = (root / FILE).read_text("utf-8")
    form = {**form, "_csrf": await csrf_of(editor, "/campaigns")}
    for step in ("preview", "save"):
        answer = await editor.post(f"{path}/{step}", data=form, allow_redirects=False)
        assert answer.status == 400, await answer.text()
        assert reason in await answer.text()
    assert (root / FILE).read_text("utf-8") == before


async def test_the_list_says_when_where_and_what_happened_today_by_name(login: Login) -> None:
    viewer = await login(Role.VIEWER)
    now = datetime.now(SHANGHAI)
    book = StatusBook(viewer.app[keys.REDIS], BRAND)  # type: ignore[index]
    await book.record("checkin_reminder", "g1", now, "sent", "ok", now)
    await book.record("checkin_reminder", "g2", now, "skipped", "no_checkins_yesterday", now)
    page = await (await viewer.get("/campaigns")).text()
    row = re.search(r'<a href="/campaigns/checkin_reminder">每日打卡提醒</a>.*?</tr>', page,
                    re.S)
    assert row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells[:2] == ["通知", "每天 09:00"]  # after the name's own cell
    assert [c.strip() for c in cells[-4:]] == ["1", "0", "0", "1"]  # sent … skipped
    assert "每周一 10:00" in page and "推广" in page
    assert "用在全部群" not in page and "新人欢迎语 1" in page  # the sandbox's own welcome
    # a viewer reads the form but has nothing to press
    assert "预览改动" not in page and "从模板新建推送" not in page


async def test_one_campaigns_week_names_groups_and_says_reasons_in_chinese(
    login: Login,
) -> None:
    viewer = await login(Role.VIEWER)
    now = datetime.now(SHANGHAI)
    book = StatusBook(viewer.app[keys.REDIS], BRAND)  # type: ignore[index]
    await book.record("noon_coupon_rush", "g1", now - timedelta(days=1), "sent",
                      "ok", now - timedelta(days=1))
    await book.record("noon_coupon_rush", "g2", now, "deferred", "spacing", now,
                      retry=now + timedelta(hours=1))
    await book.record("noon_coupon_rush", "g9", now, "skipped", "sold_out", now)
    page = await (await viewer.get("/campaigns/noon_coupon_rush")).text()
    for shown in ("国贸店福利群", "望京店福利群", "离上一条推广太近", "券已抢光", "有用吗？",
                  "要求“别@我了”"):
        assert shown in page, shown
    assert "g1" not in re.sub(r"<[^>]+>", "", page)  # names, never ids
    missing = await viewer.get("/campaigns/no_such_campaign")
    assert missing.status == 404


async def test_an_edit_is_previewed_saved_as_a_commit_and_read_live_by_the_scheduler(
    login: Login, tmp_path: Path,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / FILE
    before = path.read_text("utf-8")
    live = LiveFile("campaigns", path, load_campaigns, keep=tmp_path / "keep", check_every_s=0)
    form = {"campaigns.#checkin_reminder.text": "早安 ☀️ {昨日前三} 昨天最棒！今天也来打卡吧～",
            "campaigns.#checkin_reminder.schedule.daily": "８:４５",  # an IME's full width
            "campaigns.#weekly_recap.enabled": "",
            "budget.promo_per_day": "1",
            "_csrf": await csrf_of(editor, "/campaigns")}
    preview = await (await editor.post("/campaigns/preview", data=form)).text()
    assert "确认保存" in preview and path.read_text("utf-8") == before
    assert 'action="/campaigns/save"' in preview and 'action="/campaigns/preview"' in preview
    saved = await editor.post("/campaigns/save", data=form, allow_redirects=False)
    assert saved.status == 303 and "live=1" in saved.headers["Location"]
    after = path.read_text("utf-8")
    assert 'schedule: {daily: "08:45"}' in after  # quoted, as the file asks
    assert "# The anti-spam budget." in after  # the team's comments stay
    added = [line[1:].strip() for line in difflib.ndiff(before.splitlines(), after.splitlines())
             if line.startswith("+ ")]
    assert added == ["promo_per_day: 1", "text: \"早安 ☀️ {昨日前三} 昨天最棒！今天也来打卡吧～\"",
                     'schedule: {daily: "08:45"}', "enabled: false"]
    author, message = _last_commit(root).split("|")
    assert "修改群推送" in message and author
    settled = time.time() - 5
    os.utime(path, (settled, settled))
    live.refresh()
    loaded = live.value
    reminder = next(c for c in loaded.campaigns if c.id == "checkin_reminder")
    assert reminder.schedule.daily == "08:45" and reminder.text.startswith("早安")
    assert not next(c for c in loaded.campaigns if c.id == "weekly_recap").enabled
    assert loaded.limits("g1", []).promo_per_day == 1


@pytest.mark.parametrize("form,reason", [
    ({"budget.promo_per_day": str(CEILING.promo_per_day + 1)},
     "推送预算 · 每个群每天最多几条推广"),
    ({"budget.promo_gap_minutes": "30"}, "推送预算 · 两条推广至少隔几分钟"),
    ({"budget.quiet_hours": "23:00-07:00"}, "推送预算 · 免打扰时段"),
    ({"budget.service_per_day": "50"}, "推送预算 · 每个群每天最多几条通知"),
    ({"budget.promo_per_day": "-1"}, "不能小于 0"),
    ({"campaigns.#checkin_reminder.schedule.daily": "25:00"}, "每天几点发"),
    ({"campaigns.#checkin_reminder.text": "{不存在}"}, "推送 · 每日打卡提醒 · 内容"),
    ({"campaigns.#checkin_reminder.text": " "}, "推送 · 每日打卡提醒 · 内容：不能为空"),
    ({"campaigns.#checkin_reminder.ends": "2020-01-01",
      "campaigns.#checkin_reminder.starts": "2021-01-01"}, "推送 · 每日打卡提醒"),
    ({"campaigns.#checkin_reminder.starts": "下周"}, "日期请写成"),
    ({"campaigns.#checkin_reminder.schedule.daily": "22:30"}, "在免打扰时段"),
    ({"campaigns.#checkin_reminder.schedule.daily": "24:00"}, "时间请写成 09:00 这样"),
    ({"campaigns.#checkin_reminder.text": "今天有满30减5券，快来领券！"}, "提到券的推送算推广"),
    ({"campaigns.#checkin_reminder.starts": "2027-02-30"}, "日期请写成"),
    ({"campaigns.#checkin_reminder.ends": "2020-01-01",
      "campaigns.#checkin_reminder.starts": "2020-02-01"}, "结束日期不能早于开始日期"),
    ({"campaigns.#checkin_reminder.name": "每日打卡提醒"}, "没有改动"),
])
async def test_a_refused_edit_names_the_field_and_changes_nothing(
    login: Login, form: dict[str, str], reason: str,
) -> None:
    await refused_everywhere(login, "/campaigns", form, reason)


async def test_an_emptied_backup_text_is_removed_so_that_group_is_skipped(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    form = {"campaigns.#checkin_reminder.fallback_text": "",
            "_csrf": await csrf_of(editor, "/campaigns")}
    saved = await editor.post("/campaigns/save", data=form, allow_redirects=False)
    assert saved.status == 303
    assert "fallback_text" not in _campaign(root, "checkin_reminder")
    load_campaigns(root / FILE)


async def test_a_save_from_a_page_drawn_before_another_save_is_refused(login: Login) -> None:
    editor, root = await editor_and_root(login)
    page = await (await editor.get("/campaigns")).text()
    version = re.search(r'name="_version" value="([^"]+)"', page)
    assert version
    token = await csrf_of(editor, "/campaigns")
    first = {"campaigns.#checkin_reminder.name": "早安打卡", "_csrf": token,
             "_version": version.group(1)}
    assert (await editor.post("/campaigns/save", data=first,
                              allow_redirects=False)).status == 303
    stale = {"campaigns.#weekly_recap.name": "每周回顾", "_csrf": token,
             "_version": version.group(1)}
    answer = await editor.post("/campaigns/save", data=stale, allow_redirects=False)
    assert answer.status == 400 and "请刷新页面" in await answer.text()
    assert _campaign(root, "weekly_recap")["name"] == "周报"


async def test_a_campaign_from_a_template_gets_a_fresh_id_and_runs_where_chosen(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    token = await csrf_of(editor, "/campaigns")
    form = {"template": "checkin_reminder", "target": "group:g1", "at": "08:30",
            "_csrf": token}
    preview = await editor.post("/campaigns/new/preview", data=form)
    text = await preview.text()
    assert preview.status == 200 and "确认新建" in text
    ident = re.search(r'name="id" value="(checkin_[0-9a-f]{4})"', text)
    assert ident, "the confirm form carries the id the diff shows"
    assert ident.group(1) in text
    saved = await editor.post("/campaigns/new/save", data={**form, "id": ident.group(1)},
                              allow_redirects=False)
    assert saved.status == 303
    added = _campaign(root, ident.group(1))
    assert added["groups"] == ["g1"] and added["schedule"] == {"daily": "08:30"}
    assert added["promotional"] is False
    assert "新增群推送：每日打卡提醒" in _last_commit(root)
    load_campaigns(root / FILE)

    # undone and added again, it never takes the old id: that id's posts are claimed
    subprocess.run(["git", "revert", "--no-edit", "HEAD"], cwd=root, check=True,
                   capture_output=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                             "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
                                             "GIT_COMMITTER_EMAIL": "t@e"})
    ids = {c.id for c in load_campaigns(root / FILE).campaigns}
    assert ident.group(1) not in ids
    # even the old confirm form, sent again as it was, gets a new id
    again = await editor.post("/campaigns/new/save", data={**form, "id": ident.group(1)},
                              allow_redirects=False)
    assert again.status == 303
    new_ids = {c.id for c in load_campaigns(root / FILE).campaigns} - ids
    assert len(new_ids) == 1 and ident.group(1) not in new_ids


async def test_a_coupon_rush_adds_its_four_posts_and_costs_one_promotion(login: Login) -> None:
    editor, root = await editor_and_root(login)
    opens = (datetime.now(SHANGHAI) + timedelta(days=2)).replace(hour=12, minute=0)
    form = {"template": "coupon_rush", "target": "all", "coupon": "cut_30_5",
            "opens": f"{opens:%Y-%m-%d %H:%M}", "_csrf": await csrf_of(editor, "/campaigns")}
    saved = await editor.post("/campaigns/new/save", data=form, allow_redirects=False)
    assert saved.status == 303
    rush = [c for c in load_campaigns(root / FILE).campaigns if c.id.startswith("rush_")]
    assert [c.id.rsplit("_", 1)[1] for c in rush] == ["countdown", "open", "left", "closed"]
    assert [c.promotional for c in rush] == [False, True, False, False]
    assert all(c.coupon == "cut_30_5" and c.groups == "all" for c in rush)


async def test_a_migration_counts_down_to_the_day_the_old_group_closes(login: Login) -> None:
    editor, root = await editor_and_root(login)
    notice = datetime.now(SHANGHAI) + timedelta(days=1)
    form = {"template": "migration", "target": "group:g2",
            "new_group": "https://work.weixin.qq.com/gm/abc",
            "notice_at": f"{notice:%Y-%m-%d} 10:00",
            "closes_on": f"{(notice + timedelta(days=7)):%Y-%m-%d}",
            "_csrf": await csrf_of(editor, "/campaigns")}
    assert (await editor.post("/campaigns/new/save", data=form,
                              allow_redirects=False)).status == 303
    moved = [c for c in load_campaigns(root / FILE).campaigns if c.id.startswith("move_")]
    assert len(moved) == 3 and all(c.groups == ["g2"] for c in moved)
    assert "https://work.weixin.qq.com/gm/abc" in moved[0].text


@pytest.mark.parametrize("form,reason", [
    ({"template": "nope", "target": "all"}, "请选一个模板"),
    ({"template": "checkin_reminder", "target": "group:g404", "at": "09:00"},
     "发到哪些群：请从列表里选"),
    ({"template": "checkin_reminder", "target": "all", "at": "九点"}, "每天几点发"),
    ({"template": "coupon_rush", "target": "all", "coupon": "no_such",
      "opens": "2026-12-12 12:00"}, "哪张券：请从列表里选一张券"),
    ({"template": "coupon_rush", "target": "all", "coupon": "cut_30_5", "opens": "中午"},
     "开抢时间：时间请写成"),
    ({"template": "migration", "target": "all", "new_group": "x",
      "notice_at": "2026-12-10 10:00", "closes_on": "2026-12-10"}, "至少晚两天"),
    ({"template": "weekly_recap", "target": "all", "at": "周八 10:00"}, "每周哪天几点发"),
    ({"template": "coupon_rush", "target": "all", "coupon": "cut_30_5",
      "opens": "9999-12-31 23:00"}, "开抢时间：时间请写成"),
    ({"template": "coupon_rush", "target": "all", "coupon": "cut_30_5",
      "opens": "0999-05-05 10:00"}, "开抢时间：时间请写成"),
    ({"template": "coupon_rush", "target": "all", "coupon": "cut_30_5",
      "opens": "2020-01-01 12:00"}, "已经过去了"),
    ({"template": "coupon_rush", "target": "all", "coupon": "cut_30_5",
      "opens": "2099-12-12 21:30"}, "在免打扰时段 22:00–08:00 里"),
    ({"template": "checkin_reminder", "target": "all", "at": "23:30"}, "在免打扰时段"),
    ({"template": "checkin_reminder", "target": "all", "at": "07:58"},
     "（前后 5 分钟错开发）在免打扰时段"),
    ({"template": "migration", "target": "all", "new_group": "x",
      "notice_at": "2020-01-01 10:00", "closes_on": "2020-01-10"}, "已经过去了"),
])
async def test_a_refused_template_says_why_and_writes_nothing(
    login: Login, form: dict[str, str], reason: str,
) -> None:
    await refused_everywhere(login, "/campaigns/new", form, reason)


async def test_a_broken_file_is_said_on_the_page_not_a_500(login: Login) -> None:
    editor, root = await editor_and_root(login)
    (root / FILE).write_text("campaigns: [oops\n", "utf-8")
    page = await editor.get("/campaigns")
    assert page.status == 409
    text = await page.text()
    assert "现在有错误" in text and "上一次正确的推送计划" in text
    form = {"budget.promo_per_day": "1", "_csrf": await csrf_of(editor, "/campaigns")}
    answer = await editor.post("/campaigns/save", data=form, allow_redirects=False)
    assert answer.status == 409 and "现在有错误" in await answer.text()
    assert (root / FILE).read_text("utf-8") == "campaigns: [oops\n"


async def test_a_deployment_reading_another_campaigns_file_is_read_only(
    login: Login, tmp_path: Path,
) -> None:
    editor, root = await editor_and_root(login)
    app = editor.app
    assert app is not None
    settings = app[keys.SETTINGS]
    object.__setattr__(settings, "campaigns_file", tmp_path / "elsewhere.yml")
    page = await (await editor.get("/campaigns")).text()
    assert "QZ_CAMPAIGNS_FILE" in page and "预览改动" not in page
    form = {"budget.promo_per_day": "1", "_csrf": await csrf_of(editor, "/campaigns")}
    answer = await editor.post("/campaigns/save", data=form, allow_redirects=False)
    assert answer.status == 400
    assert "budget:\n  promo_per_day: 2" in (root / FILE).read_text("utf-8")


def test_every_template_builds_campaigns_the_bridge_accepts() -> None:
    assert {t.key for t in campaignrules.TEMPLATES} == {
        "checkin_reminder", "weekly_recap", "coupon_rush", "migration"}


async def test_a_save_rewrites_only_what_the_operator_changed(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = root / FILE
    text = path.read_text("utf-8").replace(
        "campaigns:\n", "campaigns:\n"
        "  - id: hand_written\n    name: 手写的\n    text: \"写死的 🎉 ☕\"\n"
        "    schedule: {once: \"2099-12-12T04:00:00+00:00\"}\n    promotional: false\n"
        "    groups: [sandbox]   # \\U0001F389 stays a comment\n"
        "  - id: hand_weekly\n    name: 手写周报\n    text: 'hi \\U0001F389'\n"
        "    schedule: {weekly: 'Mon 10:00'}\n    promotional: false\n", 1)
    path.write_text(text, "utf-8")
    subprocess.run(["git", "commit", "-qam", "hand"], cwd=root, check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})
    form = {"campaigns.#weekly_recap.name": "每周回顾",
            "_csrf": await csrf_of(editor, "/campaigns")}
    assert (await editor.post("/campaigns/save", data=form,
                              allow_redirects=False)).status == 303
    changed = [line for line in difflib.ndiff(text.splitlines(),
                                              path.read_text("utf-8").splitlines())
               if line[:1] in "+-" and line[1:2] == " "]
    assert changed == ["-     name: 周报", "+     name: 每周回顾"]
    once = next(c for c in load_campaigns(path).campaigns if c.id == "hand_written")
    assert once.schedule.once is not None
    assert f"{once.schedule.once.astimezone(SHANGHAI):%H:%M}" == "12:00"
    assert once.text == "写死的 🎉 ☕"


async def test_two_campaigns_of_one_name_are_told_apart(login: Login) -> None:
    editor, root = await editor_and_root(login)
    form = {"template": "checkin_reminder", "target": "all", "at": "１０：３０",  # an IME
            "_csrf": await csrf_of(editor, "/campaigns")}
    assert (await editor.post("/campaigns/new/save", data=form,
                              allow_redirects=False)).status == 303
    added = [c for c in load_campaigns(root / FILE).campaigns
             if re.fullmatch(r"checkin_[0-9a-f]{4}", c.id)]
    assert [(c.name, c.schedule.daily) for c in added] == [("每日打卡提醒 2", "10:30")]
    assert '{daily: "10:30"}' in (root / FILE).read_text("utf-8")


def test_a_cron_campaign_starting_later_says_when_it_first_runs() -> None:
    from qunzhu.campaigns import Campaign
    now = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)
    campaign = Campaign.parse_obj({
        "id": "later", "name": "晚点开始", "text": "hi", "promotional": False,
        "schedule": {"cron": "0 * * * *"}, "starts": "2027-02-20"})
    assert campaign.next_run(now) == datetime(2027, 2, 20, 0, 0, tzinfo=SHANGHAI)


async def test_one_group_gets_a_stricter_budget_of_its_own_then_edits_and_drops_it(
    login: Login, tmp_path: Path,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / FILE
    page = await (await editor.get("/campaigns")).text()
    assert "单独收紧一个群的推送预算" in page and '<option value="g1" >国贸店福利群' in page
    token = await csrf_of(editor, "/campaigns")
    form = {"group": "g1", "promo_per_day": "1", "quiet_hours": "２１：００-０８：３０",
            "_csrf": token}
    preview = await (await editor.post("/campaigns/budget/preview", data=form)).text()
    assert "+  g1:" in preview and "+    promo_per_day: 1" in preview
    assert preview.index("promo_per_day: 0") < preview.index("+  g1:")  # after staff's
    saved = await editor.post("/campaigns/budget/save", data=form, allow_redirects=False)
    assert saved.status == 303
    assert "单独收紧推送预算：国贸店福利群" in _last_commit(root)
    loaded = load_campaigns(path)
    g1, g2 = loaded.limits("g1", []), loaded.limits("g2", [])
    assert (g1.promo_per_day, f"{g1.quiet_start:%H:%M}") == (1, "21:00")
    assert (g2.promo_per_day, f"{g2.quiet_start:%H:%M}") == (2, "22:00")  # others unchanged
    assert 'quiet_hours: "21:00-08:30"' in path.read_text("utf-8")

    # now it is a section of the form, named by the group; loosening it is refused by name
    page = await (await editor.get("/campaigns")).text()
    assert "推送预算 · 国贸店福利群" in page and '<option value="g1"' not in page
    loose = {"budget_by_group.g1.promo_per_day": "5", "_csrf": token}
    refused = await editor.post("/campaigns/save", data=loose, allow_redirects=False)
    assert refused.status == 400
    said = "推送预算 · 国贸店福利群 · 这个群每天最多几条推广：不能比上限更松"
    assert said in await refused.text()
    # every value emptied: the group has no budget of its own any more
    emptied = {"budget_by_group.g1.promo_per_day": "", "budget_by_group.g1.quiet_hours": "",
               "_csrf": token}
    assert (await editor.post("/campaigns/save", data=emptied,
                              allow_redirects=False)).status == 303
    overrides = _doc(root).get("budget_by_group") or {}
    assert isinstance(overrides, dict) and "g1" not in overrides
    load_campaigns(path)


@pytest.mark.parametrize("form,reason", [
    ({"group": "g404", "promo_per_day": "1"}, "哪个群：请从列表里选"),
    ({"group": "staff", "promo_per_day": "1"}, "哪个群：请从列表里选"),  # has one already
    ({"group": "g1"}, "至少填一项"),
    ({"group": "g1", "promo_per_day": "9"}, "不能比上限更松（最多 3）"),
    ({"group": "g1", "quiet_hours": "23:00-07:00"}, "不能比上限更松（要包含 22:00-08:00）"),
    ({"group": "g1", "promo_gap_minutes": "很久"}, "请填一个整数"),
])
async def test_a_refused_group_budget_says_why_and_writes_nothing(
    login: Login, form: dict[str, str], reason: str,
) -> None:
    await refused_everywhere(login, "/campaigns/budget", form, reason)


async def test_a_rushs_posts_keep_their_order_when_one_time_is_moved(login: Login) -> None:
    editor, root = await editor_and_root(login)
    opens = (datetime.now(SHANGHAI) + timedelta(days=3)).replace(hour=12, minute=0)
    token = await csrf_of(editor, "/campaigns")
    form = {"template": "coupon_rush", "target": "all", "coupon": "cut_30_5",
            "opens": f"{opens:%Y-%m-%d %H:%M}", "_csrf": token}
    assert (await editor.post("/campaigns/new/save", data=form,
                              allow_redirects=False)).status == 303
    base = next(c.id for c in load_campaigns(root / FILE).campaigns
                if c.id.endswith("_open")).removesuffix("_open")
    early = {f"campaigns.#{base}_closed.schedule.once": f"{opens:%Y-%m-%d} 11:00",
             "_csrf": token}
    answer = await editor.post("/campaigns/save", data=early, allow_redirects=False)
    assert answer.status == 400
    assert "限时抢券的几条要按顺序发" in await answer.text()
    later = {f"campaigns.#{base}_closed.schedule.once": f"{opens:%Y-%m-%d} 14:00",
             "_csrf": token}
    assert (await editor.post("/campaigns/save", data=later,
                              allow_redirects=False)).status == 303


async def test_emptying_a_groups_budget_keeps_the_comments_around_it(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = root / FILE
    before = path.read_text("utf-8")
    form = {"budget_by_group.staff.promo_per_day": "",
            "_csrf": await csrf_of(editor, "/campaigns")}
    assert (await editor.post("/campaigns/save", data=form,
                              allow_redirects=False)).status == 303
    after = path.read_text("utf-8")
    removed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines())
               if line.startswith("- ")]
    assert [line[2:].strip() for line in removed if line[2:].strip()] == [
        "budget_by_group:", "staff:",
        "promo_per_day: 0         # the staff group gets no promotions"]
    assert not any(line.startswith("+ ") for line in difflib.ndiff(before.splitlines(),
                                                                   after.splitlines()))
    assert "# The robot's welcome to newcomers" in after
    load_campaigns(path)


async def test_campaigns_that_only_sound_like_a_rush_are_not_held_to_its_order(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / FILE
    path.write_text(path.read_text("utf-8").replace("campaigns:\n", (
        "campaigns:\n"
        "  - id: shop_closed\n    name: 装修停业\n    text: 装修中\n    promotional: false\n"
        "    schedule: {once: \"2099-01-01 09:00\"}\n"
        "  - id: shop_open\n    name: 重新开业\n    text: 开业啦\n    promotional: false\n"
        "    schedule: {once: \"2099-01-10 09:00\"}\n"), 1), "utf-8")
    form = {"campaigns.#shop_open.schedule.once": "2099-01-11 09:00",
            "_csrf": await csrf_of(editor, "/campaigns")}
    answer = await editor.post("/campaigns/save", data=form, allow_redirects=False)
    assert answer.status == 303, await answer.text()
