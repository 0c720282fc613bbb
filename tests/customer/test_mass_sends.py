"""Owner-confirmed 群发 (real Redis, server and cluster; the simulated WeCom; virtual time):
asked for once at its time however many bridges run the loop, the month's cap counted
before WeCom is asked, results followed per group — and never asked twice, whether
WeCom's answer is lost or a bridge dies between the claim and the call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import Background, create_app
from bot.campaigns import customer_api
from bot.campaigns.customer import CLAIM_MS, GIVE_UP_S, CustomerSends, cap_key, send_report
from bot.campaigns.welcome_sync import WelcomeSync
from bot.common import appkeys
from bot.common.clock import VirtualClock
from bot.wecom.customer_api import CustomerContact, MsgTemplate
from qunzhu.redisconn import AsyncRedis, text_of
from tests.bridge.conftest import Sim, directory
from tests.conftest import API_TOKEN, bridge_settings
from tests.customer.conftest import BRAND, EXTRA, STORE, VIP1, VIP2, Holder, post, wecom_of

pytestmark = pytest.mark.redis

PREVIEW = """
mass_sends:
  - id: preview
    name: 双十二预告
    text: 双十二福利预告 🎉
    groups: [wrSandboxVip0001, wrSandboxVip0002]
    send_at: 2026-11-20 18:00
    results_hours: 2
