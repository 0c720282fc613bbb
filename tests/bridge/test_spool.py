"""The disk spool: a Redis outage loses nothing, doubles nothing and keeps members' order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis

from bot.common.spool import Record, Spool, SpoolFull, encode
from bot.common.store import HANDOFFS, INBOX, OUTBOX, BridgeStore
from tests.bridge.conftest import Bridge, BridgeFactory
from tests.bridge.test_inbound import FixedNow, aibot_message, post, sealed_aibot
from tests.conftest import API_TOKEN
from tests.helpers import until
from tests.redis_servers import binary, free_port

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def record(n: int, **extra: Any) -> Record:
    return {"t": "callback", "dedupe": f"aibot:m{n}", "fields": {"n": str(n)}, "ttl": 60,
            **extra}


class Applied:
    """An idempotent `apply` that remembers what it saw, and can be told to fail."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail_after: int | None = None

    async def __call__(self, records: list[Record]) -> None:
        for r in records:
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise ConnectionError("redis went away again")
            if r["dedupe"] not in self.seen:
                self.seen.append(r["dedupe"])


# ------------------------------------------------------------------ the spool alone
async def test_records_are_fsynced_lines_drained_in_order_and_then_deleted(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for n in range(5):
        await spool.put(record(n))
    assert spool.pending and spool.pending_records == 5
    lines = b"".join(p.read_bytes() for p in tmp_path.glob("*.spool")).splitlines(keepends=True)
    assert lines == [encode(record(n)) for n in range(5)]
    applied = Applied()
    assert await spool.drain(applied) == 5
    assert applied.seen == [f"aibot:m{n}" for n in range(5)]
    assert not spool.pending and spool.pending_bytes == 0 and not list(tmp_path.glob("*.spool"))


async def test_a_full_spool_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    one = len(encode(record(0)))
    spool = Spool(tmp_path, one * 3)
    for n in range(3):
        await spool.put(record(n))
    with pytest.raises(SpoolFull):
        await spool.put(record(3))
    assert spool.pending_records == 3 and spool.stats.refused_full == 1
    applied = Applied()
    await spool.drain(applied)
    assert applied.seen == ["aibot:m0", "aibot:m1", "aibot:m2"]
    await spool.put(record(4))  # room again once drained
    assert spool.pending_records == 1


async def test_the_spool_survives_a_restart_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1 << 20)
    await first.put(record(1))
    await first.put(record(2, keys=["post:p_1"]))
    segment = next(tmp_path.glob("*.spool"))
    with segment.open("ab") as handle:  # a crash mid-append: never acknowledged
        handle.write(encode(record(3))[:-7])
    del first
    again = Spool(tmp_path, 1 << 20)
    assert again.pending_records == 2 and again.find("post:p_1") is not None
    applied = Applied()
    await again.drain(applied)
    assert applied.seen == ["aibot:m1", "aibot:m2"] and again.find("post:p_1") is None


