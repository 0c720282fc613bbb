"""Game state in Redis: the only module that reads or writes it.

Every read-modify-write is a Lua script on one Redis Cluster slot (`actions.scripts`), so
concurrent messages can never double-pay, oversell or double-check-in. State is spread by
what changes together (`actions.gamekeys`): a member's own slot, a group's, a campaign's, a
code's, and the brand-wide stock of rewards and prizes. An operation that needs two of them
is a short saga of such steps, each idempotent per (member, message id), ordered so that a
crash between two steps is finished by the message's next delivery (WeCom retries, the
bridge replays a failed turn) and never pays twice:

- check-in: member (streak, points) → group leaderboard, counted once per message;
- claim: code → member marks the claim under way (campaign, code) → campaign stock →
  wallet and result;
- redeem: code → member pays → reward stock taken → coupon, or the points back;
- draw: code → member pays (draws today, cost) → prize picked → member credited.

The member's slot always holds the first step and the result, so a later delivery finishes
what the first one began (same campaign, same code), and replays its answer.

A coupon code is registered before the step that could issue it, so a taken code is refused
before anything is written; a registered code that ends up unused is removed again.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TypeVar

from actions import scripts
from actions.gamekeys import GameKeys
from actions.results import (
    CODE_TAKEN,
    CheckinResult,
    ClaimResult,
    Coupon,
    DrawResult,
    Pick,
    RedeemResult,
    UnderWay,
    parse,
)
from qunzhu import coupons
from qunzhu.config import CheckinRules, CouponCampaign, LuckyDraw, Reward
from qunzhu.events import Event, emit
from qunzhu.redisconn import AsyncRedis, async_client, script_arg, text_of

log = logging.getLogger(__name__)
R = TypeVar("R")

IDEMPOTENCY_TTL_S = 7 * 24 * 3600
DRAW_COUNTER_TTL_S = 2 * 24 * 3600
MEMBER_LEDGER_MAXLEN = 10_000  # years of daily play per member
DRAWLOG_MAXLEN = 1_000_000


@dataclass(frozen=True)
class Turn:
    """Who plays, from which message, in which group, when: what every step is keyed on."""

    user: str
    msgid: str
    now: int
    group: str = ""


@dataclass(frozen=True)
class MemberStats:
    """What a member sees for `my_points`."""

    points: int
    streak: int
    checkins: int
    best_streak: int
    last_day: str | None


@dataclass(frozen=True)
class Standing:
    """One row of a group leaderboard."""

    user: str
    score: int
    rank: int


def _coupon_text(coupon: Coupon) -> str:
    return script_arg(asdict(coupon))


class GameStore:
    """Typed access to one brand's game state; one instance per event loop."""

    def __init__(self, client: AsyncRedis, brand: str) -> None:
        self._r = client
        self.keys = GameKeys(brand)
        self._checkin = client.register_script(scripts.CHECKIN)
        self._count_checkin = client.register_script(scripts.COUNT_CHECKIN)
        self._begin_claim = client.register_script(scripts.BEGIN_CLAIM)
        self._reserve_claim = client.register_script(scripts.RESERVE_CLAIM)
        self._finish_claim = client.register_script(scripts.FINISH_CLAIM)
        self._pay_redeem = client.register_script(scripts.PAY_REDEEM)
        self._hold_reward = client.register_script(scripts.HOLD_REWARD)
        self._settle_redeem = client.register_script(scripts.SETTLE_REDEEM)
        self._pay_draw = client.register_script(scripts.PAY_DRAW)
        self._pick_prize = client.register_script(scripts.PICK_PRIZE)
        self._settle_draw = client.register_script(scripts.SETTLE_DRAW)

    # ------------------------------------------------------------ coupon codes
    async def _register_code(self, code: str, turn: Turn) -> bool:
        """Reserve a code for a member (noting the group, for the redemption funnel); False
        when it was already issued to anyone."""
        return await coupons.register(self._r, self.keys.brand, code, turn.user, turn.group)

    async def _unregister_unused(self, registered: str, used: str) -> None:
        """Remove a code this call registered but did not issue (a replay kept its first)."""
        if registered and registered != used:
            await self._r.delete(self.keys.code(registered))

    async def redeemed(self, codes: list[str]) -> dict[str, int]:
        """Which of these codes a store already took (核销), and when."""
        return await coupons.redeemed(self._r, self.keys.brand, codes)

    async def code_owner(self, code: str) -> str | None:
        """Who a coupon code was issued to, or None if it is not one of ours."""
        owner = await self._r.hget(self.keys.code(code), "owner")
        return None if owner is None else text_of(owner)

    # ------------------------------------------------------------ check-in
    async def check_in(self, turn: Turn, rules: CheckinRules, *, today: str,
                       yesterday: str) -> CheckinResult:
        """Check a member in for today, at most once per local day, then count it in the group."""
        k = self.keys
        raw = await self._checkin(
            keys=[k.result("checkin", turn.user, turn.msgid), k.member(turn.user),
                  k.ledger(turn.user)],
            args=[script_arg({
                "today": today, "yesterday": yesterday, "base": rules.base_points,
                "bonus": {str(d): p for d, p in rules.streak_bonus.items()},
                "ttl": IDEMPOTENCY_TTL_S, "user": turn.user, "group": turn.group,
                "msgid": turn.msgid, "now": turn.now, "maxlen": MEMBER_LEDGER_MAXLEN,
            })],
        )
        result = parse(CheckinResult, raw)
        if result.status == "checked_in" and turn.group:
            await self._count_checkin(
                keys=[k.leaderboard(turn.group), k.leaderboard_seq(turn.group),
                      k.counted(turn.group, turn.user, turn.msgid)],
                args=[script_arg({"user": turn.user, "earned": result.earned,
                             "ttl": IDEMPOTENCY_TTL_S})],
            )
        return result

    async def member_stats(self, user: str) -> MemberStats:
        """Read a member's balance and streak (a plain read, no script needed)."""
        data = {text_of(f): text_of(v)
                for f, v in (await self._r.hgetall(self.keys.member(user))).items()}
        return MemberStats(
            points=int(data.get("points", 0)),
            streak=int(data.get("streak", 0)),
            checkins=int(data.get("checkins", 0)),
            best_streak=int(data.get("best_streak", 0)),
            last_day=data.get("last_day"),
        )

    async def leaderboard(self, group: str, size: int) -> list[Standing]:
        """Top members of a group by check-in points earned there; ties: first to get there."""
        rows = await self._r.zrevrange(self.keys.leaderboard(group), 0, size - 1,
                                       withscores=True)
        return [Standing(user=text_of(u), score=math.floor(s), rank=i + 1)
                for i, (u, s) in enumerate(rows)]

    async def rank_of(self, group: str, user: str) -> Standing | None:
        """A member's own place in the group leaderboard, if they are on it."""
        key = self.keys.leaderboard(group)
        rank = await self._r.zrevrank(key, user)
        if rank is None:
            return None
        score = await self._r.zscore(key, user)
        return Standing(user=user, score=math.floor(score or 0), rank=int(rank) + 1)

    # ------------------------------------------------------------ coupons
    async def claim_under_way(self, user: str, msgid: str) -> str | None:
        """The campaign an earlier delivery of this message began claiming, if it did not
        finish: the retry finishes that claim, whatever the message would resolve to now."""
        raw = await self._r.get(self.keys.under_way(user, msgid))
        return None if raw is None else parse(UnderWay, raw).campaign

    async def claim_coupon(self, turn: Turn, campaign: CouponCampaign,
                           coupon: Coupon) -> ClaimResult:
        """Issue one coupon of a campaign (its code is `coupon.code`), or say why not."""
        k = self.keys
        result_key, under_way_key = (k.result("claim", turn.user, turn.msgid),
                                     k.under_way(turn.user, turn.msgid))
        final = await self._r.get(result_key)
        if final is not None:
            return parse(ClaimResult, final)
        if not await self._register_code(coupon.code, turn):
            return ClaimResult(status=CODE_TAKEN)
        raw = text_of(await self._begin_claim(
            keys=[result_key, under_way_key],
            args=[script_arg({"campaign": campaign.id, "code": coupon.code,
                         "ttl": IDEMPOTENCY_TTL_S})]))
        if json.loads(raw)["status"] != "under_way":
            return await self._finished(parse(ClaimResult, raw), coupon.code)
        begun = parse(UnderWay, raw)
        if begun.campaign != campaign.id:
            log.warning("claim %s of %s was begun for campaign %s, which is gone; finishing "
                        "it as %s", turn.msgid, turn.user, begun.campaign, campaign.id)
        raw = text_of(await self._reserve_claim(
            keys=[k.claim(campaign.id, turn.user, turn.msgid), k.issued(campaign.id),
                  k.claims(campaign.id)],
            args=[script_arg({
                "now": turn.now, "starts": int(campaign.starts.timestamp()),
                "ends": int(campaign.ends.timestamp()), "stock": campaign.stock,
                "limit": campaign.per_member_limit, "user": turn.user, "code": begun.code,
                "ttl": IDEMPOTENCY_TTL_S,
            })],
        ))
        outcome = parse(ClaimResult, raw)
        raw = await self._finish_claim(
            keys=[result_key, under_way_key, k.wallet(turn.user), k.ledger(turn.user)],
            args=[script_arg({
                "result": raw, "issued": outcome.status == "issued", "code": outcome.code,
                "coupon": _coupon_text(replace(coupon, code=outcome.code)),
                "user": turn.user, "item": campaign.id, "msgid": turn.msgid, "now": turn.now,
                "ttl": IDEMPOTENCY_TTL_S, "maxlen": MEMBER_LEDGER_MAXLEN,
            })],
        )
        return await self._finished(parse(ClaimResult, raw), coupon.code)

    async def _finished(self, result: R, registered: str) -> R:
        """The result, once a code this call registered but did not issue is removed."""
        await self._unregister_unused(registered, getattr(result, "code", ""))
        return result

    async def issued_count(self, campaign: str) -> int:
        """How many coupons of a campaign have been issued."""
        return int(await self._r.get(self.keys.issued(campaign)) or 0)

    async def wallet(self, user: str) -> list[Coupon]:
        """Every coupon a member holds (expired ones included; callers filter)."""
        raw = await self._r.hgetall(self.keys.wallet(user))
        return [parse(Coupon, v) for v in raw.values()]

    # ------------------------------------------------------------ points shop
    async def redeem(self, turn: Turn, reward: Reward, coupon: Coupon) -> RedeemResult:
        """Spend points on a reward: pay, take a unit of stock, get the coupon — or, if the
        stock ran out meanwhile, the points back. Only a member who paid ever takes stock."""
        k = self.keys
        result_key, paid_key = (k.result("redeem", turn.user, turn.msgid),
                                k.paid("redeem", turn.user, turn.msgid))
        final = await self._r.get(result_key)
        if final is not None:
            return parse(RedeemResult, final)
        if not await self._register_code(coupon.code, turn):
            return RedeemResult(status=CODE_TAKEN)
        raw = text_of(await self._pay_redeem(
            keys=[result_key, paid_key, k.member(turn.user), k.ledger(turn.user)],
            args=[script_arg({
                "cost": reward.cost_points, "reward": reward.id, "user": turn.user,
                "code": coupon.code, "msgid": turn.msgid, "now": turn.now,
                "ttl": IDEMPOTENCY_TTL_S, "maxlen": MEMBER_LEDGER_MAXLEN,
            })]))
        if json.loads(raw)["status"] != "paid":
            return await self._finished(parse(RedeemResult, raw), coupon.code)
        paid = parse(UnderWay, raw)
        in_stock = reward.stock is None or text_of(await self._hold_reward(
            keys=[k.reward_hold(turn.user, turn.msgid), k.rewards_issued],
            args=[script_arg({"reward": reward.id, "stock": reward.stock,
                         "ttl": IDEMPOTENCY_TTL_S})])) == "held"
        raw = text_of(await self._settle_redeem(
            keys=[result_key, paid_key, k.member(turn.user), k.wallet(turn.user),
                  k.ledger(turn.user)],
            args=[script_arg({
                "in_stock": in_stock, "cost": reward.cost_points, "reward": reward.id,
                "user": turn.user, "code": paid.code,
                "coupon": _coupon_text(replace(coupon, code=paid.code)),
                "msgid": turn.msgid, "now": turn.now, "ttl": IDEMPOTENCY_TTL_S,
                "maxlen": MEMBER_LEDGER_MAXLEN,
            })]))
        return await self._finished(parse(RedeemResult, raw), coupon.code)

    async def reward_issued(self, reward: str) -> int:
        """How many of a reward have been redeemed (or are held for a redemption under way)."""
        return int(await self._r.hget(self.keys.rewards_issued, reward) or 0)

    # ------------------------------------------------------------ lucky draw
    async def draw(self, turn: Turn, rules: LuckyDraw, *, today: str, r: int, code: str,
                   coupons: Mapping[str, Coupon]) -> DrawResult:
        """Draw once: pay (limit, cost), pick a prize within stock, credit it.

        `r` is the random number in [0, total weight); `coupons` holds, per coupon prize,
        the coupon a win puts in the wallet (its code is set to the one the draw pinned).
        """
        k = self.keys
        result_key, paid_key = (k.result("draw", turn.user, turn.msgid),
                                k.paid("draw", turn.user, turn.msgid))
        registered = ""
        if coupons:
            if not await self._register_code(code, turn):
                return DrawResult(status=CODE_TAKEN)
            registered = code
        raw = text_of(await self._pay_draw(
            keys=[result_key, paid_key, k.draws(turn.user, today), k.member(turn.user),
                  k.ledger(turn.user)],
            args=[script_arg({
                "limit": rules.daily_limit, "cost": rules.cost_points, "user": turn.user,
                "code": code, "msgid": turn.msgid, "now": turn.now,
                "counter_ttl": DRAW_COUNTER_TTL_S, "ttl": IDEMPOTENCY_TTL_S,
                "maxlen": MEMBER_LEDGER_MAXLEN,
            })],
        ))
        if json.loads(raw)["status"] != "paid":
            return await self._finished(parse(DrawResult, raw), registered)
        paid = parse(UnderWay, raw)
        pick = parse(Pick, await self._pick_prize(
            keys=[k.pick(turn.user, turn.msgid), k.prizes_issued, k.drawlog],
            args=[script_arg({
                "r": r, "consolation": rules.consolation.id, "user": turn.user,
                "group": turn.group, "msgid": turn.msgid, "now": turn.now,
                "ttl": IDEMPOTENCY_TTL_S, "maxlen": DRAWLOG_MAXLEN,
                "prizes": [{"id": p.id, "weight": p.weight,
                            "stock": -1 if p.stock is None else p.stock, "kind": p.kind,
                            "points": p.points} for p in rules.prizes],
            })],
        ))
        won = coupons.get(pick.prize) if pick.kind == "coupon" else None
        raw = text_of(await self._settle_draw(
            keys=[result_key, paid_key, k.member(turn.user), k.wallet(turn.user),
                  k.ledger(turn.user)],
            args=[script_arg({
                **asdict(pick), "draws_left": rules.daily_limit - paid.used - 1,
                "user": turn.user, "code": paid.code,
                "coupon": "" if won is None else _coupon_text(replace(won, code=paid.code)),
                "msgid": turn.msgid, "now": turn.now, "ttl": IDEMPOTENCY_TTL_S,
                "maxlen": MEMBER_LEDGER_MAXLEN,
            })],
        ))
        return await self._finished(parse(DrawResult, raw), registered)

    async def prize_issued(self, prize: str) -> int:
        """How many of a prize have been won."""
        return int(await self._r.hget(self.keys.prizes_issued, prize) or 0)

    # ------------------------------------------------------------ analytics
    async def record(self, event: Event) -> bool:
        """Append an analytics event for this brand; never raises (a count is not worth a reply)."""
        return await emit(self._r, self.keys.brand, event)

    async def ledger(self, user: str) -> list[dict[str, str]]:
        """A member's points and coupons history, oldest first (for audits and tests)."""
        rows = await self._r.xrange(self.keys.ledger(user))
        return [{text_of(f): text_of(v) for f, v in fields.items()} for _id, fields in rows]


_client: AsyncRedis | None = None


def redis_url() -> str:
    """The Redis the games use: REDIS_URL, or the embedded one `make run` starts."""
    from qunzhu.settings import redis_url as configured

    return configured()


def client() -> AsyncRedis:
    """One lazily created client per process (created inside the running event loop).

    On one server a blocking pool queues a burst of messages instead of failing past its
    size; QZ_REDIS_CLUSTER=1 gives a Redis Cluster client. Replies come back as text.
    """
    global _client
    if _client is None:
        _client = async_client(redis_url(), max_connections=32, decode_responses=True,
                               timeout_s=float(os.environ.get("QZ_REDIS_TIMEOUT_S", "2")))
    return _client