"""
MONTH = "202611"


def runner(redis_client: AsyncRedis, file: Holder, contact: CustomerContact,
           clock: VirtualClock, brand: str = BRAND) -> CustomerSends:
    return CustomerSends(redis_client, brand, file, contact, clock, poll_s=60)


def asks(sim: Sim) -> list[dict[str, Any]]:
    """The add_msg_template bodies WeCom received."""
    return [body for api, body in wecom_of(sim).calls if api == "add_msg_template"]


async def report(redis_client: AsyncRedis, file: Holder, send_id: str = "preview",
                 brand: str = BRAND) -> dict[str, Any]:
    return await send_report(redis_client, brand, file().send(send_id), send_id)


def states(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {g["chat_id"]: (g["state"], g["reason"]) for g in doc["groups"]}


async def month_counts(redis_client: AsyncRedis) -> dict[str, int]:
    raw = await redis_client.hgetall(cap_key(BRAND, MONTH))
    return {text_of(k): int(v) for k, v in raw.items()}


async def confirm(sim: Sim, sender: str) -> None:
    """The owner presses 发送 on every task of theirs."""
    for message in list(wecom_of(sim).messages.values()):
        if message.sender == sender:
            status, _ = await post(sim, "/sim/customer/confirm",
                                   {"msgid": message.msgid, "sender": sender})
            assert status == 200


async def test_a_mass_send_is_asked_for_once_at_its_time_however_many_bridges_run_it(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(PREVIEW)
    bridges = [runner(redis_client, file, contact, clock) for _ in range(2)]
    await asyncio.gather(*(b.tick() for b in bridges))
    assert asks(sim) == [], "17:59: not yet"

    clock.advance(61)
    await asyncio.gather(*(b.tick() for b in bridges))
    await asyncio.gather(*(b.tick() for b in bridges))
    await runner(redis_client, file, contact, clock).tick()  # a restarted bridge
    assert asks(sim) == [{"chat_type": "group", "sender": "zhangdian",
                          "chat_id_list": [VIP1, VIP2], "text": {"content": "双十二福利预告 🎉"}}]
    assert sum(b.tally.asked for b in bridges) == 1
    assert await month_counts(redis_client) == {VIP1: 1, VIP2: 1}
    doc = await report(redis_client, file)
    assert doc["state"] == "running" and doc["counts"]["pending"] == 2
    assert doc["tasks"] == [{"owner": "zhangdian", "owner_name": "张店长", "state": "asked",
                             "msgid": next(iter(wecom_of(sim).messages)), "reason": None,
                             "groups": 2}]
    assert {g["name"] for g in doc["groups"]} == {"小满咖啡·会员福利群①", "小满咖啡·会员福利群②"}


async def test_each_owner_is_asked_once_for_their_own_groups(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(PREVIEW.replace("groups: [wrSandboxVip0001, wrSandboxVip0002]",
                                  "groups: [wrSandboxStore03, wrGone]\n    owners: [zhangdian]"))
    clock.advance(61)
    bridges = [runner(redis_client, file, contact, clock) for _ in range(3)]
    await asyncio.gather(*(b.tick() for b in bridges))
    await asyncio.gather(*(b.tick() for b in bridges))
    assert sorted((b["sender"], tuple(b["chat_id_list"])) for b in asks(sim)) == [
        ("lidian", (STORE,)), ("zhangdian", tuple(sorted([VIP1, VIP2, EXTRA])))]
    assert states(await report(redis_client, file))["wrGone"] == ("failed", "wecom_40050")


async def test_the_months_cap_is_counted_before_wecom_is_asked(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await redis_client.hset(cap_key(BRAND, MONTH), VIP1, 30)  # November: 30 days, all used
    file = Holder(PREVIEW + PREVIEW.replace("mass_sends:\n", "").replace(
        "id: preview", "id: again").replace("18:00", "18:30"))
    loop = runner(redis_client, file, contact, clock)
    clock.advance(61)
    await loop.tick()
    assert [b["chat_id_list"] for b in asks(sim)] == [[VIP2]], "VIP1 never reaches WeCom"
    assert states(await report(redis_client, file))[VIP1] == ("skipped", "monthly_cap")
    assert await month_counts(redis_client) == {VIP1: 30, VIP2: 1}

    await redis_client.hset(cap_key(BRAND, MONTH), VIP2, 29)  # VIP2 has one left
    clock.advance(30 * 60)
    await loop.tick()
    assert [b["chat_id_list"] for b in asks(sim)] == [[VIP2], [VIP2]]
    await redis_client.hset(cap_key(BRAND, MONTH), VIP2, 30)
    doc = await report(redis_client, file, "again")
    assert doc["counts"] | {"groups": 0} == {"pending": 1, "sent": 0, "not_sent": 0,
                                              "failed": 0, "skipped": 1, "groups": 0}


async def test_a_send_whose_groups_are_all_at_their_cap_asks_nobody_and_is_done(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await redis_client.hset(cap_key(BRAND, MONTH), mapping={VIP1: 30, VIP2: 31})
    file = Holder(PREVIEW)
    clock.advance(61)
    await runner(redis_client, file, contact, clock).tick()
    assert asks(sim) == []
    doc = await report(redis_client, file)
    assert doc["state"] == "done" and doc["reasons"] == {"skipped:monthly_cap": 2}


async def test_the_owner_confirms_and_each_groups_outcome_is_polled(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await post(sim, "/sim/customer/usage", {"chat_id": VIP2, "count": 30})  # sent elsewhere
    file = Holder(PREVIEW)
    loop = runner(redis_client, file, contact, clock)
    clock.advance(61)
    await loop.tick()
    clock.advance(60)
    await loop.tick()
    assert (await report(redis_client, file))["counts"]["pending"] == 2  # not confirmed yet

    clock.advance(300)
    await confirm(sim, "zhangdian")
    sent_at = int(clock.now())
    clock.advance(60)
    await loop.tick()
    doc = await report(redis_client, file)
    assert states(doc) == {VIP1: ("sent", "ok"), VIP2: ("failed", "wecom_monthly_cap")}
    assert {g["chat_id"]: g["send_time"] for g in doc["groups"]}[VIP1] == sent_at
    assert doc["state"] == "done" and doc["tasks"][0]["state"] == "done"
    assert [i.content for i in sim.state.feed if i.group == VIP1] == ["双十二福利预告 🎉"]
    polls = wecom_of(sim).count("get_groupmsg_send_result")
    clock.advance(600)
    await loop.tick()
    assert wecom_of(sim).count("get_groupmsg_send_result") == polls, "done: no more polling"


async def test_groups_whose_owner_never_confirms_are_not_sent_after_results_hours(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(PREVIEW)
    loop = runner(redis_client, file, contact, clock)
    clock.advance(61)
    await loop.tick()
    clock.advance(2 * 3600)
    await loop.tick()
    doc = await report(redis_client, file)
    assert states(doc) == {VIP1: ("not_sent", "not_confirmed"),
                           VIP2: ("not_sent", "not_confirmed")}
    assert doc["state"] == "done"


async def test_a_lost_answer_is_never_asked_again_the_task_is_found_and_followed(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await post(sim, "/sim/customer/faults", {"api": "add_msg_template", "faults": ["lost"]})
    file = Holder(PREVIEW)
    loop = runner(redis_client, file, contact, clock)
    clock.advance(61)
    await loop.tick()
    assert (await report(redis_client, file))["tasks"][0]["state"] == "unknown"
    await loop.tick()
    clock.advance(25)
    await loop.tick()
    assert len(asks(sim)) == 1 and loop.tally.adopted == 1
    assert (await report(redis_client, file))["tasks"][0]["msgid"] == next(
        iter(wecom_of(sim).messages))
    await confirm(sim, "zhangdian")
    clock.advance(61)
    await loop.tick()
    assert set(states(await report(redis_client, file)).values()) == {("sent", "ok")}


class Crash(BaseException):
    """The bridge process dies here (nothing after this line runs)."""


class DiesAroundTheCall(CustomerContact):
    """A client in a process that is killed just before, or just after, add_msg_template."""

    def __init__(self, inner: CustomerContact, *, after: bool) -> None:
        self.__dict__.update(inner.__dict__)
        self._after = after

    async def add_group_msg(self, sender: str, chat_ids: list[str], text: str) -> MsgTemplate:
        if not self._after:
            raise Crash
        await super().add_group_msg(sender, chat_ids, text)
        raise Crash


async def test_a_bridge_killed_after_wecom_made_the_task_leaves_it_to_be_found_not_resent(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(PREVIEW)
    clock.advance(61)
    with pytest.raises(Crash):
        await runner(redis_client, file, DiesAroundTheCall(contact, after=True), clock).tick()
    survivor = runner(redis_client, file, contact, clock)
    await survivor.tick()  # a fresh claim: its owner may still be waiting for WeCom
    clock.advance(CLAIM_MS / 1000 + 1)
    await survivor.tick()  # stale: the outcome is unknown
    clock.advance(25)
    await survivor.tick()  # found
    assert len(asks(sim)) == 1 and len(wecom_of(sim).messages) == 1
    await confirm(sim, "zhangdian")
    clock.advance(61)
    await survivor.tick()
    doc = await report(redis_client, file)
    assert set(states(doc).values()) == {("sent", "ok")} and doc["state"] == "done"


async def test_a_bridge_killed_between_its_claim_and_the_call_loses_the_send_never_doubles(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(PREVIEW)
    clock.advance(61)
    with pytest.raises(Crash):
        await runner(redis_client, file, DiesAroundTheCall(contact, after=False), clock).tick()
    survivor = runner(redis_client, file, contact, clock)
    for _ in range(int(GIVE_UP_S / 30) + 4):
        clock.advance(30)
        await survivor.tick()
    assert asks(sim) == []
    doc = await report(redis_client, file)
    assert states(doc) == {VIP1: ("failed", "outcome_unknown"),
                           VIP2: ("failed", "outcome_unknown")}
    assert doc["state"] == "done"
    assert await month_counts(redis_client) == {VIP1: 1, VIP2: 1}, "it might have gone out"


async def test_a_busy_wecom_is_asked_again_and_a_refusal_gives_the_months_count_back(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await post(sim, "/sim/customer/faults", {"api": "add_msg_template", "faults": [-1]})
    file = Holder(PREVIEW)
    loop = runner(redis_client, file, contact, clock)
    clock.advance(61)
    await loop.tick()
    assert asks(sim) == [] and loop.tally.released == 1
    assert await month_counts(redis_client) == {VIP1: 0, VIP2: 0}
    await loop.tick()
    assert len(asks(sim)) == 1 and await month_counts(redis_client) == {VIP1: 1, VIP2: 1}

    await post(sim, "/sim/customer/faults", {"api": "add_msg_template", "faults": [40003]})
    file.set(PREVIEW.replace("id: preview", "id: refused"))
    await loop.tick()
    doc = await report(redis_client, file, "refused")
    assert states(doc) == {VIP1: ("failed", "wecom_40003"), VIP2: ("failed", "wecom_40003")}
    assert await month_counts(redis_client) == {VIP1: 1, VIP2: 1}


async def test_a_send_taken_out_of_the_file_asks_nobody_more_but_follows_what_was_asked(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    await post(sim, "/sim/customer/faults", {"api": "add_msg_template", "faults": [-1]})
    file = Holder(PREVIEW.replace("groups: [wrSandboxVip0001, wrSandboxVip0002]",
                                  "groups: [wrSandboxStore03, wrSandboxVip0001]"))
    loop = runner(redis_client, file, contact, clock)
    clock.advance(61)
    await loop.tick()  # two owners asked at once: whichever WeCom answers first gets the -1
    [asked] = [b["sender"] for b in asks(sim)]
    assert asked in ("lidian", "zhangdian")
    file.set("mass_sends: []\n")
    await loop.tick()
    assert [b["sender"] for b in asks(sim)] == [asked], "the other is not asked any more"
    await confirm(sim, asked)
    clock.advance(61)
    await loop.tick()
    doc = await report(redis_client, file)
    owned = {"lidian": STORE, "zhangdian": VIP1}
    other = next(o for o in owned if o != asked)
    assert states(doc) == {owned[other]: ("skipped", "cancelled"), owned[asked]: ("sent", "ok")}
    assert doc["state"] == "done" and not doc["in_file"]


async def test_a_send_the_bridges_missed_by_more_than_its_grace_is_not_sent_late(
    redis_client: AsyncRedis, sim: Sim, contact: CustomerContact, clock: VirtualClock,
) -> None:
    file = Holder(PREVIEW)
    clock.advance(61 + 60 * 60 + 1)  # grace_minutes: 60
    await runner(redis_client, file, contact, clock).tick()
    assert asks(sim) == [] and wecom_of(sim).count("groupchat/get") == 0
    assert (await report(redis_client, file))["state"] == "late"


@pytest.fixture
async def bridge(redis_url: str, redis_client: AsyncRedis, sim: Sim, clock: VirtualClock
                 ) -> AsyncIterator[tuple[str, Any]]:
    """The real bridge app (bot/app.py wires the customer-groups API); this file instead of
    data/customer_groups.yml."""
    file: customer_api.CustomerGroupsNow = Holder(PREVIEW + """
