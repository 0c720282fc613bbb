"""Lucky draw (抽奖): daily limit, weighted prizes with finite stock, every draw audited."""

from __future__ import annotations

import secrets
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.analytics import record
from actions.base import GameAction
from actions.clock import local_day
from actions.codes import coupon_record, with_fresh_code
from actions.context import Speaker
from actions.posts import post_to_group
from actions.replies import render
from actions.results import DrawResult
from actions.runtime import Services
from qunzhu.events import Kind
from qunzhu.names import mention


class ActionLuckyDraw(GameAction):
    """Draw once for the member and tell them what they won."""

    def name(self) -> str:
        """Paired with `action_lucky_draw` in domain.yml."""
        return "action_lucky_draw"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """The random number comes from `secrets`; Redis does the pick so stock stays exact."""
        rules = svc.games.lucky_draw
        now = svc.clock.now()
        by_id = {p.id: p for p in rules.prizes}
        r = secrets.randbelow(sum(p.weight for p in rules.prizes))

        async def draw(code: str) -> DrawResult:
            coupons = {
                p.id: coupon_record(p.coupon, code=code, now=now, source=f"draw:{p.id}")
                for p in rules.prizes if p.kind == "coupon" and p.coupon is not None
            }
            return await svc.store.draw(who.turn(now), rules, today=local_day(now).isoformat(),
                                        r=r, code=code, coupons=coupons)

        result = await with_fresh_code(draw)
        status = result.status
        if status == "limit_reached":
            dispatcher.utter_message(response="utter_draw_limit", limit=rules.daily_limit)
            return []
        if status == "insufficient":
            dispatcher.utter_message(
                response="utter_draw_insufficient", cost=rules.cost_points,
                points=result.points,
            )
            return []
        if status != "drawn":
            dispatcher.utter_message(response="utter_busy")
            return []
        prize = by_id[result.prize]
        await record(svc, who, Kind.DRAW, {"prize": "" if prize.kind == "nothing" else prize.id,
                                           "cost": rules.cost_points})
        if prize.kind == "coupon":
            dispatcher.utter_message(
                response="utter_draw_won_coupon", prize=prize.name, code=result.code,
                draws_left=result.draws_left,
            )
        elif prize.kind == "points":
            dispatcher.utter_message(
                response="utter_draw_won_points", prize=prize.name, amount=prize.points,
                points=result.points, draws_left=result.draws_left,
            )
        else:
            dispatcher.utter_message(
                response="utter_draw_nothing", draws_left=result.draws_left
            )
        if prize.announce and who.in_group:
            text = render(domain, "utter_announce_draw_winner", user=mention(who.user),
                          prize=prize.name)
            if text:
                await post_to_group(svc.poster, group=who.group, text=text,
                                    idem=f"draw:{who.user}:{who.msgid}")
        return []
