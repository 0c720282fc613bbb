"""One campaign scheduler process for the kill -9 test: `python -m tests.campaigns.scheduler_proc`.

Every process runs the same scaled clock (virtual time = start + (real − real start) × speed),
so three processes agree on the time while a day's fan-out takes seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from qunzhu.campaigns import load_campaigns
from qunzhu.redisconn import async_client
from tests.campaigns.scheduling import directory, make_scheduler


class ScaledClock:
    """Virtual time that runs `speed` times faster than the wall clock, from `real_start`."""

    def __init__(self, virtual_start: float, real_start: float, speed: float) -> None:
        self._virtual_start = virtual_start
        self._real_start = real_start
        self._speed = speed

    def now(self) -> float:
        """The shared virtual time (held at the start until `real_start`)."""
        return self._virtual_start + max(0.0, time.time() - self._real_start) * self._speed

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of virtual time."""
        await asyncio.sleep(max(0.0, seconds) / self._speed)


async def main() -> None:
    """Schedule until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--owner")
    parser.add_argument("--campaigns", type=Path)
    parser.add_argument("--groups", type=int)
    parser.add_argument("--virtual-start", type=float)
    parser.add_argument("--real-start", type=float)
    parser.add_argument("--speed", type=float)
    parser.add_argument("--lease-ms", type=int)
    args = parser.parse_args()
    clock = ScaledClock(args.virtual_start, args.real_start, args.speed)
    client = async_client(args.redis, cluster=args.cluster)
    scheduler = make_scheduler(client, load_campaigns(args.campaigns),
                               directory([f"g{n}" for n in range(args.groups)]), clock,
                               owner=args.owner, lease_ms=args.lease_ms)
    scheduler._tick_s = 2.0  # virtual seconds
    print("ready", flush=True)
    await scheduler.run()


if __name__ == "__main__":
    asyncio.run(main())
