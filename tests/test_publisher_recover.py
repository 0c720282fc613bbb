"""A publisher that restarts mid-job settles it truthfully and never stops the live slot.

The registry is real Redis; recovery talks to nothing else. What members get depends on it:
a job that switched already is live, one that did not left the old model answering, and a
job still queued simply runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from qunzhu.models import ModelRegistry, Release
from qunzhu.redisconn import AsyncRedis
from qunzhu.tools.publisher import Publisher

pytestmark = pytest.mark.redis

URL_A, URL_B = "http://127.0.0.1:5005", "http://127.0.0.1:5006"


def release(rid: str) -> Release:
    return Release(id=rid, model=f"/m/{rid}.tar.gz", commit="", by="运营", at=1.8e9)


@pytest.fixture
async def publisher(redis_client: AsyncRedis, tmp_path: Path) -> AsyncIterator[Publisher]:
    async with aiohttp.ClientSession() as http:
        yield Publisher(ModelRegistry(redis_client, "testbrand"), tmp_path, tmp_path,
                        drain_s=0, api_token="t", http=http)


async def test_a_job_cut_short_before_the_switch_failed_and_its_candidate_slot_stops(
    publisher: Publisher,
) -> None:
    registry = publisher.registry
    await registry.adopt("a", URL_A, release("initial"))
    job = await registry.submit("publish", "运营")
    await registry.next_job(1)
    await registry.progress(job.id, state="running", stage="start")
    await registry.assign("b", "/m/candidate.tar.gz", job.id)
    await publisher.recover()
    settled = await registry.job(job.id)
    assert settled is not None and settled.state == "failed" and "线上模型没有变" in settled.message
    assert await registry.assignment("b") is None  # the half-started candidate stops
    assert await registry.assignment("a") == "/m/initial.tar.gz"  # the live slot never does
    assert await registry.current_job() == ""  # the next click may start


async def test_a_job_cut_short_after_the_switch_is_recorded_live(publisher: Publisher) -> None:
    registry = publisher.registry
    await registry.adopt("a", URL_A, release("initial"))
    job = await registry.submit("publish", "运营")
    await registry.next_job(1)
    await registry.progress(job.id, state="running", stage="test")
    await registry.assign("b", f"/m/{job.id}.tar.gz", job.id)
    await registry.switch("b", URL_B, release(job.id))  # then the publisher was killed
    await publisher.recover()
    settled = await registry.job(job.id)
    assert settled is not None and settled.state == "live" and settled.release == job.id
    assert await registry.live_slot() == "b" and await registry.assignment("b") is not None
    assert await registry.assignment("a") is None  # the old slot is stopped (drain is over)


async def test_a_job_still_queued_is_left_to_run(publisher: Publisher) -> None:
    registry = publisher.registry
    await registry.adopt("a", URL_A, release("initial"))
    job = await registry.submit("rollback", "运营")
    await publisher.recover()
    queued = await registry.next_job(1)
    assert queued is not None and queued.id == job.id and queued.state == "queued"


async def test_the_live_slot_cannot_be_freed(publisher: Publisher) -> None:
    registry = publisher.registry
    await registry.adopt("a", URL_A, release("initial"))
    assert await registry.free("a") is False
    assert await registry.assignment("a") == "/m/initial.tar.gz"
    await registry.assign("b", "/m/x.tar.gz")
    assert await registry.free("b") is True and await registry.assignment("b") is None
