"""Welcome templates follow the file (real Redis, server and cluster; the simulated WeCom):
added, edited, deleted once, however often or by how many processes the sync runs; a
failing call is retried later; a template qunzhu did not create is never touched."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.campaigns.welcome_sync import WelcomeSync, synced_templates, templates_key
from bot.common.clock import VirtualClock
from bot.wecom.customer_api import CustomerContact, Link, WelcomeContent
from qunzhu.redisconn import AsyncRedis, text_of
from tests.bridge.conftest import Sim
from tests.customer.conftest import BRAND, Holder, post, wecom_of

pytestmark = pytest.mark.redis

TWO = """
welcome_templates:
  - id: vip
    text: "欢迎 %NICKNAME% 加入会员群"
    link: {title: 会员中心, url: "https://example.com/m"}
  - id: store
    text: 门店群欢迎你
"""


def library(sim: Sim) -> dict[str, dict[str, object]]:
    """What WeCom's library holds now."""
    return wecom_of(sim).templates.get(sim.state.corp_id, {})


async def entries(redis_client: AsyncRedis) -> dict[str, dict[str, object]]:
    raw = await redis_client.hgetall(templates_key(BRAND))
    return {text_of(k): json.loads(text_of(v)) for k, v in raw.items()}


def sync(redis_client: AsyncRedis, file: Holder, contact: CustomerContact,
         clock: VirtualClock) -> WelcomeSync:
    return WelcomeSync(redis_client, BRAND, file, contact, clock)


async def test_templates_are_added_once_edited_in_place_and_deleted_when_removed(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(TWO)
    loop = sync(redis_client, file, contact, clock)
    await loop.tick()
    await loop.tick()  # in step already: nothing to do
    await sync(redis_client, file, contact, clock).tick()  # a restarted process: the same
    assert wecom_of(sim).count("group_welcome_template/add") == 2
    ids = {k: str(v["template_id"]) for k, v in (await entries(redis_client)).items()}
    assert library(sim)[ids["vip"]] == {
        "text": {"content": "欢迎 %NICKNAME% 加入会员群"},
        "link": {"title": "会员中心", "url": "https://example.com/m"}}
    assert library(sim)[ids["store"]] == {"text": {"content": "门店群欢迎你"}}

    file.set(TWO.replace("门店群欢迎你", "门店群欢迎你 😊"))
    await loop.tick()
    await loop.tick()
    assert wecom_of(sim).count("group_welcome_template/edit") == 1
    assert library(sim)[ids["store"]] == {"text": {"content": "门店群欢迎你 😊"}}
    assert set(library(sim)) == set(ids.values())  # the same template, edited

    file.set(TWO.split("  - id: store")[0])
    await loop.tick()
    await loop.tick()
    assert set(library(sim)) == {ids["vip"]}
    assert wecom_of(sim).count("group_welcome_template/del") == 1
    assert set(await entries(redis_client)) == {"vip"}
    assert loop.tally.added == 2 and loop.tally.edited == 1 and loop.tally.deleted == 1


async def test_two_processes_syncing_at_once_add_each_template_once(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(TWO)
    loops = [sync(redis_client, file, contact, clock) for _ in range(2)]
    await asyncio.gather(*(loop.tick() for loop in loops))
    await asyncio.gather(*(loop.tick() for loop in loops))
    assert wecom_of(sim).count("group_welcome_template/add") == 2
    assert len(library(sim)) == 2


async def test_a_template_somebody_made_in_the_admin_console_is_never_deleted(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    theirs = await contact.add_welcome_template(WelcomeContent("店长自己加的欢迎语"))
    file = Holder(TWO)
    loop = sync(redis_client, file, contact, clock)
    await loop.tick()
    file.set("welcome_templates: []\n")
    await loop.tick()
    assert set(library(sim)) == {theirs}
    assert await entries(redis_client) == {}


async def test_a_failing_call_is_retried_later_and_then_succeeds(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await post(sim, "/sim/customer/faults",
               {"api": "group_welcome_template/add", "faults": [-1, 45009]})
    file = Holder(TWO)
    loop = sync(redis_client, file, contact, clock)
    await loop.tick()  # in id order: store gets -1, vip 45009
    assert library(sim) == {}
    state = await entries(redis_client)
    assert {k: (v["error"], v["fails"]) for k, v in state.items()} == {
        "store": (-1, 1), "vip": (45009, 1)}
    report = await synced_templates(redis_client, BRAND, file())
    assert [(t["id"], t["synced"], t["error"]) for t in report] == [
        ("store", False, -1), ("vip", False, 45009)]

    await loop.tick()  # too soon: waits out its pause, WeCom is not asked
    assert wecom_of(sim).count("group_welcome_template/add") == 0
    clock.advance(31)
    await loop.tick()
    assert len(library(sim)) == 2
    report = await synced_templates(redis_client, BRAND, file())
    assert all(t["synced"] and t["error"] is None and t["template_id"] for t in report)


async def test_a_template_removed_in_wecom_is_added_again_and_a_removed_link_replaces_it(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(TWO)
    loop = sync(redis_client, file, contact, clock)
    await loop.tick()
    first = {k: str(v["template_id"]) for k, v in (await entries(redis_client)).items()}
    await contact.del_welcome_template(first["store"])  # an admin deleted it by hand
    file.set(TWO.replace("门店群欢迎你", "门店群欢迎您"))
    await loop.tick()
    now = {k: str(v["template_id"]) for k, v in (await entries(redis_client)).items()}
    assert now["store"] != first["store"] and now["store"] in library(sim)

    # WeCom's edit keeps the kinds it is not given: a link removed means a new template
    file.set(TWO.replace('    link: {title: 会员中心, url: "https://example.com/m"}\n', "")
             .replace("门店群欢迎你", "门店群欢迎您"))
    await loop.tick()
    after = {k: str(v["template_id"]) for k, v in (await entries(redis_client)).items()}
    assert after["vip"] != first["vip"] and first["vip"] not in library(sim)
    assert await contact.get_welcome_template(after["vip"]) == WelcomeContent(
        "欢迎 %NICKNAME% 加入会员群")


async def test_a_lost_answer_is_counted_as_a_possible_stray_copy(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await post(sim, "/sim/customer/faults",
               {"api": "group_welcome_template/add", "faults": ["lost"]})
    file = Holder(TWO.split("  - id: store")[0])
    loop = sync(redis_client, file, contact, clock)
    await loop.tick()
    clock.advance(31)
    await loop.tick()
    report = await synced_templates(redis_client, BRAND, file())
    assert [(t["id"], t["synced"], t["orphans"]) for t in report] == [("vip", True, 1)]
    assert len(library(sim)) == 2  # WeCom has no list API: the stray copy is reported
    assert WelcomeContent("欢迎 %NICKNAME% 加入会员群", Link("会员中心", "https://example.com/m")
                          ) == await contact.get_welcome_template(
        str((await entries(redis_client))["vip"]["template_id"]))