async def test_a_failed_drain_keeps_the_segment_and_the_next_one_applies_it_again(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for n in range(4):
        await spool.put(record(n))
    applied = Applied()
    applied.fail_after = 2
    with pytest.raises(ConnectionError):
        await spool.drain(applied)
    assert spool.pending_records == 4  # nothing deleted: applied again, idempotently
    applied.fail_after = None
    assert await spool.drain(applied) == 4
    assert applied.seen == [f"aibot:m{n}" for n in range(4)] and not spool.pending


async def test_a_record_spooled_during_a_drain_waits_for_the_next_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    await spool.put(record(1))
    applied = Applied()

    async def apply_while_a_callback_arrives(records: list[Record]) -> None:
        await spool.put(record(2))  # lands in a new segment, not the one being drained
        await applied(records)

    assert await spool.drain(apply_while_a_callback_arrives) == 1
    assert spool.pending_records == 1 and [r["dedupe"] for r in spool.records()] == ["aibot:m2"]
    await spool.drain(applied)
    assert applied.seen == ["aibot:m1", "aibot:m2"]


# ------------------------------------------------------------------ through the bridge
class LateRedis:
    """A real redis-server that is down until `start()`: the outage, then its end."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="qz-late-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def late_redis() -> Iterator[LateRedis]:
    server = LateRedis()
    yield server
    server.stop()


@pytest.fixture
async def late_client(late_redis: LateRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(late_redis.url)  # the late server is a single one
    yield client
    await client.close()


async def spooling_bridge(make_bridge: BridgeFactory, redis_url: str, spool_dir: Path,
                          **overrides: Any) -> Bridge:
    bridge: Bridge = await make_bridge(clock=FixedNow(), redis_url=redis_url, redis_cluster=False,
                                       spool_dir=spool_dir, inbox_wait_s=0.5, **overrides)
    return bridge


async def api_post(bridge: Bridge, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(
        f"{bridge.url}/api/groups/g1/messages", json=body, headers={**AUTH, **(headers or {})}
    ) as r:
        return r.status, await r.json()


async def api_get(bridge: Bridge, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{bridge.url}{path}", headers=AUTH) as r:
        return r.status, await r.json()


@pytest.mark.redis
async def test_redis_down_callbacks_and_posts_are_spooled_then_moved_in_exactly_once(
    make_bridge: BridgeFactory, late_redis: LateRedis, late_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    bridge = await spooling_bridge(make_bridge, late_redis.url, tmp_path)
    query, body = sealed_aibot(aibot_message("outage-1"))
    for _ in range(3):  # WeCom's retries of the same message while Redis is down
        assert (await post(f"{bridge.url}/wecom/aibot", query, body))[0] == 200
    # The actions' announcements (reactions to a member's message) are spooled; a post the
    # anti-spam budget must count cannot be decided without Redis: 503, the caller retries.
    shout = {"content": "今晚直播", "kind": "reaction"}
    status, doc = await api_post(bridge, shout, {"Idempotency-Key": "live-1"})
    assert status == 202 and doc["state"] == "spooled"
    again, doc2 = await api_post(bridge, shout, {"Idempotency-Key": "live-1"})
    assert again == 202 and doc2["id"] == doc["id"] and doc2["duplicate"]
    plain_status, plain = await api_post(bridge, {"content": "没有幂等键的帖子",
                                                  "kind": "reaction"})
    assert plain_status == 202 and plain["state"] == "spooled"
    budgeted, refusal = await api_post(bridge, {"content": "今日上新"}, {"Idempotency-Key": "p"})
    assert budgeted == 503 and "budget" in refusal["error"]
    assert (await api_get(bridge, doc["status_url"]))[1]["state"] == "spooled"
    handoff = {"user": "alice", "group": "g1", "text": "转人工"}
    for duplicate in (False, True):
        async with aiohttp.ClientSession() as s, s.post(
            f"{bridge.url}/api/handoffs", json=handoff,
            headers={**AUTH, "Idempotency-Key": "xiaoman:alice:m9"},
        ) as r:
            assert r.status == 202 and (await r.json())["duplicate"] is duplicate
    health = await api_get(bridge, "/healthz")
    assert health[0] == 200 and health[1]["status"] == "degraded"
    assert health[1]["spool"]["records"] == 6

    late_redis.start()

    async def drained() -> bool:
        return bool((await api_get(bridge, "/healthz"))[1]["spool"]["records"] == 0)

    await until(drained)
    assert await late_client.xlen(INBOX) == 1  # three copies, one turn
    entry = (await late_client.xrange(INBOX))[0][1]
    assert entry[b"dedupe"] == b"aibot:outage-1" and entry[b"received_at"] == b"1800000000.000"
    outbox = await late_client.xrange(OUTBOX)
    assert sorted(f[b"id"].decode() for _id, f in outbox) == sorted([doc["id"], plain["id"]])
    status, state = await api_get(bridge, doc["status_url"])
    assert status == 200 and state["state"] == "queued"
    assert await late_client.xlen(HANDOFFS) == 1
    metrics = await BridgeStore(late_client).metrics()
    assert metrics["callbacks_spooled"] == 3 and metrics["callbacks_duplicate"] == 2
    assert metrics["posts_spooled"] == 2
    assert not list(tmp_path.glob("*.spool"))


@pytest.mark.redis
async def test_while_the_spool_drains_new_messages_queue_behind_it(
    make_bridge: BridgeFactory, late_redis: LateRedis, late_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    bridge = await spooling_bridge(make_bridge, late_redis.url, tmp_path)
    for n in range(20):
        query, body = sealed_aibot(aibot_message(f"early-{n}"))
        assert (await post(f"{bridge.url}/wecom/aibot", query, body))[0] == 200
    late_redis.start()
    for n in range(20):  # Redis is back, the drain is under way
        query, body = sealed_aibot(aibot_message(f"late-{n}"))
        assert (await post(f"{bridge.url}/wecom/aibot", query, body))[0] == 200

    async def all_in() -> bool:
        return bool(await late_client.xlen(INBOX) == 40)

    await until(all_in)
    order = [f[b"dedupe"].decode() for _id, f in await late_client.xrange(INBOX)]
    assert order == [f"aibot:early-{n}" for n in range(20)] + [
        f"aibot:late-{n}" for n in range(20)]


@pytest.mark.redis
async def test_a_restarted_bridge_drains_what_the_last_one_spooled(
    make_bridge: BridgeFactory, late_redis: LateRedis, late_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    first = await spooling_bridge(make_bridge, late_redis.url, tmp_path)
    query, body = sealed_aibot(aibot_message("before-restart"))
    assert (await post(f"{first.url}/wecom/aibot", query, body))[0] == 200
    await first.server.close()  # the bridge stops while Redis is still down
    late_redis.start()
    await spooling_bridge(make_bridge, late_redis.url, tmp_path)

    async def moved() -> bool:
        return bool(await late_client.xlen(INBOX) == 1)

    await until(moved)
    assert not list(tmp_path.glob("*.spool"))


@pytest.mark.redis
async def test_a_hung_redis_is_waited_on_briefly_then_spooled_and_still_one_turn(
    make_bridge: BridgeFactory, late_redis: LateRedis, late_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    late_redis.start()
    bridge = await spooling_bridge(make_bridge, late_redis.url, tmp_path)
    assert late_redis.proc is not None
    query, body = sealed_aibot(aibot_message("hung-1"))
    assert (await post(f"{bridge.url}/wecom/aibot", query, body))[0] == 200  # a connection
    await late_client.delete(INBOX)
    os.kill(late_redis.proc.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        query, body = sealed_aibot(aibot_message("hung-2"))
        started = time.monotonic()
        status, _ = await post(f"{bridge.url}/wecom/aibot", query, body)
        assert status == 200 and time.monotonic() - started < 4.5  # inside WeCom's 5 s
        assert len(list(tmp_path.glob("*.spool"))) == 1
    finally:
        os.kill(late_redis.proc.pid, signal.SIGCONT)

    async def moved() -> bool:
        return not list(tmp_path.glob("*.spool"))

    await until(moved)
    await asyncio.sleep(0.5)
    # The command sent before we gave up may have run too: the dedupe mark keeps one turn.
    entries = await late_client.xrange(INBOX)
    assert [f[b"dedupe"] for _id, f in entries] == [b"aibot:hung-2"]


def test_spool_lines_are_json_with_a_checksum() -> None:
    line = encode({"t": "callback", "text": "打卡 ✅"})
    assert line.endswith(b"\n") and line[8:9] == b" "
    assert json.loads(line[9:]) == {"t": "callback", "text": "打卡 ✅"}
