"""The operators' inbox: what the bot did not handle well is filed once, rephrases included."""

from __future__ import annotations

import asyncio

import pytest

from qunzhu import inbox
from qunzhu.events import Event, Kind
from qunzhu.redisconn import AsyncRedis

pytestmark = pytest.mark.redis

BRAND = "testbrand"
T0 = 1_800_000_000.0


def turn(eid: str, text: str, *, at: float = T0, intent: str = "faq", confidence: float = 0.9,
         fallback: bool = False, user: str = "u1", group: str = "g1") -> Event:
    return Event(Kind.TURN, eid, group, user, at, {
        "intent": intent, "confidence": confidence, "fallback": fallback, "text": text,
        "answer": "没太明白，换个说法试试？" if fallback else "好的", "closest": "faq/delivery"})


async def filed(r: AsyncRedis) -> list[inbox.Item]:
    return await inbox.recent(r, BRAND, 0, 4_000_000_000)


async def test_fallbacks_low_confidence_and_handoffs_are_filed_and_good_answers_are_not(
    redis_client: AsyncRedis,
) -> None:
    batch = [turn("t1", "团购怎么买", fallback=True, intent="nlu_fallback", confidence=0.3),
             turn("t2", "营业时间", confidence=0.95, user="u2"),
             turn("t3", "外卖呢", confidence=0.41, user="u3"),
             turn("t4", "转人工", intent="human_handoff", confidence=0.99, user="u4")]
    assert await inbox.collect(redis_client, BRAND, batch) == 3
    got = {i.eid: i for i in await filed(redis_client)}
    assert set(got) == {"t1", "t3", "t4"}
    assert got["t1"].reasons == ("fallback",) and got["t1"].closest == "faq/delivery"
    assert got["t3"].reasons == ("low_confidence",) and got["t4"].reasons == ("handoff",)
    assert got["t1"].answer.startswith("没太明白") and got["t1"].user == "u1"


async def test_a_redelivered_batch_is_filed_once(redis_client: AsyncRedis) -> None:
    batch = [turn("t1", "团购怎么买", fallback=True)]
    assert await inbox.collect(redis_client, BRAND, batch) == 1
    assert await inbox.collect(redis_client, BRAND, batch) == 0
    assert len(await filed(redis_client)) == 1


async def test_saying_it_again_differently_within_a_minute_files_the_first_answer(
    redis_client: AsyncRedis,
) -> None:
    """The first message got a confident answer that did not help: the member rephrased."""
    first = turn("t1", "你们团购怎么买", intent="checkin", confidence=0.8)
    await inbox.collect(redis_client, BRAND, [first])  # a batch of its own, as it came
    again = turn("t2", "团购在哪里买呀", at=T0 + 30, confidence=0.9)
    later = turn("t3", "团购到底在哪买", at=T0 + 200, confidence=0.9)  # minutes later: not one
    unrelated = turn("t4", "营业时间", at=T0 + 40, user="u2", confidence=0.95)
    await inbox.collect(redis_client, BRAND, [again, later, unrelated])
    got = await filed(redis_client)
    assert [(i.eid, i.reasons) for i in got] == [("t1", ("rephrased",))]


async def test_a_rephrase_is_seen_whichever_turn_a_consumer_handles_first(
    redis_client: AsyncRedis,
) -> None:
    """Two bridge processes take a member's two turns: the later one may be handled first."""
    first = turn("t1", "团购怎么买", confidence=0.9)
    again = turn("t2", "团购在哪里买", at=T0 + 2, confidence=0.9)
    await inbox.collect(redis_client, BRAND, [again])
    await inbox.collect(redis_client, BRAND, [first])
    assert [(i.eid, i.reasons) for i in await filed(redis_client)] == [("t1", ("rephrased",))]


async def test_two_consumers_at_the_same_moment_still_file_the_rephrase(
    redis_client: AsyncRedis,
) -> None:
    for n in range(20):  # many members, each turn pair handled concurrently
        user = f"m{n}"
        await asyncio.gather(
            inbox.collect(redis_client, BRAND, [turn(f"a{n}", "团购怎么买", user=user)]),
            inbox.collect(redis_client, BRAND, [turn(f"b{n}", "团购在哪里买", at=T0 + 1,
                                                     user=user)]))
    got = {i.eid for i in await filed(redis_client)}
    assert got == {f"a{n}" for n in range(20)}
