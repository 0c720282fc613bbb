"""The model registry: which slot answers members, and the one-at-a-time publish jobs.

Every bridge process routes turns by what this registry says, and the publisher relies on its
lock so two clicks never train and swap at once; a wrong answer here means members talk to the
wrong model or two jobs fight over the idle slot. So it is checked against a real redis-server
and a real three-master cluster (where a key outside the brand's hash tag would fail a script).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from qunzhu.models import Busy, Job, Keys, ModelRegistry, Release
from qunzhu.redisconn import AsyncRedis, key_slot, text_of

pytestmark = pytest.mark.redis

BRAND = "testbrand"
URL_A = "http://127.0.0.1:5005"
URL_B = "http://127.0.0.1:5006"


@pytest.fixture
def registry(redis_client: AsyncRedis) -> ModelRegistry:
    return ModelRegistry(redis_client, BRAND)


def release(rid: str, **changes: Any) -> Release:
    """A release as the publisher records it."""
    made = Release(id=rid, model=f"/models/published/{rid}.tar.gz", commit=f"c0ffee{rid}",
                   by="运营小王", at=1_800_000_000.0, summary="新增：优惠券怎么用")
    return replace(made, **changes)


async def all_keys(r: AsyncRedis) -> list[str]:
    """Every key Redis holds: every master's, on a cluster."""
    if isinstance(r, RedisCluster):
        raw = await r.keys("*", target_nodes=RedisCluster.PRIMARIES)
    else:
        raw = await r.keys("*")
    return sorted(text_of(k) for k in raw)


# ------------------------------------------------------------------ adopting the first model
async def test_adopt_makes_a_slot_live_on_the_first_start(registry: ModelRegistry) -> None:
    assert await registry.route() == "" and await registry.live_slot() == ""
    assert await registry.live() is None and await registry.previous() is None
    first = release("r1")
    assert await registry.adopt("a", URL_A, first) is True
    assert await registry.live_slot() == "a"
    assert await registry.route() == URL_A
    assert await registry.live() == first
    assert await registry.assignment("a") == first.model
    assert await registry.previous() is None


async def test_a_second_adopt_returns_false_and_changes_nothing(registry: ModelRegistry) -> None:
    first = release("r1")
    assert await registry.adopt("a", URL_A, first)
    assert await registry.adopt("b", URL_B, release("r2")) is False
    assert await registry.live_slot() == "a" and await registry.route() == URL_A
    assert await registry.live() == first
    assert await registry.assignment("b") is None and await registry.assignment("a") == first.model


# ------------------------------------------------------------------ jobs and the lock
async def test_submit_queues_a_job_and_holds_the_lock(registry: ModelRegistry) -> None:
    job = await registry.submit("publish", "运营小王")
    assert job.kind == "publish" and job.state == "queued" and job.created > 0
    assert await registry.current_job() == job.id
    stored = await registry.job(job.id)
    assert stored is not None
    assert (stored.id, stored.kind, stored.by, stored.state) == (job.id, "publish", "运营小王",
                                                                 "queued")
    assert stored.stage_label == "排队中" and not stored.finished_yet


async def test_a_second_submit_while_one_runs_is_told_which_job_runs(
    registry: ModelRegistry,
) -> None:
    running = await registry.submit("publish", "运营小王")
    with pytest.raises(Busy) as raised:
        await registry.submit("rollback", "运营小李")
    assert raised.value.job == running.id
    assert [j.id for j in await registry.jobs()] == [running.id], "the refused job is not listed"
    assert await registry.current_job() == running.id


async def test_finish_frees_the_lock_so_the_next_submit_works(registry: ModelRegistry) -> None:
    first = await registry.submit("publish", "运营小王")
    await registry.finish(first.id, "refused", "新模型没通过测试，线上模型不变。")
    assert await registry.current_job() == ""
    second = await registry.submit("rollback", "运营小李", target="r1")
    assert await registry.current_job() == second.id
    stored = await registry.job(second.id)
    assert stored is not None and stored.kind == "rollback" and stored.target == "r1"


