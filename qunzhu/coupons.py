"""Coupon codes after they are issued: who holds one, where it was claimed, and its redemption.

A code's own slot (`qz:{<brand>:k:<CODE>}:code`, a hash) is the authority on it: the actions
register it there when they issue it (owner, group), and a store clerk or a POS redeems it
there (核销) through the console. Redemption is one Lua script on that slot: a code is
redeemed at most once, whatever the number of tills or retries; a retry with the same
idempotency key gets the first answer back. The coupon's terms (name, expiry, source) are in
its holder's wallet, on the member's slot, written when it was issued and never changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from qunzhu.redisconn import AsyncRedis, script_arg, text_of

CODE = re.compile(r"^[A-Z0-9]{6,20}$")

Status = Literal["redeemed", "used", "expired", "unknown", "malformed"]


def member_prefix(brand: str, user: str) -> str:
    """The hash tag of everything one member owns (their slot)."""
    return f"qz:{{{brand}:m:{user}}}"


def wallet_key(brand: str, user: str) -> str:
    """Hash code → coupon JSON, as issued."""
    return f"{member_prefix(brand, user)}:wallet"


def campaign_prefix(brand: str, campaign: str) -> str:
    """The hash tag of one coupon campaign's stock and claims (its slot)."""
    return f"qz:{{{brand}:c:{campaign}}}"


def issued_key(brand: str, campaign: str) -> str:
    """Counter: coupons of this campaign issued (a campaign post reads what is left)."""
    return f"{campaign_prefix(brand, campaign)}:issued"


def code_key(brand: str, code: str) -> str:
    """Hash: owner, group (where it was claimed), and its redemption once redeemed."""
    return f"qz:{{{brand}:k:{code}}}:code"


def normalise(code: str) -> str:
    """A code as printed or typed: case and spaces do not matter."""
    return re.sub(r"[\s-]", "", code).upper()


# KEYS[1] the code's hash
# ARGV[1] {at, store, clerk, key (idempotency, may be ""), expires_at}
# {status: redeemed|used|expired|unknown, owner, group, at, store, again}
REDEEM = """
local a = cjson.decode(ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'owner', 'group', 'redeemed_at', 'redeemed_store',
                     'redeem_key', 'redeemed_by')
if not c[1] then return cjson.encode({status = 'unknown'}) end
if c[3] then
  -- a retry is the same request: same key, from the same store and clerk (till numbers
  -- repeat across stores; another store's key must not read as "done")
  if a.key ~= '' and c[5] == a.key and c[4] == a.store and c[6] == a.clerk then
    return cjson.encode({status = 'redeemed', again = true, owner = c[1], group = c[2] or '',
                         at = tonumber(c[3]), store = c[4]})
  end
  return cjson.encode({status = 'used', owner = c[1], group = c[2] or '',
                       at = tonumber(c[3]), store = c[4]})
end
if a.expires_at < a.at then
  return cjson.encode({status = 'expired', owner = c[1], group = c[2] or ''})
end
redis.call('HSET', KEYS[1], 'redeemed_at', a.at, 'redeemed_store', a.store,
           'redeem_key', a.key, 'redeemed_by', a.clerk)
return cjson.encode({status = 'redeemed', again = false, owner = c[1], group = c[2] or '',
                     at = a.at, store = a.store})
"""


@dataclass(frozen=True)
class Redemption:
    """What happened to a redemption request, and what the clerk needs to see."""

    status: Status
    code: str
    owner: str = ""
    group: str = ""
    name: str = ""  # the coupon's name, e.g. 满30减5券
    condition: str = ""
    expires: str = ""  # YYYY-MM-DD
    source: str = ""  # campaign:<id>, reward:<id> or draw:<prize>
    at: int = 0  # when it was redeemed
    store: str = ""
    again: bool = False  # this request was answered before (same idempotency key)

    @property
    def campaign(self) -> str:
        """The campaign (or reward, or prize) the coupon came from, for the funnel."""
        return self.source.split(":", 1)[1] if ":" in self.source else self.source


async def coupon_terms(r: AsyncRedis, brand: str, owner: str, code: str) -> dict[str, Any]:
    """The coupon as its holder's wallet keeps it; {} when it is not (yet) there."""
    raw = await r.hget(wallet_key(brand, owner), code)
    if raw is None:
        return {}
    doc = json.loads(text_of(raw))
    return doc if isinstance(doc, dict) else {}


async def redeem(r: AsyncRedis, brand: str, code: str, *, store: str, clerk: str, key: str,
                 now: int) -> Redemption:
    """Redeem a code at a store, once; every refusal says why (used, expired, unknown)."""
    code = normalise(code)
    if not CODE.match(code):
        return Redemption("malformed", code[:40])
    owner = await r.hget(code_key(brand, code), "owner")
    if owner is None:
        return Redemption("unknown", code)
    terms = await coupon_terms(r, brand, text_of(owner), code)
    if not terms:  # registered by a claim still under way, never issued: not a coupon yet
        return Redemption("unknown", code)
    reply = await r.eval(REDEEM, 1, code_key(brand, code), script_arg({
        "at": now, "store": store, "clerk": clerk, "key": key,
        "expires_at": int(terms.get("expires_at", 0))}))
    doc = json.loads(text_of(reply))
    return Redemption(
        status=doc["status"], code=code, owner=str(doc.get("owner", "")),
        group=str(doc.get("group", "")), name=str(terms.get("name", "")),
        condition=str(terms.get("condition", "")), expires=str(terms.get("expires", "")),
        source=str(terms.get("source", "")), at=int(doc.get("at") or 0),
        store=str(doc.get("store") or ""), again=bool(doc.get("again")))


async def redeemed(r: AsyncRedis, brand: str, codes: list[str]) -> dict[str, int]:
    """Which of these codes were redeemed, and when (for the wallet to leave them out)."""
    if not codes:
        return {}
    out: dict[str, int] = {}
    for code in codes:  # a wallet holds a handful; each code is its own slot
        at = await r.hget(code_key(brand, code), "redeemed_at")
        if at is not None:
            out[code] = int(float(text_of(at)))
    return out


async def register(r: AsyncRedis, brand: str, code: str, owner: str, group: str) -> bool:
    """Reserve a code for a member (and note the group it was claimed in); False when it was
    already issued to anyone."""
    if not await r.hsetnx(code_key(brand, code), "owner", owner):
        return False
    if group:
        await r.hset(code_key(brand, code), "group", group)
    return True
