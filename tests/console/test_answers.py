"""常见问题: answers edited in a form or the API change only their own lines, committed, live."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from actions.answers import parse
from console import keys
from console.roles import Role
from tests.console.conftest import Login, csrf_of, editor_and_root

pytestmark = pytest.mark.redis

REFUND = ["退款说明：{refund_policy}。需要帮忙可以说「转人工」🙏",
          "{refund_policy}。有问题也可以拨打 {hotline} 联系我们～"]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, text=True, capture_output=True,
                          check=True).stdout.strip()


def _form(answers: list[str], csrf: str) -> list[tuple[str, str]]:
    """The edit form as a browser posts it: one `answers` field per box, blank ones too."""
    return [("_csrf", csrf), *(("answers", a) for a in answers)]


async def test_the_list_and_each_faq_page_show_the_real_questions_and_answers(
    login: Login,
) -> None:
    viewer = await login(Role.VIEWER)
    listing = await (await viewer.get("/answers")).text()
    assert "营业时间" in listing and 'href="/answers/refund"' in listing
    assert "46 种问法 · 2 条回答" in listing and "退款说明：{refund_policy}" in listing
    page = await (await viewer.get("/answers/refund")).text()
    assert "怎么退款" in page and "退款多久到账" in page  # question wordings, read-only
    assert "问法靠“收件箱”教给机器人，改动要“发布”才生效" in page
    assert all(a in page for a in REFUND)
    assert "<code>{hotline}</code> 客服电话" in page
    assert page.count('<textarea name="answers"') == len(REFUND) + 2  # two for new wordings
    assert "readonly" in page and "预览改动" not in page  # a viewer reads, cannot change
    missing = await viewer.get("/answers/no_such_faq")
    assert missing.status == 404 and "没有这个常见问题" in await missing.text()


async def test_a_preview_writes_nothing_and_a_save_changes_only_that_answers_lines(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / "domain.yml"
    before = path.read_text("utf-8")
    head = _git(root, "rev-parse", "HEAD")
    new = ["退款请在 7 天内申请：{refund_policy}", REFUND[1]]
    form = _form([*new, "", "  "], await csrf_of(editor, "/answers/refund"))
    preview = await editor.post("/answers/refund/preview", data=form)
    page = await preview.text()
    assert preview.status == 200 and "确认保存" in page
    assert '+    - text: &#34;退款请在 7 天内申请：{refund_policy}&#34;' in page
    assert path.read_text("utf-8") == before and _git(root, "rev-parse", "HEAD") == head
    saved = await editor.post("/answers/refund/save", data=form, allow_redirects=False)
    assert saved.status == 303
    assert saved.headers["Location"].startswith("/history?saved=")
    assert saved.headers["Location"].endswith("&live=1")
    after = path.read_text("utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
               if a != b]
    assert changed == [(f'    - text: "{REFUND[0]}"',
                        '    - text: "退款请在 7 天内申请：{refund_policy}"')]
    assert _git(root, "log", "-1", "--format=%an|%s") == (
        "测试编辑|修改常见问题“怎么退款”的回答（refund，2 条）")
    assert _git(root, "status", "--porcelain") == ""  # committed, nothing else touched
    audit = await editor.app[keys.AUDIT].latest()  # type: ignore[index]
    assert (audit[0].action, audit[0].target) == ("修改常见问题回答", "faq/refund")
    assert audit[0].diff["回答 1"] == [REFUND[0], new[0]] and "回答 2" not in audit[0].diff
    page = await (await editor.get("/answers/refund")).text()
    assert "退款请在 7 天内申请" in page


@pytest.mark.parametrize("answers,reason", [
    ([REFUND[0], "请拨打 {hotlin}"], "回答 2：不认识的占位符 {hotlin}，可用的有 {brand_name}"),
    (["", "  ", "\n"], "回答：至少要有一条回答"),
    (["好" * 1001], "回答 1：太长了（最多 1000 字）"),
    ([*REFUND, ""], "没有改动"),
    (["拨打 {hotline"], "回答 1：花括号"),
])
async def test_a_wrong_answer_is_refused_naming_the_field_and_nothing_is_written(
    login: Login, answers: list[str], reason: str,
) -> None:
    editor, root = await editor_and_root(login)
    before = (root / "domain.yml").read_text("utf-8")
    head = _git(root, "rev-parse", "HEAD")
    form = _form(answers, await csrf_of(editor, "/answers/refund"))
    for step in ("preview", "save"):
        response = await editor.post(f"/answers/refund/{step}", data=form)
        text = await response.text()
        assert response.status == 400 and reason in text, (step, text[-600:])
    assert (root / "domain.yml").read_text("utf-8") == before
    assert _git(root, "rev-parse", "HEAD") == head


async def test_an_unknown_faq_is_refused_naming_it_and_nothing_is_written(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    before = (root / "domain.yml").read_text("utf-8")
    form = _form(["随便写写"], await csrf_of(editor, "/answers"))
    response = await editor.post("/answers/no_such_faq/save", data=form)
    assert response.status == 400
    assert "问题编号：没有“no_such_faq”这个常见问题" in await response.text()
    assert (root / "domain.yml").read_text("utf-8") == before


async def test_answers_with_colons_hashes_quotes_and_line_breaks_round_trip_through_yaml(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    typed = ["地址: 见下 # 不是注释\r\n{store_list}",
             "他说 \"好的\"，'单引号' 也行 \\ 反斜杠也行",
             "- 像列表 [x] & *星号 ! % @ ` | > 都是字"]
    saved_as = ["地址: 见下 # 不是注释\n{store_list}", *typed[1:]]
    form = _form(typed, await csrf_of(editor, "/answers/store_location"))
    saved = await editor.post("/answers/store_location/save", data=form,
                              allow_redirects=False)
    assert saved.status == 303, await saved.text()
    text = (root / "domain.yml").read_text("utf-8")
    domain = yaml.safe_load(text)
    assert domain["responses"]["utter_faq/store_location"] == [{"text": a} for a in saved_as]
    assert parse(root / "domain.yml", text)["utter_faq/store_location"] == tuple(saved_as)
    listed = await (await editor.get("/api/answers/store_location")).json()
    assert listed["answers"] == saved_as


async def test_the_api_lists_and_edits_answers_and_says_what_is_wrong_as_json(
    login: Login, console_server: TestServer,
) -> None:
    editor, root = await editor_and_root(login)
    me = (await (await editor.get("/api/me")).json())["name"]
    token = await console_server.app[keys.ACCOUNTS].new_token(me)
    path = root / "domain.yml"
    before = path.read_text("utf-8")
    async with TestClient(console_server) as script:
        auth = {"Authorization": f"Bearer {token}"}
        listed = await (await script.get("/api/answers", headers=auth)).json()
        refund = next(f for f in listed["faqs"] if f["key"] == "refund")
        assert refund["answers"] == REFUND and "怎么退款" in refund["questions"]
        assert listed["placeholders"]["hotline"] == "客服电话"
        one = await (await script.get("/api/answers/refund", headers=auth)).json()
        assert one["title"] == "怎么退款" and one["answers"] == REFUND
        missing = await script.get("/api/answers/no_such_faq", headers=auth)
        assert missing.status == 404 and "没有这个常见问题" in (await missing.json())["error"]

        async def post(body: object) -> tuple[int, dict[str, object]]:
            response = await script.post("/api/answers/refund", json=body, headers=auth)
            return response.status, await response.json()

        status, dry = await post({"answers": ["只退未制作的订单。"], "dry_run": True})
        assert status == 200 and dry["commit"] is None
        assert '+    - text: "只退未制作的订单。"' in str(dry["diff"])
        assert path.read_text("utf-8") == before
        for body, reason in [({"answers": ["{nope}"]}, "回答 1：不认识的占位符 {nope}"),
                             ({"answers": "一条"}, "answers 应为一组文字"),
                             ([1, 2], "answers 应为一组文字"),
                             ({"answers": []}, "至少要有一条回答")]:
            status, error = await post(body)
            assert status == 400 and reason in str(error["error"]), body
        bad = await script.post("/api/answers/refund", data=b"{not json", headers=auth)
        assert bad.status == 400 and "JSON" in (await bad.json())["error"]
        assert path.read_text("utf-8") == before
        status, done = await post({"answers": ["只退未制作的订单。", "  ", REFUND[1]]})
        assert status == 200 and done["answers"] == ["只退未制作的订单。", REFUND[1]]
        assert done["commit"] == _git(root, "rev-parse", "HEAD")
    assert yaml.safe_load(path.read_text("utf-8"))["responses"]["utter_faq/refund"] == [
        {"text": "只退未制作的订单。"}, {"text": REFUND[1]}]


async def test_a_viewer_reads_answers_but_cannot_change_them(login: Login) -> None:
    viewer = await login(Role.VIEWER)
    root = viewer.app[keys.SETTINGS].project_root  # type: ignore[index]
    before = (root / "domain.yml").read_text("utf-8")
    csrf = await csrf_of(viewer, "/answers/refund")
    for step in ("preview", "save"):
        refused = await viewer.post(f"/answers/refund/{step}", data=_form(["改掉"], csrf))
        assert refused.status == 403
    api = await viewer.post("/api/answers/refund", json={"answers": ["改掉"]},
                            headers={"X-CSRF-Token": csrf})
    assert api.status == 403 and "权限" in (await api.json())["error"]
    assert (await viewer.get("/api/answers/refund")).status == 200
    assert (root / "domain.yml").read_text("utf-8") == before


async def test_a_save_from_a_page_drawn_before_another_edit_of_the_same_answers_is_refused(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    page = await (await editor.get("/answers/invoice")).text()
    version = re.search(r'name="_version" value="([0-9a-f]+)"', page)
    assert version
    other = await login(Role.EDITOR)
    done = await other.post("/answers/invoice/save", data={
        "answers": ["发票找店员开～ {hotline}"], "_csrf": await csrf_of(other, "/me")},
        allow_redirects=False)
    assert done.status == 303
    # An edit of another FAQ in between would not have mattered; this one does.
    refused = await editor.post("/answers/invoice/save", data={
        "answers": ["我的旧页面上的回答"], "_version": version[1],
        "_csrf": await csrf_of(editor, "/me")})
    assert refused.status == 400 and "有人改过" in await refused.text()
    assert "发票找店员开" in (root / "domain.yml").read_text("utf-8")
