"""Coalesce concurrent requests into one round trip: callers await their own answer.

Hundreds of lanes (one per group) ask Redis the same kind of question at once — may this
robot post now, these posts are done. Each `submit` joins the batch being collected in
this loop tick; one call answers the whole batch; each caller gets its own result (or the
batch's error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Batches `submit`ted items for `answer`, which returns one result per item, in order."""

    def __init__(self, answer: Callable[[list[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._answer = answer
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """This item's result, answered together with whatever else was submitted now."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let everyone who is ready in this tick join the batch
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._answer([item for item, _ in batch])
            except BaseException as exc:  # every caller of the batch sees its error
                for _item, future in batch:
                    if not future.done():
                        if isinstance(exc, Exception):
                            future.set_exception(exc)
                        else:
                            future.cancel()  # never left waiting forever
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_item, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
