"""GET /api/campaigns[/{id}] on the real bridge: each group's sent / deferred / dropped /
skipped with reasons, named; bad requests get a clear 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import Background, create_app
from bot.common.clock import VirtualClock
from bot.common.configwatch import OperatorFiles
from qunzhu.campaigns import load_campaigns
from qunzhu.liveconfig import LiveFile
from qunzhu.redisconn import AsyncRedis
from tests.campaigns.scheduling import at, directory, make_scheduler, run_until
from tests.conftest import API_TOKEN, bridge_settings

pytestmark = pytest.mark.redis
DAY = datetime(2026, 11, 25)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CAMPAIGNS = """
campaigns:
  - id: noon
    name: 午间福利
    text: "午间福利来啦 🎁"
    schedule: {daily: "12:00"}
    promotional: true
    jitter_minutes: 0
  - id: afternoon
    name: 下午茶
    text: "下午茶时间～"
    schedule: {daily: "12:30"}
    promotional: true
    jitter_minutes: 0
  - id: ended
    name: 已结束
    text: "旧活动"
    schedule: {daily: "10:00"}
    ends: 2026-11-01
    promotional: false
"""


@pytest.fixture
async def bridge(tmp_path: Path, redis_url: str,
                 redis_client: AsyncRedis) -> AsyncIterator[tuple[str, VirtualClock, Path]]:
    path = tmp_path / "campaigns.yml"
    path.write_text(CAMPAIGNS, encoding="utf-8")
    loaded = OperatorFiles.load(Path(__file__).resolve().parents[2] / "data" / "groups.yml")
    files = OperatorFiles(loaded.brand, loaded.games, loaded.groups,
                          LiveFile("campaigns", path, load_campaigns, keep=tmp_path / "keep"))
    clock = VirtualClock(at(DAY, 11, 59))
    app = create_app(bridge_settings(redis_url), files=files, clock=clock,
                     directory=directory(["g1", "g2"]),
                     background=Background(False, False, False))
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), clock, path
    await server.close()


async def get(url: str, auth: bool = True) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(
            url, headers=AUTH if auth else {}) as resp:
        return resp.status, await resp.json()


async def test_a_campaigns_outcomes_per_group_with_reasons(
    bridge: tuple[str, VirtualClock, Path], redis_client: AsyncRedis,
) -> None:
    base, clock, path = bridge
    scheduler = make_scheduler(redis_client, load_campaigns(path), directory(["g1", "g2"]),
                               clock)
    await scheduler.tick()
    await run_until(scheduler, clock, at(DAY, 12, 31))

    status, listing = await get(f"{base}/api/campaigns")
    assert status == 200
    rows = {c["id"]: c for c in listing["campaigns"]}
    assert rows["noon"]["today"] == {"sent": 2, "deferred": 0, "dropped": 0, "skipped": 0}
    assert rows["noon"]["next"] == "2026-11-26T12:00:00+08:00"
    assert rows["ended"]["next"] is None, "a campaign past its end date does not run again"
    assert listing["ceiling"]["promo_per_day"] == 3

    status, one = await get(f"{base}/api/campaigns/afternoon")
    assert status == 200
    assert one["totals"] == {"sent": 0, "deferred": 2, "dropped": 0, "skipped": 0}
    assert one["reasons"] == {"deferred:spacing": 2}
    assert one["effect"]["measure"] == "checkins" and one["effect"]["posts_measured"] == 0
    g1 = one["groups_detail"]["g1"]
    assert g1["name"] == "g1群" and g1["deferred"] == 1
    assert g1["last"]["reason"] == "spacing" and g1["last"]["retry"] == at(DAY, 14, 0)

    status, only = await get(f"{base}/api/campaigns/afternoon?group=g2&days=1")
    assert status == 200 and list(only["groups_detail"]) == ["g2"]


async def test_bad_requests_get_a_clear_answer(bridge: tuple[str, VirtualClock, Path]) -> None:
    base, _clock, _path = bridge
    assert (await get(f"{base}/api/campaigns", auth=False))[0] == 401
    status, body = await get(f"{base}/api/campaigns/nope")
    assert status == 404 and "nope" in str(body["error"])
    for days in ("0", "99", "x", "-1"):
        status, body = await get(f"{base}/api/campaigns/noon?days={days}")
        assert status == 400 and "days" in str(body["error"])