async def test_finishing_a_stale_job_does_not_free_someone_elses_lock(
    registry: ModelRegistry,
) -> None:
    stale = await registry.submit("publish", "运营小王")
    await registry.finish(stale.id, "failed", "发布被中断了")
    current = await registry.submit("publish", "运营小李")
    await registry.finish(stale.id, "failed", "发布被中断了（又一次）")
    assert await registry.current_job() == current.id
    with pytest.raises(Busy) as raised:
        await registry.submit("publish", "运营小张")
    assert raised.value.job == current.id
    stale_job = await registry.job(stale.id)
    assert stale_job is not None and stale_job.message == "发布被中断了（又一次）"


async def test_next_job_pops_queued_jobs_in_the_order_they_came(registry: ModelRegistry) -> None:
    ids = []
    for who in ("运营小王", "运营小李", "运营小张"):
        job = await registry.submit("publish", who)
        ids.append(job.id)
        await registry.finish(job.id, "failed", "")  # free the lock, leave it queued
    popped = [await registry.next_job(1) for _ in ids]
    assert [j.id if j is not None else None for j in popped] == ids
    assert [j.by for j in popped if j is not None] == ["运营小王", "运营小李", "运营小张"]
    assert await registry.next_job(1) is None


async def test_progress_and_job_round_trip_chinese_messages_and_details(
    registry: ModelRegistry,
) -> None:
    job = await registry.submit("publish", "运营小王")
    details = ["答错了：“优惠券怎么用” 应是 faq，新模型认成 checkin",
               "对话测试没通过：该做 utter_greet"]
    await registry.progress(job.id, state="running", stage="train", percent=42,
                            message="训练新模型… 42%", details=details)
    got = await registry.job(job.id)
    assert got is not None
    assert (got.state, got.stage, got.percent) == ("running", "train", 42)
    assert got.message == "训练新模型… 42%" and got.details == details
    assert got.stage_label == "训练新模型" and not got.finished_yet
    await registry.progress(job.id)  # nothing to record: nothing changes
    assert await registry.job(job.id) == got


async def test_a_job_that_went_live_is_done_at_a_hundred_percent(registry: ModelRegistry) -> None:
    job = await registry.submit("publish", "运营小王")
    await registry.progress(job.id, state="running", stage="switch", percent=96)
    await registry.finish(job.id, "live", "发布完成，新模型正在回答群友。", release=job.id)
    got = await registry.job(job.id)
    assert got is not None and got.finished_yet
    assert (got.state, got.stage, got.percent, got.release) == ("live", "done", 100, job.id)
    assert got.stage_label == "完成" and got.finished >= got.created > 0


async def test_a_refused_job_keeps_its_reasons_and_its_stage(registry: ModelRegistry) -> None:
    job = await registry.submit("publish", "运营小王")
    await registry.progress(job.id, state="running", stage="test", percent=88)
    reasons = ["意图识别准确率 90.0%，低于要求的 97%"]
    await registry.finish(job.id, "refused", "新模型没通过测试，线上模型不变。", details=reasons)
    got = await registry.job(job.id)
    assert got is not None and got.finished_yet
    assert (got.state, got.stage, got.percent) == ("refused", "test", 88)
    assert got.details == reasons and got.release == ""


async def test_jobs_are_listed_newest_first(registry: ModelRegistry) -> None:
    ids = []
    for who in ("运营小王", "运营小李", "运营小张"):
        job = await registry.submit("publish", who)
        ids.append(job.id)
        await registry.finish(job.id, "failed", "")
    assert [j.id for j in await registry.jobs()] == ids[::-1]
    assert [j.id for j in await registry.jobs(2)] == ids[:0:-1]


async def test_an_unknown_job_is_none(registry: ModelRegistry) -> None:
    assert await registry.job("20260101-000000-dead") is None
    assert await registry.jobs() == []


