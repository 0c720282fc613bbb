"""Concurrent requests share one round trip; each caller gets its own answer or the error."""

from __future__ import annotations

import asyncio

import pytest

from bot.common.coalesce import Coalescer


async def test_requests_made_together_are_answered_in_one_call() -> None:
    calls: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        calls.append(items)
        await asyncio.sleep(0.01)
        return [2 * i for i in items]

    batcher: Coalescer[int, int] = Coalescer(double)
    first = await asyncio.gather(*(batcher.submit(i) for i in range(50)))
    assert first == [2 * i for i in range(50)] and calls == [list(range(50))]
    assert await batcher.submit(7) == 14 and len(calls) == 2  # a later one: a new round


async def test_a_failed_round_fails_each_of_its_callers_and_the_next_round_works() -> None:
    fail = [True]

    async def answer(items: list[str]) -> list[str]:
        if fail[0]:
            fail[0] = False
            raise ConnectionError("redis went away")
        return [i.upper() for i in items]

    batcher: Coalescer[str, str] = Coalescer(answer)
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"),
                                   return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await batcher.submit("c") == "C"
    with pytest.raises(ConnectionError):
        fail[0] = True
        await batcher.submit("d")
