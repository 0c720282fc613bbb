"""Teaching from the inbox: previewed, written in the project's format, committed, undone.

Every test works on a git copy of the project's data/nlu and domain.yml (tests/console/
conftest.py), never on the real files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient
from rasa.shared.core.domain import Domain
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from console import keys, trainingdata
from console.trainingdata import TeachError
from tests.console.conftest import Login, csrf_of, editor_and_root

pytestmark = pytest.mark.redis


def git_log(root: Path) -> list[str]:
    out = subprocess.run(["git", "log", "--format=%an|%ae|%s"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    return out.splitlines()


def examples_of(root: Path, intent: str) -> list[str]:
    for path in (root / "data" / "nlu").glob("*.yml"):
        for block in yaml.safe_load(path.read_text("utf-8"))["nlu"]:
            if block.get("intent") == intent:
                return [line[2:] for line in block["examples"].splitlines()]
    return []


async def teach(client: TestClient, ask: dict[str, object]) -> tuple[int, dict[str, object]]:
    """POST /api/teach from the signed-in page (a session needs its CSRF token in a header)."""
    response = await client.post("/api/teach", json=ask,
                                 headers={"X-CSRF-Token": await csrf_of(client, "/me")})
    return response.status, await response.json()


async def test_examples_are_previewed_then_saved_as_a_commit_by_the_operator(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    before = (root / "data/nlu/faq.yml").read_text("utf-8")
    form = {"mode": "examples", "intent": "faq/delivery",
            "texts": ["送到公司楼下要多久", "外卖到哪里下单"],
            "_csrf": await csrf_of(editor, "/me")}
    preview = await editor.post("/teach/preview", data=form)
    page = await preview.text()
    assert preview.status == 200 and "+      - 送到公司楼下要多久" in page
    assert (root / "data/nlu/faq.yml").read_text("utf-8") == before  # a preview writes nothing
    saved = await editor.post("/teach/save", data=form, allow_redirects=False)
    assert saved.status == 303 and saved.headers["Location"].startswith("/history?saved=")
    assert examples_of(root, "faq/delivery")[-2:] == ["送到公司楼下要多久", "外卖到哪里下单"]
    author, email, message = git_log(root)[0].split("|")
    assert author == "测试编辑" and email.endswith("@qunzhu.console") and "faq/delivery" in message
    history = await (await editor.get("/api/history")).json()
    assert history["changes"][0]["by_console"] and "faq/delivery" in history["changes"][0][
        "message"]
    audit = await editor.app[keys.AUDIT].latest()  # type: ignore[index]
    assert audit[0].action == "教机器人" and audit[0].target == "faq/delivery"


async def test_a_new_faq_is_written_in_the_projects_format_and_rasa_reads_it(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    status, body = await teach(editor, {
        "mode": "faq", "key": "group_buy", "texts": ["团购怎么买", "你们有团购吗", "公司团购"],
        "answers": ["团购请打 {hotline}，满 20 杯打九折～", "公司团购找店长就行，电话 {hotline}"]})
    assert status == 200 and body["commit"], body
    nlu = RasaYAMLReader().reads((root / "data/nlu/faq.yml").read_text("utf-8"))
    assert {m.get("text") for m in nlu.training_examples
            if m.get("intent") == "faq" and m.get("intent_response_key") == "faq/group_buy"} == {
        "团购怎么买", "你们有团购吗", "公司团购"}
    domain = Domain.from_yaml((root / "domain.yml").read_text("utf-8"))
    answers = [r["text"] for r in domain.responses["utter_faq/group_buy"]]
    assert answers == ["团购请打 {hotline}，满 20 杯打九折～", "公司团购找店长就行，电话 {hotline}"]
    assert "utter_faq/invoice" in domain.responses  # everything else is still there


@pytest.mark.parametrize("ask,reason", [
    ({"mode": "faq", "key": "Group Buy", "texts": ["团购"], "answers": ["好"]}, "问题编号"),
    ({"mode": "faq", "key": "invoice", "texts": ["团购"], "answers": ["好"]}, "已经有了"),
    ({"mode": "faq", "key": "group_buy", "texts": ["团购"], "answers": []}, "回答"),
    ({"mode": "faq", "key": "group_buy", "texts": ["团购"], "answers": ["打 {phone}"]},
     "占位符 {phone}"),
    ({"mode": "faq", "key": "group_buy", "texts": ["营业时间"], "answers": ["好"]},
     "已经是 faq/opening_hours 的例句"),
    ({"mode": "examples", "intent": "faq/nope", "texts": ["团购"]}, "没有“faq/nope”"),
    ({"mode": "examples", "intent": "checkin", "texts": ["  ", "- "]}, "例句"),
    ({"mode": "", "texts": ["团购"]}, "请选择"),
])
async def test_a_bad_request_is_refused_naming_the_field_and_nothing_is_written(
    login: Login, ask: dict[str, object], reason: str,
) -> None:
    editor, root = await editor_and_root(login)
    commits = len(git_log(root))
    status, body = await teach(editor, ask)
    assert status == 400
    assert reason in str(body["error"])
    assert len(git_log(root)) == commits
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                           text=True).stdout
    assert dirty == ""


async def test_a_change_is_undone_by_a_revert_that_is_in_the_history_too(login: Login) -> None:
    editor, root = await editor_and_root(login)
    original = (root / "data/nlu/checkin.yml").read_text("utf-8")
    await teach(editor, {"mode": "examples", "intent": "checkin",
                                          "texts": ["我来报到啦"]})
    assert "我来报到啦" in examples_of(root, "checkin")
    sha = (await (await editor.get("/api/history")).json())["changes"][0]["sha"]
    page = await (await editor.get(f"/history/{sha}")).text()
    assert "+      - 我来报到啦" in page
    undo = await editor.post(f"/history/{sha}/revert",
                             data={"_csrf": await csrf_of(editor, "/me")}, allow_redirects=False)
    assert undo.status == 303
    assert (root / "data/nlu/checkin.yml").read_text("utf-8") == original
    assert git_log(root)[0].split("|")[2].startswith("撤销：给 checkin 添加")
    assert len(git_log(root)) == 3  # the start, the change, its undo


async def test_an_undo_that_would_clash_with_a_later_change_is_refused_and_changes_nothing(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    await teach(editor, {"mode": "examples", "intent": "checkin",
                                          "texts": ["报到"]})
    first = (await (await editor.get("/api/history")).json())["changes"][0]["sha"]
    await teach(editor, {"mode": "examples", "intent": "checkin",
                                          "texts": ["报个到"]})
    now = (root / "data/nlu/checkin.yml").read_text("utf-8")
    refused = await editor.post(f"/history/{first}/revert",
                                data={"_csrf": await csrf_of(editor, "/me")})
    assert refused.status == 409 and "不能直接撤销" in await refused.text()
    assert (root / "data/nlu/checkin.yml").read_text("utf-8") == now


def test_adding_examples_keeps_every_other_line_of_the_file_as_it_was(tmp_path: Path) -> None:
    from tests.console.conftest import project_copy

    root = project_copy(tmp_path)
    before = (root / "data/nlu/points.yml").read_text("utf-8").splitlines()
    change = trainingdata.add_examples(root, "leaderboard", ["谁是打卡王"])
    after = next(iter(change.files.values())).splitlines()
    assert len(after) == len(before) + 1 and [x for x in after if x not in before] == [
        "      - 谁是打卡王"]
    with pytest.raises(TeachError, match="太长"):
        trainingdata.add_examples(root, "leaderboard", ["长" * 101])
