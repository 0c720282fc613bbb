"""The bridge records who joined and left its groups, and every post it delivered, as analytics
events read back from a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import aiohttp
import pytest

from bot.app import Background
from bot.common.clock import RealClock, VirtualClock
from bot.common.groups import Directory, Robot
from bot.common.names import NameResolver
from bot.common.posts import Post
from bot.common.store import BridgeStore
from bot.common.texts import Texts
from bot.inbound.newcomers import Newcomers, change_eid
from bot.outbound.sender import SenderConfig
from bot.simulator.state import SimMember
from bot.wecom.api import WeComApi
from qunzhu import metrics
from qunzhu.config import load_brand
from qunzhu.events import Event, Kind, stream_keys
from qunzhu.names import NameBook
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import (
    CORP_ID,
    CORP_SECRET,
    Bridge,
    BridgeFactory,
    Sim,
    directory,
    start_sim,
)
from tests.bridge.test_sender import enqueue_many, outbox_empty, wait_until

pytestmark = pytest.mark.redis
BRAND = load_brand().id  # the brand the bridge app reads from data/brand.yml
TEXTS = Texts.from_domain()


async def recorded(r: AsyncRedis, kind: Kind | None = None) -> list[Event]:
    """The brand's events (of one kind), over all its streams."""
    events: list[Event] = []
    for key in stream_keys(BRAND):
        events += [Event.from_fields(fields) for _id, fields in await r.xrange(key)]
    return [e for e in events if kind is None or e.kind is kind]


class Welcomes:
    """Posts the newcomers queued (as the outbox would take them)."""

    def __init__(self) -> None:
        self.posts: list[Post] = []

    async def post(self, item: Post, idem: str) -> str:
        self.posts.append(item)
        return f"p{len(self.posts)}"


@pytest.fixture
async def live() -> AsyncIterator[Sim]:
    sim = await start_sim(RealClock())
    yield sim
    await sim.callbacks.close()
    await sim.server.close()


Make = Callable[..., Newcomers]


@pytest.fixture
async def newcomers(live: Sim, redis_client: AsyncRedis) -> AsyncIterator[
        tuple[Make, Welcomes]]:
    welcomes = Welcomes()
    async with aiohttp.ClientSession() as session:
        api = WeComApi(session, base_url=live.url, corp_id=CORP_ID, corp_secret=CORP_SECRET)

        def make(groups: Directory | None = None, brand: str = BRAND) -> Newcomers:
            dir_ = groups or directory()
            names = NameResolver(NameBook(redis_client, BRAND), api, lambda: dir_)
            return Newcomers(BridgeStore(redis_client), api, lambda: dir_, TEXTS,
                             welcomes.post, lambda: "福利官", names, brand=brand)

        yield make, welcomes


def arrives(sim: Sim, group: str, userid: str, name: str) -> int:
    at = int(sim.state.clock.now())
    sim.state.groups[group].members[userid] = SimMember(userid, name, at)
    return at


