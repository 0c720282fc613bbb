"""The protocol library against the simulator: welcome templates, 企业群发 and their results
as WeCom documents them — and every bad input answered with WeCom's errcode, never a 5xx."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest

from bot.common.clock import VirtualClock
from bot.wecom.api import WeComApi, WeComApiError
from bot.wecom.customer_api import (
    EMPTY_PARAMETERS,
    INVALID_PARAMETER,
    INVALID_TEMPLATE_ID,
    INVALID_USERID,
    NOT_SENT,
    OTHER_MASS_SEND,
    SENT,
    TEMPLATE_LIMIT,
    CustomerContact,
    Link,
    WelcomeContent,
    monthly_cap,
)
from qunzhu.config import SHANGHAI
from tests.bridge.conftest import Sim
from tests.customer.conftest import EXTRA, STORE, VIP1, VIP2, post, wecom_of

HELLO = WelcomeContent("欢迎 %NICKNAME% 加入 ☕", Link("会员中心", "https://example.com/m", "领券"))


async def errcode_of(call: Any) -> int:
    with pytest.raises(WeComApiError) as caught:
        await call
    return caught.value.errcode


async def raw(sim: Sim, api: WeComApi, path: str, body: Any) -> dict[str, Any]:
    """A call with a valid token but any body (the client would not send these)."""
    token = await api.access_token()
    data = body if isinstance(body, bytes) else None
    async with aiohttp.ClientSession() as s, s.post(
            f"{sim.url}/cgi-bin/externalcontact/{path}", params={"access_token": token},
            json=None if data is not None else body, data=data) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


async def test_a_welcome_template_is_added_read_edited_and_deleted(
    contact: CustomerContact, sim: Sim,
) -> None:
    template_id = await contact.add_welcome_template(HELLO)
    assert template_id.startswith("msg")
    assert await contact.get_welcome_template(template_id) == HELLO

    await contact.edit_welcome_template(template_id, WelcomeContent("新的欢迎语"))
    # edit replaces the kinds it is given and keeps the others (the link stays)
    assert await contact.get_welcome_template(template_id) == WelcomeContent("新的欢迎语",
                                                                             HELLO.link)
    await contact.del_welcome_template(template_id)
    assert wecom_of(sim).templates[sim.state.corp_id] == {}
    for call in (contact.get_welcome_template(template_id),
                 contact.edit_welcome_template(template_id, HELLO),
                 contact.del_welcome_template(template_id)):
        assert await errcode_of(call) == INVALID_TEMPLATE_ID


async def test_welcome_templates_keep_wecoms_limits(contact: CustomerContact, sim: Sim,
                                                    api: WeComApi) -> None:
    assert await errcode_of(contact.add_welcome_template(
        WelcomeContent("字" * 1001))) == INVALID_PARAMETER  # 3003 bytes > 3000
    await contact.add_welcome_template(WelcomeContent("字" * 1000))  # 3000 bytes is fine
    assert await errcode_of(contact.add_welcome_template(
        WelcomeContent("hi", Link("标" * 43, "https://x.cn")))) == INVALID_PARAMETER
    assert (await raw(sim, api, "group_welcome_template/add", {}))["errcode"] == \
        EMPTY_PARAMETERS
    assert (await raw(sim, api, "group_welcome_template/add",
                      {"link": {"title": "no url"}}))["errcode"] == EMPTY_PARAMETERS
    assert (await raw(sim, api, "group_welcome_template/edit",
                      {"text": {"content": "x"}}))["errcode"] == EMPTY_PARAMETERS
    assert (await raw(sim, api, "group_welcome_template/add", b"{not json"))["errcode"] == \
        40035
    for n in range(99):
        await contact.add_welcome_template(WelcomeContent(f"第{n}条"))
    assert await errcode_of(contact.add_welcome_template(HELLO)) == TEMPLATE_LIMIT


async def test_a_call_without_a_valid_token_is_refused(sim: Sim) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            f"{sim.url}/cgi-bin/externalcontact/add_msg_template",
            params={"access_token": "stale"}, json={}) as resp:
        assert (await resp.json())["errcode"] == 42001
    assert wecom_of(sim).calls == []


async def test_a_group_mass_send_waits_for_its_owner_then_reports_each_group(
    contact: CustomerContact, sim: Sim, clock: VirtualClock,
) -> None:
    task = await contact.add_group_msg("zhangdian", [VIP1, VIP2, STORE, "wrNobody"], "双十二预告")
    assert sorted(task.fail_list) == sorted([STORE, "wrNobody"])  # not zhangdian's groups
    first = await contact.send_results(task.msgid, "zhangdian")
    assert [(r.chat_id, r.status) for r in first.results] == [(VIP1, NOT_SENT),
                                                              (VIP2, NOT_SENT)]
    assert (await contact.send_results(task.msgid, "lidian")).results == ()
    assert [i for i in sim.state.feed if i.group in (VIP1, VIP2)] == []  # not yet sent

    clock.advance(600)
    status, answer = await post(sim, "/sim/customer/confirm",
                                {"msgid": task.msgid, "sender": "zhangdian"})
    assert status == 200 and answer["statuses"] == {VIP1: SENT, VIP2: SENT}
    results = [r async for r in contact.all_send_results(task.msgid, "zhangdian")]
    assert {(r.chat_id, r.status, r.send_time) for r in results} == {
        (VIP1, SENT, int(clock.now())), (VIP2, SENT, int(clock.now()))}
    assert [i.content for i in sim.state.feed if i.group == VIP1] == ["双十二预告"]
    tasks = await contact.group_msg_tasks(task.msgid)
    assert [(t.userid, t.status) for t in tasks.tasks] == [("zhangdian", 2)]


async def test_results_come_in_pages_with_next_cursor(contact: CustomerContact) -> None:
    task = await contact.add_group_msg("zhangdian", [VIP1, VIP2, EXTRA], "分页")
    seen, cursor = [], ""
    while True:
        page = await contact.send_results(task.msgid, "zhangdian", cursor=cursor, limit=2)
        seen += [r.chat_id for r in page.results]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted([VIP1, VIP2, EXTRA])
    assert len([r async for r in contact.all_send_results(task.msgid, "zhangdian")]) == 3


async def test_a_group_past_its_monthly_cap_gets_status_3_when_the_owner_sends(
    contact: CustomerContact, sim: Sim, clock: VirtualClock,
) -> None:
    cap = monthly_cap(datetime.fromtimestamp(clock.now(), tz=SHANGHAI))
    assert cap == 30
    assert (await post(sim, "/sim/customer/usage", {"chat_id": VIP1, "count": cap}))[0] == 200
    task = await contact.add_group_msg("zhangdian", [VIP1, VIP2], "本月第 31 条")
    assert task.fail_list == ()  # WeCom takes the task; the cap applies when it is sent
    await post(sim, "/sim/customer/confirm", {"msgid": task.msgid, "sender": "zhangdian"})
    results = {r.chat_id: r.status async for r in contact.all_send_results(task.msgid,
                                                                             "zhangdian")}
    assert results == {VIP1: OTHER_MASS_SEND, VIP2: SENT}


async def test_a_lost_task_can_be_found_among_the_corps_mass_sends(
    contact: CustomerContact, sim: Sim, clock: VirtualClock,
) -> None:
    start = int(clock.now())
    task = await contact.add_group_msg("lidian", [STORE], "找得到我吗")
    page = await contact.group_msgs(start - 60, start + 60)
    assert [(m.msgid, m.text, m.create_type) for m in page.messages] == [
        (task.msgid, "找得到我吗", 0)]
    assert await errcode_of(contact.group_msgs(start, start + 40 * 86400)) == INVALID_PARAMETER
    assert await contact.groups_of(["zhangdian"]) == sorted([VIP1, VIP2, EXTRA])
    owner = await contact.owner_of(STORE)
    assert (owner.owner, owner.owner_name, owner.name) == ("lidian", "李店长",
                                                           "小满咖啡·静安寺店顾客群")


async def test_add_msg_template_refuses_what_wecom_refuses(
    contact: CustomerContact, sim: Sim, api: WeComApi,
) -> None:
    assert await errcode_of(contact.add_group_msg("nobody", [VIP1], "x")) == INVALID_USERID
    assert await errcode_of(contact.add_group_msg("zhangdian", [VIP1], "字" * 1334)) == \
        INVALID_PARAMETER  # 4002 bytes > 4000
    body = {"chat_type": "group", "sender": "zhangdian", "text": {"content": "x"}}
    assert (await raw(sim, api, "add_msg_template",
                      body | {"chat_id_list": [VIP1] * 2001}))["errcode"] == INVALID_PARAMETER
    assert (await raw(sim, api, "add_msg_template", body | {"sender": ""}))["errcode"] == \
        EMPTY_PARAMETERS
    assert (await raw(sim, api, "add_msg_template",
                      {"chat_type": "group", "sender": "zhangdian"}))["errcode"] == \
        EMPTY_PARAMETERS
    assert (await raw(sim, api, "add_msg_template", ["not", "an", "object"]))["errcode"] == \
        40035
    assert (await raw(sim, api, "get_groupmsg_send_result",
                      {"msgid": "msgnope", "userid": "zhangdian"}))["errcode"] == \
        INVALID_PARAMETER
    assert (await raw(sim, api, "get_groupmsg_send_result", {"userid": "x"}))["errcode"] == \
        EMPTY_PARAMETERS
    assert (await raw(sim, api, "groupchat/list", {"limit": 0}))["errcode"] == \
        INVALID_PARAMETER
    assert wecom_of(sim).messages == {}
    with pytest.raises(ValueError):
        await contact.add_group_msg("zhangdian", [], "nobody to send to")


async def test_the_simulators_controls_refuse_bad_input(sim: Sim, contact: CustomerContact
                                                         ) -> None:
    task = await contact.add_group_msg("zhangdian", [VIP1], "x")
    for path, body, status in (
            ("/sim/customer/confirm", {"msgid": task.msgid}, 400),
            ("/sim/customer/confirm", {"msgid": "msgnope", "sender": "zhangdian"}, 404),
            ("/sim/customer/confirm", {"msgid": task.msgid, "sender": "lidian"}, 400),
            ("/sim/customer/confirm", [1, 2], 400),
            ("/sim/customer/usage", {"chat_id": "nope", "count": 1}, 400),
            ("/sim/customer/usage", {"chat_id": VIP1, "count": -1}, 400),
            ("/sim/customer/faults", {"api": "x", "faults": ["boom"]}, 400),
            ("/sim/customer/faults", {"faults": [-1]}, 400)):
        assert (await post(sim, path, body))[0] == status, (path, body)
    assert wecom_of(sim).messages[task.msgid].confirmed_at == 0


async def test_injected_faults_answer_errcodes_or_lose_the_answer(
    contact: CustomerContact, sim: Sim,
) -> None:
    await post(sim, "/sim/customer/faults", {"api": "add_msg_template", "faults": [-1, "lost"]})
    with pytest.raises(WeComApiError) as busy:
        await contact.add_group_msg("zhangdian", [VIP1], "x")
    assert busy.value.errcode == -1 and not busy.value.maybe_applied
    assert wecom_of(sim).messages == {}
    with pytest.raises(WeComApiError) as lost:
        await contact.add_group_msg("zhangdian", [VIP1], "x")
    assert lost.value.maybe_applied  # the task exists, but the caller cannot know
    assert len(wecom_of(sim).messages) == 1
