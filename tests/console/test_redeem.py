"""核销: a code is redeemed once, at a known store, and refused with a reason otherwise.

Coupons are issued by the real game store (the claim saga), redeemed through the console's
API and the clerk's form, and the member's wallet stops listing them.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from actions.codes import new_code
from actions.store import GameStore, Turn
from console import keys
from console.roles import Role
from qunzhu.config import load_brand
from qunzhu.events import Event, Kind, stream_keys
from qunzhu.redisconn import AsyncRedis
from tests.console.conftest import BRAND, Login, csrf_of
from tests.test_store_redis import NOW, campaign, coupon

pytestmark = pytest.mark.redis

STORE = load_brand().stores[0]


async def issue(r: AsyncRedis, user: str = "xiaoming", group: str = "g1", *,
                expires_at: int = NOW + 999) -> str:
    """A coupon claimed by a member in a group, through the game's own saga."""
    code = new_code()
    result = await GameStore(r, BRAND).claim_coupon(
        Turn(user=user, msgid=f"m-{code}", now=NOW, group=group), campaign(stock=50, limit=5),
        replace(coupon(code, "满30减5券"), expires_at=expires_at, source="campaign:c1"))
    assert result.status == "issued"
    return code


async def token_client(login: Login, role: Role = Role.VIEWER) -> tuple[TestClient, dict[str, str]]:
    """A POS: a token of a clerk's account, no cookie needed afterwards."""
    clerk = await login(role)
    page = await clerk.post("/me/tokens", data={"_csrf": await csrf_of(clerk, "/me")})
    token = (await page.text()).split('id="new-token">')[1].split("<")[0]
    return clerk, {"Authorization": f"Bearer {token}"}


async def test_a_code_is_redeemed_once_and_a_retry_with_its_key_gets_the_same_answer(
    login: Login, redis_client: AsyncRedis,
) -> None:
    code = await issue(redis_client)
    pos, auth = await token_client(login)
    first = await pos.post(f"/api/coupons/{code.lower()}/redeem", json={"store": STORE.id},
                           headers={**auth, "Idempotency-Key": "till-7-0001"})
    body = await first.json()
    assert first.status == 200, body
    assert body["status"] == "redeemed" and body["coupon"] == "满30减5券"
    assert body["store_name"] == STORE.name and body["again"] is False
    assert body["member"] and body["member"] != "xiaoming"  # a name (masked), never the id
    retry = await pos.post(f"/api/coupons/{code}/redeem", json={"store": STORE.id},
                           headers={**auth, "Idempotency-Key": "till-7-0001"})
    assert retry.status == 200 and (await retry.json())["again"] is True
    other = await pos.post(f"/api/coupons/{code}/redeem", json={"store": STORE.id},
                           headers=auth)
    refused = await other.json()
    assert other.status == 409 and refused["status"] == "used"
    assert STORE.name in refused["error"] and "核销过了" in refused["error"]


async def test_two_tills_at_once_redeem_a_code_exactly_once(login: Login,
                                                           redis_client: AsyncRedis) -> None:
    code = await issue(redis_client)
    pos, auth = await token_client(login)
    answers = await asyncio.gather(*(
        pos.post(f"/api/coupons/{code}/redeem", json={"store": STORE.id}, headers=auth)
        for _ in range(8)))
    assert sorted(a.status for a in answers) == [200] + [409] * 7


async def test_expired_foreign_malformed_codes_and_unknown_stores_are_refused_with_reasons(
    login: Login, redis_client: AsyncRedis,
) -> None:
    pos, auth = await token_client(login)
    expired = await issue(redis_client, expires_at=1_700_000_000)
    cases = [
        (expired, {"store": STORE.id}, 409, "已过期"),
        ("QZZZZZZZZZ", {"store": STORE.id}, 404, "不是本品牌"),
        ("no", {"store": STORE.id}, 400, "格式不对"),
        (await issue(redis_client), {"store": "nowhere"}, 400, "门店"),
    ]
    for code, body, status, reason in cases:
        response = await pos.post(f"/api/coupons/{code}/redeem", json=body, headers=auth)
        assert response.status == status, (code, await response.text())
        assert reason in (await response.json())["error"]
    bad = await pos.post(f"/api/coupons/{expired}/redeem", data=b"{nope", headers=auth)
    assert bad.status == 400 and "JSON" in (await bad.json())["error"]


async def test_a_redemption_feeds_the_funnel_and_the_wallet_stops_listing_it(
    login: Login, redis_client: AsyncRedis,
) -> None:
    kept, used = await issue(redis_client), await issue(redis_client)
    pos, auth = await token_client(login)
    assert (await pos.post(f"/api/coupons/{used}/redeem", json={"store": STORE.id},
                           headers=auth)).status == 200
    assert set(await GameStore(redis_client, BRAND).redeemed([kept, used])) == {used}
    redeemed = [Event.from_fields(f) for key in stream_keys(BRAND)
                for _id, f in await redis_client.xrange(key)]
    funnel = [e for e in redeemed if e.kind is Kind.REDEEMED]
    assert [(e.eid, e.group, e.user, e.data["campaign"]) for e in funnel] == [
        (f"redeemed:{used}", "g1", "xiaoming", "c1")]


async def test_the_clerks_form_redeems_and_says_so_in_chinese(login: Login,
                                                            redis_client: AsyncRedis) -> None:
    code = await issue(redis_client)
    clerk = await login(Role.VIEWER)
    form = await (await clerk.get("/redeem")).text()
    assert STORE.name in form and "核销" in form
    token = await csrf_of(clerk, "/redeem")
    done = await clerk.post("/redeem", data={"code": code, "store": STORE.id, "_csrf": token,
                                             "request_id": "r1"})
    assert done.status == 200 and "核销成功" in await done.text()
    again = await clerk.post("/redeem", data={"code": code, "store": STORE.id, "_csrf": token,
                                              "request_id": "r2"})
    assert again.status == 409 and "核销过了" in await again.text()
    audit = await clerk.app[keys.AUDIT].latest()  # type: ignore[index]
    assert [(e.action, e.target) for e in audit if e.action == "核销"] == [("核销", code)]