# ------------------------------------------------------------------ switching
async def test_switch_moves_live_to_previous_and_routes_every_turn_to_the_new_slot(
    registry: ModelRegistry,
) -> None:
    first, second = release("r1"), release("r2", intent_accuracy=0.98, faq_accuracy=0.96)
    await registry.adopt("a", URL_A, first)
    await registry.switch("b", URL_B, second)
    assert await registry.live_slot() == "b" and await registry.route() == URL_B
    assert await registry.live() == second
    assert await registry.previous() == first
    assert await registry.releases() == [second]


async def test_switching_back_lists_each_release_newest_first(registry: ModelRegistry) -> None:
    first, second = release("r1"), release("r2")
    await registry.adopt("a", URL_A, first)
    await registry.switch("b", URL_B, second)
    back = release("r1", summary="回滚到 r1", by="运营小李", at=1_800_000_900.0)
    await registry.switch("a", URL_A, back)
    assert await registry.live_slot() == "a" and await registry.route() == URL_A
    assert await registry.live() == back and await registry.previous() == second
    assert await registry.releases() == [back, second]
    assert await registry.releases(1) == [back]


async def test_switch_before_anything_was_adopted_leaves_no_previous(
    registry: ModelRegistry,
) -> None:
    only = release("r1")
    await registry.switch("b", URL_B, only)
    assert await registry.live() == only and await registry.previous() is None
    assert await registry.route() == URL_B


async def test_record_live_rewrites_the_scores_of_the_release_still_live(
    registry: ModelRegistry,
) -> None:
    first = release("r1")
    await registry.adopt("a", URL_A, first)
    scored = release("r1", intent_accuracy=0.985, faq_accuracy=0.96)
    await registry.record_live(scored)
    assert await registry.live() == scored


async def test_record_live_leaves_a_release_that_is_no_longer_live_alone(
    registry: ModelRegistry,
) -> None:
    first, second = release("r1"), release("r2", intent_accuracy=0.99)
    await registry.adopt("a", URL_A, first)
    await registry.switch("b", URL_B, second)
    await registry.record_live(release("r1", intent_accuracy=0.5))
    assert await registry.live() == second
    assert await registry.previous() == first


async def test_record_live_with_nothing_live_writes_nothing(registry: ModelRegistry) -> None:
    await registry.record_live(release("r1", intent_accuracy=0.99))
    assert await registry.live() is None


async def test_release_finds_a_listed_release_and_the_live_one(registry: ModelRegistry) -> None:
    adopted, second, third = release("r1"), release("r2"), release("r3")
    await registry.adopt("a", URL_A, adopted)
    assert await registry.release("r1") == adopted, "the adopted one is live though not listed"
    await registry.switch("b", URL_B, second)
    await registry.switch("a", URL_A, third)
    assert await registry.release("r2") == second
    assert await registry.release("r3") == third
    assert await registry.release("nope") is None


async def test_release_finds_the_previous_release_by_id_even_when_it_was_adopted(
    registry: ModelRegistry,
) -> None:
    adopted = release("r1")
    await registry.adopt("a", URL_A, adopted)
    await registry.switch("b", URL_B, release("r2"))
    assert await registry.previous() == adopted
    assert await registry.release("r1") == adopted


# ------------------------------------------------------------------ slots
async def test_assign_and_mark_running_say_what_a_slot_should_run_and_runs(
    registry: ModelRegistry,
) -> None:
    assert await registry.assignment("b") is None and await registry.running("b") is None
    await registry.assign("b", "/models/published/r2.tar.gz", "r2")
    assert await registry.assignment("b") == "/models/published/r2.tar.gz"
    assert await registry.running("b") is None, "assigned is not yet loaded"
    await registry.mark_running("b", "/models/published/r2.tar.gz")
    assert await registry.running("b") == "/models/published/r2.tar.gz"
    await registry.mark_running("b", None)
    assert await registry.running("b") is None
    assert await registry.assignment("b") == "/models/published/r2.tar.gz"
    assert await registry.assignment("a") is None and await registry.running("a") is None


