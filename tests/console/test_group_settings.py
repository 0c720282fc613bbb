"""群设置: names, welcomes and handoff mentions edited as a form; webhook keys never shown."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient

from console import keys
from qunzhu.groupsfile import group_names
from tests.console.conftest import Login, csrf_of, editor_and_root

pytestmark = pytest.mark.redis


async def _bridge_reads_the_project_file(editor: TestClient, root: Path) -> Path:
    """Point the file the bridge reads (settings.groups_file) at the project's own."""
    bridge_file: Path = editor.app[keys.SETTINGS].groups_file  # type: ignore[index]
    bridge_file.unlink()
    bridge_file.symlink_to(root / "data/groups.yml")
    return root / "data/groups.yml"


async def test_a_group_is_renamed_and_welcomes_switched_as_one_commit(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = await _bridge_reads_the_project_file(editor, root)
    before = path.read_text("utf-8")
    page = await (await editor.get("/group-settings")).text()
    assert "小满咖啡·福利群（沙盒）" in page and "QZ_SANDBOX_WEBHOOK_KEY" not in page
    form = {"groups.#sandbox.name": "小满咖啡·国贸店福利群",
            "groups.#staff.welcome_newcomers": "1", "staff.mention": "kefu01、kefu02",
            "_csrf": await csrf_of(editor, "/group-settings")}
    preview = await (await editor.post("/group-settings/preview", data=form)).text()
    assert "+    name: 小满咖啡·国贸店福利群" in preview and path.read_text("utf-8") == before
    saved = await editor.post("/group-settings/save", data=form, allow_redirects=False)
    assert saved.status == 303
    after = path.read_text("utf-8")
    doc = yaml.safe_load(after)
    assert doc["groups"][1]["welcome_newcomers"] is True
    assert doc["staff"]["mention"] == ["kefu01", "kefu02"]
    assert group_names(path)["sandbox"] == "小满咖啡·国贸店福利群"
    assert after.index("welcome_newcomers: true\n\n# Handoff requests") > 0, \
        "the new key goes before the blank line and the comment about the next section"
    message = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=root, text=True,
                             capture_output=True, check=True).stdout
    assert "群名" in message and "新人进群时欢迎" in message


async def test_an_unticked_box_switches_welcomes_off(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = await _bridge_reads_the_project_file(editor, root)
    csrf = await csrf_of(editor, "/group-settings")
    # What a browser sends for an unticked box: only the hidden empty value before it.
    form = [("_csrf", csrf), ("groups.#sandbox.welcome_newcomers", "")]
    saved = await editor.post("/group-settings/save", data=form, allow_redirects=False)
    assert saved.status == 303
    assert yaml.safe_load(path.read_text("utf-8"))["groups"][0]["welcome_newcomers"] is False


@pytest.mark.parametrize("form,reason", [
    ({"groups.#sandbox.name": "小满咖啡·福利群（沙盒）"}, "没有改动"),
    ({"groups.#nowhere.name": "x"}, "没有改动"),
    ({"groups.#sandbox.name": "x" * 3000}, "太长了"),
])
async def test_a_wrong_setting_is_refused_and_nothing_is_written(
    login: Login, form: dict[str, str], reason: str,
) -> None:
    editor, root = await editor_and_root(login)
    path = await _bridge_reads_the_project_file(editor, root)
    before = path.read_text("utf-8")
    response = await editor.post(
        "/group-settings/save", data={**form, "_csrf": await csrf_of(editor, "/group-settings")})
    assert response.status == 400 and reason in await response.text()
    assert path.read_text("utf-8") == before


async def test_groups_kept_in_a_private_file_are_shown_read_only_and_never_written(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)  # the bridge reads another file here
    before = (root / "data/groups.yml").read_text("utf-8")
    page = await (await editor.get("/group-settings")).text()
    assert "BRIDGE_GROUPS_FILE" in page and "预览改动" not in page
    response = await editor.post("/group-settings/save", data={
        "groups.#sandbox.name": "新名字", "_csrf": await csrf_of(editor, "/group-settings")})
    assert response.status == 400 and "运营台改不到它" in await response.text()
    assert (root / "data/groups.yml").read_text("utf-8") == before


async def test_the_form_sent_back_untouched_changes_nothing(login: Login) -> None:
    """A group without `welcome_newcomers:` shows an unticked box; sending it back as a
    browser does writes no `false` anybody asked for."""
    editor, root = await editor_and_root(login)
    await _bridge_reads_the_project_file(editor, root)
    page = await (await editor.get("/group-settings")).text()
    form = [("_csrf", await csrf_of(editor, "/group-settings")),
            ("_version", re.search(r'name="_version" value="([^"]+)"', page)[1]),  # type: ignore[index]
            ("groups.#sandbox.name", "小满咖啡·福利群（沙盒）"),
            ("groups.#sandbox.welcome_newcomers", ""), ("groups.#sandbox.welcome_newcomers", "1"),
            ("groups.#staff.name", "小满咖啡·客服值班群（沙盒）"),
            ("groups.#staff.welcome_newcomers", ""), ("staff.mention", "kefu01")]
    response = await editor.post("/group-settings/save", data=form)
    assert response.status == 400 and "没有改动" in await response.text()


async def test_mentions_typed_with_spaces_are_separate_accounts(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = await _bridge_reads_the_project_file(editor, root)
    saved = await editor.post("/group-settings/save", data={
        "staff.mention": "kefu01 kefu02", "_csrf": await csrf_of(editor, "/group-settings")},
        allow_redirects=False)
    assert saved.status == 303
    assert yaml.safe_load(path.read_text("utf-8"))["staff"]["mention"] == ["kefu01", "kefu02"]


@pytest.mark.parametrize("how", ["inline key", "link to a private file"])
async def test_a_file_holding_webhook_keys_is_never_edited_or_shown(
    login: Login, tmp_path: Path, how: str,
) -> None:
    editor, root = await editor_and_root(login)
    own = await _bridge_reads_the_project_file(editor, root)
    secret = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    text = own.read_text("utf-8").replace("webhook_key_env: QZ_SANDBOX_WEBHOOK_KEY",
                                          f"webhook_key: {secret}")
    if how == "inline key":
        own.write_text(text, "utf-8")
    else:
        private = tmp_path / "private-groups.yml"
        private.write_text(text, "utf-8")
        own.unlink()
        own.symlink_to(private)
    page = await (await editor.get("/group-settings")).text()
    assert "预览改动" not in page and secret not in page
    for step in ("/group-settings/preview", "/group-settings/save"):
        response = await editor.post(step, data={
            "groups.#sandbox.name": "新名字", "_csrf": await csrf_of(editor, "/group-settings")})
        body = await response.text()
        assert response.status == 400 and "运营台改不到它" in body and secret not in body
    assert secret in own.read_text("utf-8") and "新名字" not in own.read_text("utf-8")


async def test_a_group_without_a_name_does_not_block_the_others(login: Login) -> None:
    editor, root = await editor_and_root(login)
    path = await _bridge_reads_the_project_file(editor, root)
    path.write_text(path.read_text("utf-8").replace(
        "    name: 小满咖啡·客服值班群（沙盒）\n", ""), "utf-8")
    saved = await editor.post("/group-settings/save", data={
        "groups.#sandbox.name": "国贸店福利群", "groups.#staff.name": "",
        "_csrf": await csrf_of(editor, "/group-settings")}, allow_redirects=False)
    assert saved.status == 303, await saved.text()
    assert group_names(path)["sandbox"] == "国贸店福利群"