# ------------------------------------------------------------------ joined / left
async def test_a_newcomer_found_by_the_member_list_diff_is_recorded_as_joined(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, welcomes = newcomers
    at = arrives(live, "g5", "wm_new", "新来的朵朵")
    await make().welcome("g5", at, 1)
    [event] = await recorded(redis_client)
    assert event.kind is Kind.JOINED and event.eid == change_eid(Kind.JOINED, "g5", "wm_new", at)
    assert (event.group, event.user, event.at, event.data) == ("g5", "wm_new", float(at), {})
    assert "新来的朵朵" in welcomes.posts[0].content


async def test_the_same_join_found_by_two_workers_at_once_has_one_eid(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, _welcomes = newcomers
    at = arrives(live, "g5", "wm_new", "朵朵")
    await asyncio.gather(make().welcome("g5", at, 1), make().welcome("g5", at + 1, 1))
    assert {e.eid for e in await recorded(redis_client)} == {
        change_eid(Kind.JOINED, "g5", "wm_new", at)}


async def test_a_member_gone_from_the_list_is_recorded_as_left(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, _welcomes = newcomers
    at = arrives(live, "g6", "wm_new", "朵朵")
    await make().welcome("g6", at, 1)  # the first list: the snapshot to compare with
    del live.state.groups["g6"].members["bob"]
    await make().farewell("g6", at + 30)
    [event] = await recorded(redis_client, Kind.LEFT)
    assert event.eid == change_eid(Kind.LEFT, "g6", "bob", at + 30)
    assert (event.group, event.user, event.at) == ("g6", "bob", float(at + 30))
    await make().farewell("g6", at + 31)  # the same event handled again: nobody new left
    assert len(await recorded(redis_client, Kind.LEFT)) == 1


async def test_nobody_is_known_to_have_left_a_group_never_listed(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, _welcomes = newcomers
    await make().farewell("g7", int(live.state.clock.now()))
    assert await recorded(redis_client) == []


async def test_a_departure_handled_before_a_join_leaves_the_joiner_to_be_welcomed(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, welcomes = newcomers
    first = arrives(live, "g8", "wm_first", "阿一")
    await make().welcome("g8", first, 1)
    del live.state.groups["g8"].members["bob"]
    at = arrives(live, "g8", "wm_carol", "卡罗")
    await make().farewell("g8", at)  # WeCom's del_member came in second but ran first
    await make().welcome("g8", at, 1)
    assert [(e.kind, e.user) for e in await recorded(redis_client)] == [
        (Kind.JOINED, "wm_first"), (Kind.LEFT, "bob"), (Kind.JOINED, "wm_carol")]
    assert "卡罗" in welcomes.posts[-1].content


async def test_a_departure_the_join_diff_saw_first_is_recorded_once(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, _welcomes = newcomers
    first = arrives(live, "g9", "wm_first", "阿一")
    await make().welcome("g9", first, 1)
    del live.state.groups["g9"].members["bob"]
    at = arrives(live, "g9", "wm_carol", "卡罗")
    await make().welcome("g9", at, 1)
    await make().farewell("g9", at + 1)
    assert [(e.kind, e.user) for e in await recorded(redis_client)] == [
        (Kind.JOINED, "wm_first"), (Kind.JOINED, "wm_carol"), (Kind.LEFT, "bob")]


async def test_a_group_that_wants_no_welcomes_still_counts_its_newcomers(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, welcomes = newcomers
    quiet = Directory(robots={"g10": Robot("g10", "安静群", "k" * 20, False)},
                      staff_chatid="staff", staff_mention=())
    at = arrives(live, "g10", "wm_new", "朵朵")
    await make(quiet).welcome("g10", at, 1)
    assert [(e.kind, e.user) for e in await recorded(redis_client)] == [(Kind.JOINED, "wm_new")]
    assert welcomes.posts == []


async def test_groups_the_bridge_does_not_serve_and_bridges_without_a_brand_record_nothing(
    newcomers: tuple[Make, Welcomes], live: Sim, redis_client: AsyncRedis,
) -> None:
    make, _welcomes = newcomers
    at = arrives(live, "g10", "wm_new", "朵朵")
    nobody = Directory(robots={}, staff_chatid="staff", staff_mention=())
    await make(nobody).welcome("g10", at, 1)
    await make(nobody).farewell("g10", at)
    await make(brand="").welcome("g10", at, 1)
    assert await recorded(redis_client) == []


async def test_a_join_callback_reaches_the_events_through_the_running_bridge(
    make_bridge: BridgeFactory, live: Sim, redis_client: AsyncRedis,
) -> None:
    bridge: Bridge = await make_bridge(
        wecom_api_base=live.url, clock=RealClock(),
        background=Background(turns=True, sender=False, handoff=False))
    live.callbacks._bridge = bridge.url
    at = arrives(live, "g5", "wm_new", "新来的朵朵")
    assert await live.callbacks.members_joined("g5", 1) == 200

    async def joined() -> bool:
        return bool(await recorded(redis_client, Kind.JOINED))

    await wait_until(joined, real_timeout_s=20)
    [event] = await recorded(redis_client, Kind.JOINED)
    assert (event.eid, event.group, event.user) == (
        change_eid(Kind.JOINED, "g5", "wm_new", at), "g5", "wm_new")


# ------------------------------------------------------------------ posts sent
async def sender(make_bridge: BridgeFactory, sim: Sim, vclock: VirtualClock, *,
                 digest: bool) -> Bridge:
    bridge: Bridge = await make_bridge(
        wecom_api_base=sim.url, clock=vclock,
        background=Background(turns=False, sender=True, handoff=False),
        sender_config=SenderConfig(heartbeat_s=0.2, reclaim_idle_ms=500, digest=digest))
    return bridge


async def all_sent(r: AsyncRedis, count: int) -> None:
    async def done() -> bool:
        return await outbox_empty(r) and len(await recorded(r, Kind.POST_SENT)) >= count

    await wait_until(done)


async def test_each_post_sent_is_recorded_by_its_id(
    make_bridge: BridgeFactory, sim: Sim, vclock: VirtualClock, redis_client: AsyncRedis,
) -> None:
    bridge = await sender(make_bridge, sim, vclock, digest=False)
    ids = await enqueue_many(bridge, [Post("g1", "text", f"今日新品 {i}") for i in range(3)])
    await all_sent(redis_client, 3)
    events = await recorded(redis_client)
    assert sorted(e.eid for e in events) == sorted(f"post_sent:{i}" for i in ids)
    assert all(e.kind is Kind.POST_SENT and e.group == "g1" and e.user == "" for e in events)
    assert sorted(str(e.data["post"]) for e in events) == sorted(ids)
    assert {e.data["source"] for e in events} == {""}


async def test_posts_merged_into_digests_are_each_recorded_once(
    make_bridge: BridgeFactory, sim: Sim, vclock: VirtualClock, redis_client: AsyncRedis,
) -> None:
    bridge = await sender(make_bridge, sim, vclock, digest=True)
    ids = await enqueue_many(bridge, [Post("g3", "text", f"门店{i}号上新") for i in range(60)])
    await all_sent(redis_client, 60)
    eids = [e.eid for e in await recorded(redis_client, Kind.POST_SENT)]
    assert sorted(eids) == sorted(f"post_sent:{i}" for i in ids)


async def test_a_dead_lettered_post_is_not_recorded_as_sent(
    make_bridge: BridgeFactory, sim: Sim, vclock: VirtualClock, redis_client: AsyncRedis,
) -> None:
    bridge: Bridge = await make_bridge(
        wecom_api_base=sim.url, clock=vclock, extra_groups={"gone": "revoked-key-0000000000"},
        background=Background(turns=False, sender=True, handoff=False),
        sender_config=SenderConfig(heartbeat_s=0.2))
    await enqueue_many(bridge, [Post("gone", "text", "hello"), Post("g2", "text", "hello")])
    await all_sent(redis_client, 1)
    assert [e.group for e in await recorded(redis_client)] == ["g2"]


async def test_a_leave_callback_reaches_the_events_through_the_running_bridge(
    make_bridge: BridgeFactory, live: Sim, redis_client: AsyncRedis,
) -> None:
    bridge: Bridge = await make_bridge(
        wecom_api_base=live.url, clock=RealClock(),
        background=Background(turns=True, sender=False, handoff=False))
    live.callbacks._bridge = bridge.url
    arrives(live, "g5", "wm_new", "新来的朵朵")
    assert await live.callbacks.members_joined("g5", 1) == 200

    async def kinds(n: int) -> bool:
        return len(await recorded(redis_client)) >= n

    await wait_until(lambda: kinds(1), real_timeout_s=20)
    del live.state.groups["g5"].members["bob"]
    now = int(live.state.clock.now())
    xml = (f"<xml><ToUserName><![CDATA[{live.state.corp_id}]]></ToUserName>"
           "<FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           "<Event><![CDATA[change_external_chat]]></Event>"
           "<ChatId><![CDATA[g5]]></ChatId><ChangeType><![CDATA[update]]></ChangeType>"
           "<UpdateDetail><![CDATA[del_member]]></UpdateDetail><QuitScene>0</QuitScene>"
           "<MemChangeCnt>1</MemChangeCnt></xml>")
    body, params = live.callbacks.app_request(xml)
    assert await live.callbacks.deliver("/wecom/app", body, params, f"left:{now}") == 200
    await wait_until(lambda: kinds(2), real_timeout_s=20)
    assert [(e.kind, e.user) for e in await recorded(redis_client)] == [
        (Kind.JOINED, "wm_new"), (Kind.LEFT, "bob")]


async def test_the_bridge_with_the_events_role_counts_what_it_delivered_for_the_console(
    make_bridge: BridgeFactory, sim: Sim, vclock: VirtualClock, redis_client: AsyncRedis,
) -> None:
    """Posts sent → POST_SENT events → the aggregator role → the day's counters, by group."""
    bridge = await make_bridge(
        wecom_api_base=sim.url, clock=vclock,
        background=Background(turns=False, sender=True, handoff=False, events=True),
        sender_config=SenderConfig(heartbeat_s=0.2, reclaim_idle_ms=500, digest=False))
    await enqueue_many(bridge, [Post("g2", "text", f"公告 {i}") for i in range(3)])
    await wait_until(lambda: outbox_empty(redis_client))
    day = datetime.fromtimestamp(vclock.now(), metrics.TZ).date()

    async def counted() -> bool:
        stats = await metrics.range_stats(redis_client, BRAND, day, day, "g2")
        return stats.total["posts_sent"] == 3

    await wait_until(counted, real_timeout_s=20)
