"""Three scheduler processes against one Redis (server and cluster); the leader is killed
with SIGKILL in the middle of a fan-out, then the next one too → every occurrence is queued
exactly once: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from bot.campaigns.scheduler import scheduler_keys
from bot.common.store import OUTBOX
from qunzhu.campaign_status import StatusBook
from qunzhu.redisconn import AsyncRedis, text_of
from tests.campaigns.scheduling import BRAND, at, outbox
from tests.conftest import RedisTarget

pytestmark = pytest.mark.redis
DAY = datetime(2026, 11, 25)
GROUPS = 300
SPEED = 240.0  # virtual seconds per real second: 09:00 ± 10 min takes 5 s
CAMPAIGNS = """
campaigns:
  - id: morning
    name: 每日打卡提醒
    text: "早上好，{群名}！今天也来打卡吧"
    schedule: {daily: "09:00"}
    promotional: false
    jitter_minutes: 10
  - id: rush
    name: 限时抢券
    text: "午前福利来啦"
    schedule: {daily: "09:30"}
    promotional: true
    jitter_minutes: 5
"""


def virtual(real_start: float, real: float) -> float:
    return at(DAY, 8, 45) + max(0.0, real - real_start) * SPEED


async def wait_virtual(real_start: float, hour: int, minute: int) -> None:
    while virtual(real_start, time.time()) < at(DAY, hour, minute):
        await asyncio.sleep(0.05)


async def leader(redis_client: AsyncRedis) -> str:
    lease, _cursor, _deferred = scheduler_keys(BRAND.id)
    holder = await redis_client.get(lease)
    assert holder is not None, "someone leads"
    return text_of(holder)


async def test_kill_9_mid_fan_out_loses_and_doubles_nothing(
    redis_client: AsyncRedis, redis_target: RedisTarget, tmp_path: Path,
) -> None:
    file = tmp_path / "campaigns.yml"
    file.write_text(CAMPAIGNS, encoding="utf-8")
    real_start = time.time() + 6  # every process imports and connects before time runs
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for n in range(3):
        owner = f"proc{n}"
        procs[owner] = subprocess.Popen(
            [sys.executable, "-m", "tests.campaigns.scheduler_proc", "--redis", redis_target.url,
             *(["--cluster"] if redis_target.cluster else []), "--owner", owner,
             "--campaigns", str(file), "--groups", str(GROUPS),
             "--virtual-start", str(at(DAY, 8, 45)), "--real-start", str(real_start),
             "--speed", str(SPEED), "--lease-ms", "800"],
            stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        killed_mid = []
        for hour, minute in ((9, 3), (9, 31)):
            await wait_virtual(real_start, hour, minute)
            owner = await leader(redis_client)
            before = Counter(p["source"] for p in await outbox(redis_client))
            procs[owner].send_signal(signal.SIGKILL)
            procs[owner].wait()
            killed_mid.append((owner, dict(before)))
        await wait_virtual(real_start, 9, 50)
        posts = await outbox(redis_client)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()

    first, second = killed_mid
    assert 0 < first[1].get("morning", 0) < GROUPS, f"killed mid-fan-out: {first}"
    assert 0 < second[1].get("rush", 0) < GROUPS, f"killed mid-fan-out: {second}"
    assert first[0] != second[0], "the second kill hit the process that took over"
    sent = Counter((p["source"], p["group"]) for p in posts)
    assert len(sent) == 2 * GROUPS, "nothing lost"
    assert set(sent.values()) == {1}, "nothing doubled"
    assert await redis_client.xlen(OUTBOX) == 2 * GROUPS
    book = StatusBook(redis_client, BRAND.id)
    for campaign in ("morning", "rush"):
        summary = await book.summary(campaign, DAY.date(), 1)
        assert summary["totals"] == {"sent": GROUPS, "deferred": 0, "dropped": 0,
                                     "skipped": 0}, "each outcome recorded once"
