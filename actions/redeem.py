"""Points shop (积分兑换): points deducted and coupon issued together, or neither."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.analytics import record
from actions.base import GameAction
from actions.catalogue import find_named
from actions.codes import coupon_record, with_fresh_code
from actions.context import Speaker
from actions.replies import lines
from actions.results import RedeemResult
from actions.runtime import Services
from qunzhu.events import Kind


class ActionRedeemPoints(GameAction):
    """Redeem the reward the member named, or show the shop with their balance."""

    def name(self) -> str:
        """Paired with `action_redeem_points` in domain.yml."""
        return "action_redeem_points"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Without a named reward, list the shop; with one, redeem it atomically."""
        rewards = svc.games.rewards
        if not rewards:
            dispatcher.utter_message(response="utter_redeem_shop_closed")
            return []
        reward = find_named(rewards, who.text)
        if reward is None:
            stats = await svc.store.member_stats(who.user)
            menu = lines(domain, "utter_fmt_reward_line",
                         ({"name": r.name, "cost": r.cost_points} for r in rewards))
            dispatcher.utter_message(response="utter_redeem_menu", menu=menu, points=stats.points)
            return []
        now = svc.clock.now()
        item = reward

        async def redeem(code: str) -> RedeemResult:
            return await svc.store.redeem(
                who.turn(now), item,
                coupon_record(item, code=code, now=now, source=f"reward:{item.id}"),
            )

        result = await with_fresh_code(redeem)
        status = result.status
        if status == "redeemed":
            await record(svc, who, Kind.SHOP, {"reward": reward.id,
                                               "cost": result.cost or reward.cost_points})
            dispatcher.utter_message(
                response="utter_redeem_done", name=reward.name, cost=reward.cost_points,
                code=result.code, points=result.points,
                expires=await self._expires(svc, who.user, result.code),
            )
        elif status == "insufficient":
            dispatcher.utter_message(
                response="utter_redeem_insufficient", name=reward.name,
                cost=reward.cost_points, points=result.points, short=result.short,
            )
        elif status == "sold_out":
            dispatcher.utter_message(response="utter_redeem_sold_out", name=reward.name)
        else:
            dispatcher.utter_message(response="utter_busy")
        return []

    @staticmethod
    async def _expires(svc: Services, user: str, code: str) -> str:
        """The expiry recorded in the wallet (a replayed message keeps its first code)."""
        wallet = {c.code: c for c in await svc.store.wallet(user)}
        return wallet[code].expires
