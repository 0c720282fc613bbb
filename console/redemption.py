"""Coupon redemption (核销) as the console does it: a known store, once per code, counted.

Shared by the clerk's form and the POS's API: the same checks, the same answer, the same
audit entry and analytics event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qunzhu import coupons, events, metrics
from qunzhu.config import Store, load_brand
from qunzhu.coupons import Redemption
from qunzhu.events import Event, Kind
from qunzhu.names import NameBook
from qunzhu.redisconn import AsyncRedis
from qunzhu.yamlconfig import ConfigError

STATUS_HTTP = {"redeemed": 200, "used": 409, "expired": 409, "unknown": 404, "malformed": 400}


def stores() -> list[Store]:
    """The brand's stores as data/brand.yml lists them now ([] when it cannot be read)."""
    try:
        return list(load_brand().stores)
    except (ConfigError, OSError):
        return []


@dataclass(frozen=True)
class Answer:
    """What the clerk or the POS is told."""

    http: int
    ok: bool
    message: str
    body: dict[str, Any]


def _day_time(at: int) -> str:
    return datetime.fromtimestamp(at, metrics.TZ).strftime("%Y-%m-%d %H:%M")


async def redeem(r: AsyncRedis, brand: str, code: str, store_id: str, *, clerk: str,
                 key: str) -> tuple[Answer, Redemption | None]:
    """Check the store, redeem the code once, and say what happened in the clerk's words."""
    known = {s.id: s for s in stores()}
    if store_id not in known:
        message = "请选择核销的门店（门店编号不在 data/brand.yml 里）"
        return Answer(400, False, message, {"status": "bad_store", "error": message}), None
    done = await coupons.redeem(r, brand, code, store=store_id, clerk=clerk, key=key,
                                now=int(time.time()))
    member = await NameBook(r, brand).member(done.group, done.owner) if done.owner else ""
    store_name = known[done.store].name if done.store in known else done.store
    body: dict[str, Any] = {
        "status": done.status, "code": done.code, "coupon": done.name,
        "condition": done.condition, "expires": done.expires, "member": member,
        "store": done.store, "store_name": store_name, "redeemed_at": done.at or None,
        "again": done.again}
    message = {
        "redeemed": f"核销成功：{done.name}（{member}）",
        "used": f"这张券已经在 {store_name} 于 {_day_time(done.at)} 核销过了",
        "expired": f"这张券已过期（有效期到 {done.expires}），不能核销",
        "unknown": "没有这张券：券码不是本品牌发出的，请核对后再试",
        "malformed": "券码格式不对：应为 6–20 位字母或数字",
    }[done.status]
    if done.status != "redeemed":
        body["error"] = message
    if done.status == "redeemed" and not done.again:
        await events.emit(r, brand, Event(
            Kind.REDEEMED, f"redeemed:{done.code}", done.group, done.owner, time.time(),
            {"code": done.code, "campaign": done.campaign, "store": done.store}))
    return Answer(STATUS_HTTP[done.status], done.status == "redeemed", message, body), done
