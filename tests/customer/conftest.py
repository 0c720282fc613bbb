"""Customer groups: the simulated WeCom with the sandbox's customer groups, a client on it,
and the operator file written as operators write it, on a virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.common.clock import VirtualClock
from bot.simulator.customer import CUSTOMER, CustomerSim, add_sandbox_customer_groups
from bot.simulator.state import SimMember
from bot.wecom.api import WeComApi
from bot.wecom.customer_api import CustomerContact
from qunzhu.config import SHANGHAI
from qunzhu.customergroups import CustomerGroupsFile, load_customer_groups
from tests.bridge.conftest import CORP_ID, CORP_SECRET, Sim, start_sim

BRAND = "testbrand"
START = datetime(2026, 11, 20, 17, 59, tzinfo=SHANGHAI)  # November: 30 days, so 30 群发
VIP1, VIP2, STORE = "wrSandboxVip0001", "wrSandboxVip0002", "wrSandboxStore03"
EXTRA = "wrTestZhang0004"  # one more of 张店长's groups, added by the fixture


@pytest.fixture
def clock() -> VirtualClock:
    """Virtual time shared by the simulator and the bridge's loops."""
    return VirtualClock(START.timestamp())


@pytest.fixture
async def sim(clock: VirtualClock) -> AsyncIterator[Sim]:
    """The simulator with the sandbox's customer groups (and one more of zhangdian's)."""
    s = await start_sim(clock)
    add_sandbox_customer_groups(s.state, "小满咖啡")
    extra = s.state.add_group(EXTRA, "小满咖啡·测试群④", "")
    extra.owner = "zhangdian"
    extra.members["zhangdian"] = SimMember("zhangdian", "张店长", 0, type=1)
    yield s
    await s.callbacks.close()
    await s.server.close()


def wecom_of(sim: Sim) -> CustomerSim:
    """The simulator's customer-contact state."""
    return sim.server.app[CUSTOMER]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for the clients a test makes."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(sim: Sim, session: aiohttp.ClientSession) -> WeComApi:
    """The bridge's WeCom client, pointed at the simulator."""
    return WeComApi(session, base_url=sim.url, corp_id=CORP_ID, corp_secret=CORP_SECRET)


@pytest.fixture
def contact(api: WeComApi) -> CustomerContact:
    """The customer-contact calls on that client."""
    return CustomerContact(api)


def customer_file(text: str, tmp: Path | None = None) -> CustomerGroupsFile:
    """Parse operator YAML exactly as the bridge does."""
    return load_customer_groups((tmp or Path("customer_groups.yml")), text)


class Holder:
    """A file the test changes between ticks (the live file's value)."""

    def __init__(self, text: str) -> None:
        self.value = customer_file(text)

    def set(self, text: str) -> None:
        """The operator saved a new version."""
        self.value = customer_file(text)

    def __call__(self) -> CustomerGroupsFile:
        """What the loops read."""
        return self.value


async def post(sim: Sim, path: str, body: Any) -> tuple[int, Any]:
    """A control or API call on the simulator."""
    async with aiohttp.ClientSession() as s, s.post(sim.url + path, json=body) as resp:
        return resp.status, await resp.json(content_type=None)
