"""The bridge names members from WeCom's APIs in the background, never on a member's turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.common.clock import RealClock
from bot.common.names import NameResolver
from bot.simulator.state import SimMember
from bot.wecom.api import WeComApi
from qunzhu.names import NameBook, masked
from qunzhu.redisconn import AsyncRedis
from tests.bridge.conftest import CORP_ID, CORP_SECRET, Sim, directory, start_sim

pytestmark = pytest.mark.redis


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    s = await start_sim(RealClock())
    s.state.groups["g1"].members["alice"].group_nickname = "爱丽丝"
    s.state.groups["staff"].members["carol"] = SimMember("carol", "王卡罗", 0, type=1)
    s.state.groups["g2"].members["wm_dan123"] = SimMember("wm_dan123", "老丹", 0, type=2)
    yield s
    await s.callbacks.close()
    await s.server.close()


@pytest.fixture
async def resolver(sim: Sim, redis_client: AsyncRedis) -> AsyncIterator[NameResolver]:
    async with aiohttp.ClientSession() as session:
        api = WeComApi(session, base_url=sim.url, corp_id=CORP_ID, corp_secret=CORP_SECRET)
        yield NameResolver(NameBook(redis_client, "xiaoman"), api, directory)


async def test_group_lists_give_nicknames_and_the_address_book_the_rest(
    resolver: NameResolver, sim: Sim,
) -> None:
    book = resolver.book
    await resolver.resolve("g1", "alice")
    await resolver.resolve("g1", "carol")  # not on g1's list: an employee → user/get
    await resolver.resolve("g3", "wm_dan123")  # not on g3's list: external → externalcontact/get
    await resolver.resolve("g1", "ghost")  # nobody knows them
    assert await book.members("g1", ["alice", "bob", "carol", "ghost"]) == {
        "alice": "爱丽丝", "bob": "Bob", "carol": "王卡罗", "ghost": masked("ghost")}
    assert await book.member("g3", "wm_dan123") == "老丹"
    assert ("user/get", "carol") in sim.state.directory_lookups
    assert ("externalcontact/get", "wm_dan123") in sim.state.directory_lookups
    assert await book.group("g1") == "测试群g1"  # data/groups.yml's name wins


async def test_fresh_entries_are_not_fetched_again(resolver: NameResolver, sim: Sim) -> None:
    await resolver.resolve("g1", "carol")
    asked = len(sim.state.directory_lookups)
    lists = sim.state.errors.copy()
    for _ in range(3):
        await resolver.resolve("g1", "carol")
        await resolver.resolve("g1", "alice")
    assert len(sim.state.directory_lookups) == asked and sim.state.errors == lists


async def test_a_turn_only_notes_the_member_and_the_loop_names_them(
    resolver: NameResolver, sim: Sim, redis_client: AsyncRedis,
) -> None:
    await resolver.note("g2", "wm_dan123")
    await resolver.note("g2", "wm_dan123")  # noted recently: no second queue write
    assert sim.state.directory_lookups == []  # nothing asked of WeCom on the turn path
    assert await redis_client.scard(resolver.book.keys.wanted) == 1
    task = asyncio.create_task(resolver.run())
    try:
        for _ in range(500):  # the start sweep lists g1…g5 in turn; g2's list already names 老丹
            if (await resolver.book.member("g2", "wm_dan123") == "老丹"
                    and await resolver.book.member("g5", "bob") == "Bob"):
                break
            await asyncio.sleep(0.02)
        assert await resolver.book.member("g2", "wm_dan123") == "老丹"
        assert await resolver.book.member("g5", "bob") == "Bob"  # configured groups prewarmed
    finally:
        resolver.stop()
        await task


async def test_an_employee_whose_id_looks_external_is_still_named(
    resolver: NameResolver, sim: Sim,
) -> None:
    sim.state.groups["staff"].members["woody"] = SimMember("woody", "伍迪", 0, type=1)
    await resolver.resolve("g1", "woody")  # externalcontact/get refuses; user/get answers
    assert await resolver.book.member("g1", "woody") == "伍迪"


async def test_a_newcomer_missing_from_an_older_list_gets_the_group_listed_again(
    resolver: NameResolver, sim: Sim, redis_client: AsyncRedis,
) -> None:
    await resolver.resolve("g1", "alice")
    sim.state.groups["g1"].members["wm_new1"] = SimMember("wm_new1", "新朋友", 0, type=2)
    await redis_client.delete(resolver.book.keys.listed("g1"))  # five minutes later
    await resolver.resolve("g1", "wm_new1")
    assert await resolver.book.member("g1", "wm_new1") == "新朋友"
    assert ("externalcontact/get", "wm_new1") not in sim.state.directory_lookups  # the list had it