async def test_assigning_no_model_clears_both_assignment_and_running(
    registry: ModelRegistry,
) -> None:
    await registry.assign("b", "/models/published/r2.tar.gz", "r2")
    await registry.mark_running("b", "/models/published/r2.tar.gz")
    await registry.assign("a", "/models/published/r1.tar.gz", "r1")
    await registry.assign("b", None)
    assert await registry.assignment("b") is None and await registry.running("b") is None
    assert await registry.assignment("a") == "/models/published/r1.tar.gz", "the other slot stays"


async def test_reset_forgets_what_is_live_and_what_the_slots_run(
    registry: ModelRegistry,
) -> None:
    await registry.adopt("a", URL_A, release("r1"))
    await registry.switch("b", URL_B, release("r2"))
    for slot in ("a", "b"):
        await registry.assign(slot, f"/models/{slot}.tar.gz")
        await registry.mark_running(slot, f"/models/{slot}.tar.gz")
    await registry.reset()
    assert await registry.route() == "" and await registry.live_slot() == ""
    assert await registry.live() is None and await registry.previous() is None
    for slot in ("a", "b"):
        assert await registry.assignment(slot) is None and await registry.running(slot) is None
    third = release("r3")
    assert await registry.adopt("b", URL_B, third), "the next start adopts again"
    assert await registry.live() == third and await registry.route() == URL_B


async def test_reset_leaves_a_running_job_its_lock(registry: ModelRegistry) -> None:
    job = await registry.submit("publish", "运营小王")
    await registry.reset()
    assert await registry.current_job() == job.id


# ------------------------------------------------------------------ one slot per brand
def test_every_registry_key_shares_one_cluster_slot() -> None:
    keys = Keys(BRAND)
    names = [keys.registry, keys.queue, keys.jobs, keys.releases,
             keys.job("20260101-000000-beef"), keys.job("")]
    assert len({key_slot(k) for k in names}) == 1, names
    assert key_slot(Keys("otherbrand").registry) == key_slot("otherbrand:models")


async def test_everything_the_registry_writes_lies_in_the_brands_slot(
    registry: ModelRegistry, redis_client: AsyncRedis,
) -> None:
    await registry.adopt("a", URL_A, release("r1"))
    job = await registry.submit("publish", "运营小王")
    await registry.progress(job.id, stage="train", percent=10)
    await registry.assign("b", "/models/published/r2.tar.gz", "r2")
    await registry.mark_running("b", "/models/published/r2.tar.gz")
    await registry.switch("b", URL_B, release("r2"))
    await registry.finish(job.id, "live", "发布完成", release="r2")
    written = await all_keys(redis_client)
    keys = registry.keys
    assert set(written) == {keys.registry, keys.queue, keys.jobs, keys.releases, keys.job(job.id)}
    assert {key_slot(k) for k in written} == {key_slot(keys.registry)}


async def test_two_brands_keep_separate_registries(redis_client: AsyncRedis) -> None:
    ours, theirs = ModelRegistry(redis_client, BRAND), ModelRegistry(redis_client, "otherbrand")
    await ours.adopt("a", URL_A, release("r1"))
    job = await ours.submit("publish", "运营小王")
    assert await theirs.live() is None and await theirs.route() == ""
    other = await theirs.submit("publish", "别家运营")  # our job does not hold their lock
    assert [j.id for j in await theirs.jobs()] == [other.id]
    assert await ours.current_job() == job.id and await theirs.current_job() == other.id


def test_a_job_read_back_from_odd_fields_falls_back_to_safe_values() -> None:
    assert Job.from_fields({}) is None
    job = Job.from_fields({b"id": b"j1", b"kind": b"weird", b"details": b"not json",
                           b"percent": b"12.0"})
    assert job is not None
    assert (job.kind, job.details, job.percent, job.state) == ("publish", [], 12, "queued")


def test_a_release_that_is_not_json_reads_as_none() -> None:
    assert Release.from_json(None) is None
    assert Release.from_json(b"{not json") is None
    assert Release.from_json(b'{"model": "x"}') is None, "no id: not a release"
    assert Release.from_json('["id"]') is None
