"""The one stream consumer: one recovery rule, tested once for every stream the bridge reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from bot.common.streams import Entry, StreamConsumer
from qunzhu.redisconn import AsyncRedis
from qunzhu.settings import PROJECT_ROOT
from tests.helpers import until

pytestmark = pytest.mark.redis

STREAM, GROUP, DONE = "qz:{test}:jobs", "workers", "qz:{test}:done"

# A consumer process: each job's effect and its acknowledgement are one script, as in the
# sender's ACK_POSTS, so "exactly once" is observable as a counter of 1. It runs on whatever
# Redis the test runs on (QZ_REDIS_CLUSTER is inherited).
DONE_SCRIPT = (
    "redis.call('HINCRBY', KEYS[2], ARGV[3], 1) "
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) "
    "redis.call('XDEL', KEYS[1], ARGV[2]) return 1"
)
WORKER = f"""
import asyncio, sys
from bot.common.streams import StreamConsumer
from qunzhu.redisconn import async_client

async def main(url, name):
    r = async_client(url)
    done = r.register_script({DONE_SCRIPT!r})
    c = StreamConsumer(r, "{STREAM}", "{GROUP}", name, reclaim_idle_ms=1000, read_count=20)
    stopping = asyncio.Event()

    async def handle(batch):
        for entry in batch:
            await asyncio.sleep(0.02)  # work
            await done(keys=["{STREAM}", "{DONE}"], args=["{GROUP}", entry.id, entry.fields["n"]])
            c.release(entry.id)
            print("did", entry.fields["n"], flush=True)

    await c.run(handle, stopping)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def start_worker(redis_url: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, redis_url, name], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)


async def add_jobs(r: AsyncRedis, n: int) -> None:
    async with r.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(STREAM, {"n": str(i)})
        await pipe.execute()


async def test_kill_9_of_a_consumer_mid_batch_every_entry_is_done_exactly_once(
    redis_url: str, redis_client: AsyncRedis,
) -> None:
    await add_jobs(redis_client, 300)
    victim = start_worker(redis_url, "victim")
    survivors = [start_worker(redis_url, f"survivor-{i}") for i in range(2)]
    try:
        assert victim.stdout is not None
        for _ in range(10):  # the victim is inside a batch of 20
            assert victim.stdout.readline().startswith(b"did")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

        async def all_done() -> bool:
            return bool(await redis_client.hlen(DONE) == 300
                        and await redis_client.xlen(STREAM) == 0)

        await until(all_done)
        counts = await redis_client.hgetall(DONE)
        assert sorted(int(k) for k in counts) == list(range(300))
        assert set(counts.values()) == {b"1"}  # none twice
        pending = await redis_client.xpending(STREAM, GROUP)
        assert pending["pending"] == 0
    finally:
        for proc in [victim, *survivors]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


async def test_a_restart_under_the_same_name_takes_its_own_pending_entries_at_once(
    redis_client: AsyncRedis,
) -> None:
    await add_jobs(redis_client, 5)
    before = StreamConsumer(redis_client, STREAM, GROUP, "bridge-host-5080",
                            reclaim_idle_ms=3_600_000)
    await before.ensure_group()
    assert len(await before.read()) == 5  # read, then the process dies without acking
    after = StreamConsumer(redis_client, STREAM, GROUP, "bridge-host-5080",
                           reclaim_idle_ms=3_600_000)
    mine = await after.read()  # no idle wait: they are this name's own
    assert [e.fields["n"] for e in mine] == ["0", "1", "2", "3", "4"]
    await after.ack(*(e.id for e in mine))
    await add_jobs(redis_client, 1)
    new = await after.read()
    assert [e.fields["n"] for e in new] == ["0"]  # then new ones
    assert after.held == {new[0].id}  # the acknowledged ones are let go


async def test_held_entries_are_kept_by_the_heartbeat_and_not_taken_by_others(
    redis_client: AsyncRedis,
) -> None:
    await add_jobs(redis_client, 3)
    slow = StreamConsumer(redis_client, STREAM, GROUP, "slow", reclaim_idle_ms=300,
                          heartbeat_s=0.05)
    other = StreamConsumer(redis_client, STREAM, GROUP, "other", reclaim_idle_ms=300)
    await slow.ensure_group()
    assert len(await slow.read()) == 3
    stopping = asyncio.Event()
    beat = asyncio.create_task(slow._beat(stopping))
    try:
        await asyncio.sleep(0.8)  # far longer than the idle time
        assert await other.reclaim() == []
    finally:
        stopping.set()
        beat.cancel()
    await asyncio.sleep(0.4)  # the heartbeat stopped: now it looks like a dead consumer's
    assert len(await other.reclaim()) == 3


