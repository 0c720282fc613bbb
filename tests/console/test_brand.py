"""品牌信息: a form changes only the values edited, checked as the bot loads it, committed."""

from __future__ import annotations

import subprocess

import pytest

from console import keys
from console.roles import Role
from qunzhu.config import load_brand
from tests.console.conftest import Login, csrf_of, editor_and_root

pytestmark = pytest.mark.redis


async def test_a_changed_fact_is_previewed_saved_as_a_commit_and_nothing_else_moves(
    login: Login,
) -> None:
    editor, root = await editor_and_root(login)
    path = root / "data/brand.yml"
    before = path.read_text("utf-8")
    page = await (await editor.get("/brand")).text()
    assert "客服电话" in page and "400-820-5200" in page
    form = {"hotline": "400-123-4567", "delivery.fee_yuan": "5",
            "_csrf": await csrf_of(editor, "/brand")}
    preview = await (await editor.post("/brand/preview", data=form)).text()
    assert "+  hotline: 400-123-4567" in preview and path.read_text("utf-8") == before
    saved = await editor.post("/brand/save", data=form, allow_redirects=False)
    assert saved.status == 303 and "live=1" in saved.headers["Location"]
    after = path.read_text("utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
               if a != b]
    assert [b.strip() for _a, b in changed] == ["hotline: 400-123-4567", "fee_yuan: 5"]
    brand = load_brand(path)
    assert brand.hotline == "400-123-4567" and brand.delivery.fee_yuan == 5
    message = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=root, text=True,
                             capture_output=True, check=True).stdout
    assert "客服电话" in message and "外卖配送费" in message
    audit = await editor.app[keys.AUDIT].latest()  # type: ignore[index]
    assert audit[0].diff["客服电话"] == ["400-820-5200", "400-123-4567"]


@pytest.mark.parametrize("form,reason", [
    ({"delivery.radius_km": "三公里"}, "请填一个数字"),
    ({"hotline": "  "}, "不能为空"),
    ({"hotline": "400-820-5200"}, "没有改动"),
    ({"delivery.radius_km": "-3"}, "保存前检查没通过"),
])
async def test_a_wrong_value_is_refused_naming_the_field_and_nothing_is_written(
    login: Login, form: dict[str, str], reason: str,
) -> None:
    editor, root = await editor_and_root(login)
    before = (root / "data/brand.yml").read_text("utf-8")
    response = await editor.post("/brand/save",
                                 data={**form, "_csrf": await csrf_of(editor, "/brand")})
    assert response.status == 400 and reason in await response.text()
    assert (root / "data/brand.yml").read_text("utf-8") == before


async def test_a_viewer_reads_the_facts_but_cannot_change_them(login: Login) -> None:
    viewer = await login(Role.VIEWER)
    page = await (await viewer.get("/brand")).text()
    assert "readonly" in page and "预览改动" not in page
    refused = await viewer.post("/brand/save", data={"hotline": "1",
                                                     "_csrf": await csrf_of(viewer, "/brand")})
    assert refused.status == 403