welcome_templates:
  - id: vip
    text: 欢迎 %NICKNAME%
""")
    app = create_app(bridge_settings(redis_url, wecom_api_base=sim.url), clock=clock,
                     directory=directory(), background=Background(False, False, False))
    app[customer_api.CUSTOMER_GROUPS] = file
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), app
    await server.close()


async def test_get_api_customer_groups_shows_templates_and_each_groups_outcome(
    bridge: tuple[str, Any], redis_client: AsyncRedis, sim: Sim, contact: CustomerContact,
    clock: VirtualClock,
) -> None:
    base, app = bridge
    brand, file = app[appkeys.BRAND_ID], app[customer_api.CUSTOMER_GROUPS]
    await WelcomeSync(redis_client, brand, file, contact, clock).tick()
    clock.advance(61)
    await runner(redis_client, file, contact, clock, brand).tick()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/api/customer-groups", headers=auth) as resp:
            assert resp.status == 200
            doc = await resp.json()
        async with s.get(base + "/api/customer-groups") as resp:
            assert resp.status == 401
        async with s.get(base + "/api/customer-groups?send=nope", headers=auth) as resp:
            assert resp.status == 404 and "nope" in (await resp.json())["error"]
        async with s.get(base + "/api/customer-groups?send=preview", headers=auth) as resp:
            one = await resp.json()
    [template] = doc["welcome_templates"]
    assert template["id"] == "vip" and template["synced"]
    assert template["template_id"] in wecom_of(sim).templates[sim.state.corp_id]
    [send] = doc["mass_sends"]
    assert (send["id"], send["name"], send["state"]) == ("preview", "双十二预告", "running")
    assert send["counts"] == {"pending": 2, "sent": 0, "not_sent": 0, "failed": 0,
                              "skipped": 0, "groups": 2}
    assert {(g["name"], g["owner_name"], g["state"]) for g in send["groups"]} == {
        ("小满咖啡·会员福利群①", "张店长", "pending"),
        ("小满咖啡·会员福利群②", "张店长", "pending")}
    assert doc["monthly_cap"] == {"month": "2026-11", "per_group": 30}
    assert one["mass_sends"] == doc["mass_sends"] and "welcome_templates" not in one
    json.dumps(doc, ensure_ascii=False)  # plain JSON all the way