async def test_an_entry_deleted_while_pending_is_just_acknowledged(
    redis_client: AsyncRedis,
) -> None:
    await add_jobs(redis_client, 2)
    dead = StreamConsumer(redis_client, STREAM, GROUP, "dead", reclaim_idle_ms=100)
    await dead.ensure_group()
    read = await dead.read()
    await redis_client.xdel(STREAM, read[0].id)
    await asyncio.sleep(0.2)
    alive = StreamConsumer(redis_client, STREAM, GROUP, "alive", reclaim_idle_ms=100)
    assert [e.fields["n"] for e in await alive.reclaim()] == ["1"]
    assert (await redis_client.xpending(STREAM, GROUP))["pending"] == 1  # only "1", held


async def test_a_failing_handler_lets_go_and_the_entry_is_retried_after_the_idle_time(
    redis_client: AsyncRedis,
) -> None:
    await add_jobs(redis_client, 1)
    consumer = StreamConsumer(redis_client, STREAM, GROUP, "c", reclaim_idle_ms=300,
                              block_ms=100)
    attempts: list[str] = []
    stopping = asyncio.Event()

    async def handle(batch: list[Entry]) -> None:
        attempts.extend(e.fields["n"] for e in batch)
        if len(attempts) == 1:
            raise ValueError("a bug in the handler")
        await consumer.ack(*(e.id for e in batch))
        stopping.set()

    await asyncio.wait_for(consumer.run(handle, stopping), 10)
    assert attempts == ["0", "0"] and await redis_client.xlen(STREAM) == 0


async def test_a_lost_consumer_group_is_created_again(redis_client: AsyncRedis) -> None:
    consumer = StreamConsumer(redis_client, STREAM, GROUP, "c", block_ms=100)
    stopping = asyncio.Event()
    seen: list[str] = []

    async def handle(batch: list[Entry]) -> None:
        seen.extend(e.fields["n"] for e in batch)
        await consumer.ack(*(e.id for e in batch))

    task = asyncio.create_task(consumer.run(handle, stopping))
    await add_jobs(redis_client, 1)
    await until(lambda: asyncio.sleep(0, result=seen == ["0"]))
    await redis_client.delete(STREAM)  # Redis restarted empty, say
    await add_jobs(redis_client, 1)
    await until(lambda: asyncio.sleep(0, result=seen == ["0", "0"]))
    stopping.set()
    await asyncio.wait_for(task, 5)


async def test_a_reclaim_that_fails_half_way_holds_nothing_and_loses_nothing(
    redis_client: AsyncRedis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_jobs(redis_client, 250)
    dead = StreamConsumer(redis_client, STREAM, GROUP, "dead", reclaim_idle_ms=100,
                          read_count=250)
    await dead.ensure_group()
    assert len(await dead.read()) == 250
    await asyncio.sleep(0.2)
    alive = StreamConsumer(redis_client, STREAM, GROUP, "alive", reclaim_idle_ms=100,
                           read_count=100)
    real = redis_client.xautoclaim
    calls = [0]

    async def flaky(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == 2:  # the second page: Redis goes away for a moment
            raise ConnectionError("blip")
        return await real(*args, **kwargs)

    monkeypatch.setattr(redis_client, "xautoclaim", flaky)
    with pytest.raises(ConnectionError):
        await alive.reclaim()
    assert alive.held == set()  # nothing held that nobody will ever handle
    await asyncio.sleep(0.2)  # the first page, claimed before the blip, looks idle again
    assert len(await alive.reclaim()) == 250


async def test_the_heartbeat_never_takes_back_what_another_consumer_took_over(
    redis_client: AsyncRedis,
) -> None:
    await add_jobs(redis_client, 3)
    slow = StreamConsumer(redis_client, STREAM, GROUP, "slow", reclaim_idle_ms=100)
    other = StreamConsumer(redis_client, STREAM, GROUP, "other", reclaim_idle_ms=100)
    await slow.ensure_group()
    mine = await slow.read()
    await asyncio.sleep(0.2)  # slow's heartbeats failed (an outage): the entries look idle
    taken = await other.reclaim()
    assert {e.id for e in taken} == {e.id for e in mine}
    assert await slow.heartbeat() == {e.id for e in mine}  # let go, not taken back
    assert slow.held == set() and not await slow.still_mine(mine[0].id)
    assert await other.still_mine(mine[0].id)
    owners = await redis_client.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
    assert {o["consumer"] for o in owners} == {b"other"}
