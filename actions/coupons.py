"""Coupons (领券): atomic claims with stock and per-member limits, and the member's wallet."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.analytics import record
from actions.base import GameAction
from actions.catalogue import find_named
from actions.clock import SHANGHAI, local_day
from actions.codes import codes_in, coupon_record, with_fresh_code
from actions.config import CouponCampaign
from actions.context import Speaker
from actions.replies import lines
from actions.results import ClaimResult
from actions.runtime import Services
from qunzhu.events import Kind


def _open_campaigns(campaigns: list[CouponCampaign], now: datetime) -> list[CouponCampaign]:
    return [c for c in campaigns if c.starts <= now <= c.ends]


def _menu(domain: dict[str, Any], campaigns: list[CouponCampaign]) -> str:
    return lines(domain, "utter_fmt_coupon_line",
                 ({"name": c.name, "condition": c.condition} for c in campaigns))


class ActionClaimCoupon(GameAction):
    """Issue the coupon the member asked for, or explain kindly why not."""

    def name(self) -> str:
        """Paired with `action_claim_coupon` in domain.yml."""
        return "action_claim_coupon"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Pick the campaign by name (or the only open one) and claim it atomically; a
        message delivered again finishes the claim its first delivery began."""
        now = svc.clock.now()
        under_way = await svc.store.claim_under_way(who.user, who.msgid)
        campaign = next((c for c in svc.games.coupons if c.id == under_way), None)
        if campaign is None:
            campaign = find_named(svc.games.coupons, who.text)
        if campaign is None:
            open_now = _open_campaigns(svc.games.coupons, now)
            if not open_now:
                dispatcher.utter_message(response="utter_coupon_none_open")
                return []
            if len(open_now) > 1:
                dispatcher.utter_message(
                    response="utter_coupon_choose", menu=_menu(domain, open_now)
                )
                return []
            campaign = open_now[0]
        chosen = campaign

        async def claim(code: str) -> ClaimResult:
            return await svc.store.claim_coupon(
                who.turn(now), chosen,
                coupon_record(chosen, code=code, now=now, source=f"campaign:{chosen.id}"),
            )

        result = await with_fresh_code(claim)
        status = result.status
        if status == "issued":
            wallet = {c.code: c for c in await svc.store.wallet(who.user)}
            issued = wallet[result.code]  # recorded before the member is told
            await record(svc, who, Kind.CLAIM, {"campaign": campaign.id, "code": result.code})
            dispatcher.utter_message(
                response="utter_coupon_issued", name=campaign.name, code=result.code,
                condition=campaign.condition, expires=issued.expires,
            )
        elif status == "not_started":
            dispatcher.utter_message(
                response="utter_coupon_not_started", name=campaign.name,
                month=campaign.starts.month, day=campaign.starts.day,
                time=f"{campaign.starts:%H:%M}",
            )
        elif status == "ended":
            dispatcher.utter_message(response="utter_coupon_ended", name=campaign.name)
        elif status == "limit_reached":
            dispatcher.utter_message(
                response="utter_coupon_limit", name=campaign.name,
                limit=campaign.per_member_limit,
            )
        elif status == "sold_out":
            dispatcher.utter_message(response="utter_coupon_sold_out", name=campaign.name)
        else:
            dispatcher.utter_message(response="utter_busy")
        return []


class ActionMyCoupons(GameAction):
    """List the member's unexpired coupons, or check a code they pasted."""

    def name(self) -> str:
        """Paired with `action_my_coupons` in domain.yml."""
        return "action_my_coupons"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Show the wallet; a pasted code is checked against what we issued."""
        now = int(svc.clock.now().timestamp())
        wallet = await svc.store.wallet(who.user)
        used = await svc.store.redeemed([c.code for c in wallet if c.expires_at >= now])
        pasted = codes_in(who.text)
        if pasted:
            code = pasted[0]
            mine = {c.code: c for c in wallet}
            if code in mine and code in used:
                coupon = mine[code]
                dispatcher.utter_message(
                    response="utter_code_yours_used", code=code, name=coupon.name,
                    used=local_day(datetime.fromtimestamp(used[code], SHANGHAI)).isoformat())
            elif code in mine:
                coupon = mine[code]
                response = (
                    "utter_code_yours_expired" if coupon.expires_at < now
                    else "utter_code_yours"
                )
                dispatcher.utter_message(
                    response=response, code=code, name=coupon.name,
                    expires=coupon.expires, condition=coupon.condition,
                )
            elif await svc.store.code_owner(code) is not None:
                dispatcher.utter_message(response="utter_code_not_yours", code=code)
            else:
                dispatcher.utter_message(response="utter_code_unknown", code=code)
            return []
        usable = sorted((c for c in wallet if c.expires_at >= now and c.code not in used),
                        key=lambda c: c.expires_at)
        if not usable:
            dispatcher.utter_message(response="utter_my_coupons_empty")
            return []
        listing = lines(domain, "utter_fmt_wallet_line", (asdict(c) for c in usable))
        dispatcher.utter_message(response="utter_my_coupons", count=len(usable), coupons=listing)
        return []
