"""Building a campaign scheduler for tests: real Redis, the shipped brand and games, a clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.campaigns.render import LiveData
from bot.campaigns.scheduler import Scheduler
from bot.common.clock import Clock, VirtualClock
from bot.common.groups import Directory, Robot
from bot.common.posts import Post
from bot.common.store import OUTBOX, BridgeStore
from qunzhu.campaigns import CampaignsFile
from qunzhu.config import SHANGHAI, Brand, Games, load_brand, load_games
from qunzhu.redisconn import AsyncRedis, text_of

BRAND: Brand = load_brand()
GAMES: Games = load_games()


def at(day: datetime, hour: int, minute: int = 0, second: int = 0) -> float:
    """Unix seconds of a local time on `day`."""
    return day.replace(hour=hour, minute=minute, second=second, tzinfo=SHANGHAI).timestamp()


def directory(chatids: Sequence[str], tags: dict[str, tuple[str, ...]] | None = None
              ) -> Directory:
    """Robots for these groups (named 「<chatid>群」), tagged as given."""
    tags = tags or {}
    robots = {c: Robot(c, f"{c}群", f"key-{c}-{'x' * 20}", False, tags.get(c, ()))
              for c in chatids}
    return Directory(robots=robots, staff_chatid="", staff_mention=())


def campaigns(*items: dict[str, Any], **top: Any) -> CampaignsFile:
    """A campaigns file from dicts (service posts, no jitter unless given)."""
    full = [{"name": item.get("id", "c"), "promotional": False, "jitter_minutes": 0, **item}
            for item in items]
    return CampaignsFile.parse_obj({"campaigns": full, **top})


def make_scheduler(redis: AsyncRedis, file: CampaignsFile, groups: Directory,
                   clock: Clock | None = None, *, owner: str = "s1", lease_ms: int = 15_000,
                   games: Games | None = None, members: dict[str, int] | None = None
                   ) -> Scheduler:
    """A scheduler over real Redis that queues into the real outbox."""
    clock = clock or VirtualClock()
    store = BridgeStore(redis)
    members = members or {}

    async def member_count(chatid: str) -> int:
        return members.get(chatid, 0)

    async def enqueue(post: Post, idem: str) -> str:
        post_id, _new = await store.enqueue(post.group, post.fields(), idem, clock.now())
        return post_id

    live = LiveData(redis, lambda: BRAND, lambda: games or GAMES, lambda: groups, member_count)
    return Scheduler(redis, BRAND.id, lambda: file, lambda: groups, live, enqueue, clock,
                     owner=owner, lease_ms=lease_ms)


async def outbox(redis: AsyncRedis) -> list[dict[str, str]]:
    """Every post queued so far, oldest first."""
    return [{text_of(k): text_of(v) for k, v in fields.items()}
            for _id, fields in await redis.xrange(OUTBOX)]


async def run_until(scheduler: Scheduler, clock: VirtualClock, until: float,
                    step_s: float = 30) -> None:
    """Tick every `step_s` of virtual time up to `until`, as a running bridge would."""
    while clock.now() < until:
        clock.advance(min(step_s, until - clock.now()))
        await scheduler.tick()
