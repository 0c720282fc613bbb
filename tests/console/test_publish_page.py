"""发布: the console queues one job at a time, shows its progress, and says what would ship.

The publisher process (qunzhu.tools.publisher) is played here by writing its progress into the
real registry, as it does; publishing itself, with real training and Rasa, is exercised by the
browser test and `make bench-console`.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from aiohttp.test_utils import TestClient

from console import keys
from console.roles import Role
from qunzhu.models import ModelRegistry, Release
from tests.console.conftest import BRAND, Login, csrf_of

pytestmark = pytest.mark.redis


def registry_of(client: TestClient) -> ModelRegistry:
    return ModelRegistry(client.app[keys.REDIS], BRAND)  # type: ignore[index]


async def live_release(registry: ModelRegistry, release_id: str, *, at: float,
                       commit: str = "") -> Release:
    release = Release(id=release_id, model=f"/models/{release_id}.tar.gz", commit=commit,
                      by="张运营", at=at, intent_accuracy=0.99, faq_accuracy=0.97)
    if await registry.live_slot():
        await registry.switch("b" if await registry.live_slot() == "a" else "a",
                              "http://127.0.0.1:5006", release)
    else:
        await registry.adopt("a", "http://127.0.0.1:5005", release)
    return release


async def test_a_publisher_starts_one_job_and_a_second_click_is_told_to_wait(
    login: Login,
) -> None:
    publisher = await login(Role.PUBLISHER)
    registry = registry_of(publisher)
    await live_release(registry, "initial", at=time.time())
    started = await publisher.post("/publish", data={"_csrf": await csrf_of(publisher,
                                                                             "/publish")},
                                   allow_redirects=False)
    assert started.status == 303 and started.headers["Location"] == "/publish"
    job_id = await registry.current_job()
    job = await registry.job(job_id)
    assert job is not None and job.kind == "publish" and job.by.startswith("publisher")
    again = await publisher.post("/publish", data={"_csrf": await csrf_of(publisher,
                                                                           "/publish")})
    assert again.status == 409 and "已经有一次发布或回滚在进行" in await again.text()
    assert [j.id for j in await registry.jobs()] == [job_id]  # nothing queued twice

    await registry.progress(job_id, state="running", stage="train", percent=40,
                            message="训练新模型… 50%")
    page = await (await publisher.get("/publish")).text()
    assert 'data-job="' + job_id in page and "训练新模型 · 40%" in page
    assert "发布新模型</button>" in page and "disabled" in page  # no second start while busy
    followed = await (await publisher.get(f"/api/publish/jobs/{job_id}")).json()
    assert followed["stage_label"] == "训练新模型" and followed["percent"] == 40
    assert followed["finished_yet"] is False

    await registry.finish(job_id, "refused", "新模型没通过测试，线上模型不变。",
                          details=["意图识别准确率 80.0%，低于要求的 97%"])
    page = await (await publisher.get("/publish")).text()
    assert "没通过，未发布" in page and "低于要求的 97%" in page
    assert 'id="job"' not in page
    audit = await publisher.app[keys.AUDIT].latest()  # type: ignore[index]
    assert audit[0].action == "发布" and audit[0].target == job_id


async def test_viewers_and_editors_watch_but_cannot_publish(login: Login) -> None:
    for role in (Role.VIEWER, Role.EDITOR):
        client = await login(role)
        page = await (await client.get("/publish")).text()
        assert "发布需要“发布”或“管理员”角色" in page and "发布新模型</button>" not in page
        refused = await client.post("/publish", data={"_csrf": await csrf_of(client,
                                                                              "/publish")})
        assert refused.status == 403
        assert await registry_of(client).current_job() == ""


async def test_changes_saved_since_the_live_model_are_listed_as_waiting(login: Login) -> None:
    publisher = await login(Role.PUBLISHER)
    root = publisher.app[keys.SETTINGS].project_root  # type: ignore[index]
    registry = registry_of(publisher)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, text=True,
                           capture_output=True, check=True).stdout.strip()
    await live_release(registry, "r1", at=time.time(), commit=first)
    assert "线上模型已经包含了所有改动" in await (await publisher.get("/publish")).text()
    faq = root / "data/nlu/faq.yml"
    faq.write_text(faq.read_text("utf-8") + "\n", "utf-8")
    subprocess.run(["git", "-c", "user.name=李编辑", "-c", "user.email=li@qunzhu.console",
                    "commit", "-qam", "教机器人：团购怎么买"], cwd=root, check=True)
    overview = await (await publisher.get("/api/publish")).json()
    assert [(c["author"], c["message"]) for c in overview["pending"]] == [
        ("李编辑", "教机器人：团购怎么买")]
    assert overview["live"]["id"] == "r1" and overview["live"]["intent_accuracy"] == 0.99


async def test_rollback_needs_a_previous_release_and_names_a_known_one(login: Login) -> None:
    publisher = await login(Role.PUBLISHER)
    registry = registry_of(publisher)
    await live_release(registry, "r1", at=time.time())
    token = await csrf_of(publisher, "/publish")
    nothing = await publisher.post("/api/publish/rollback", headers={"X-CSRF-Token": token})
    assert nothing.status == 409 and "没有可以回滚" in (await nothing.json())["error"]
    await live_release(registry, "r2", at=time.time())
    unknown = await publisher.post("/api/publish/rollback", json={"release": "r9"},
                                   headers={"X-CSRF-Token": token})
    assert unknown.status == 404
    garbled = await publisher.post("/api/publish/rollback", json={"release": 7},
                                   headers={"X-CSRF-Token": token})
    assert garbled.status == 400
    assert await registry.current_job() == ""  # none of those queued anything
    page = await (await publisher.get("/publish")).text()
    assert "回滚到上一个版本（r1）" in page
    back = await publisher.post("/api/publish/rollback", headers={"X-CSRF-Token": token})
    assert back.status == 202
    job = (await back.json())["job"]
    assert job["kind"] == "rollback" and job["state"] == "queued"
    queued = await registry.next_job(1)
    assert queued is not None and queued.id == job["id"] and queued.target == ""


async def test_an_unknown_job_is_a_clear_404(login: Login) -> None:
    viewer = await login(Role.VIEWER)
    for job in ("nope", "x" * 200):
        missing = await viewer.get(f"/api/publish/jobs/{job}")
        assert missing.status == 404 and (await missing.json())["error"] == "没有这次发布"
