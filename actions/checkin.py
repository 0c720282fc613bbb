"""Daily check-in (打卡/签到): once per Asia/Shanghai day, with streaks and bonus points."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.analytics import record
from actions.base import GameAction
from actions.clock import local_day
from actions.context import Speaker
from actions.posts import post_to_group
from actions.replies import render
from actions.runtime import Services
from qunzhu.events import Kind
from qunzhu.names import mention


class ActionCheckIn(GameAction):
    """Check the member in and say their streak and points."""

    def name(self) -> str:
        """Paired with `action_check_in` in domain.yml."""
        return "action_check_in"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Check in atomically; announce milestone streaks in the group."""
        rules = svc.games.checkin
        now = svc.clock.now()
        today = local_day(now)
        result = await svc.store.check_in(
            who.turn(now), rules, today=today.isoformat(),
            yesterday=(today - timedelta(days=1)).isoformat(),
        )
        streak, points = result.streak, result.points
        if result.status == "already":
            dispatcher.utter_message(
                response="utter_checkin_already", streak=streak, points=points
            )
            return []
        earned = result.earned
        await record(svc, who, Kind.CHECKIN, {"streak": streak, "points": earned})
        bonus = earned - rules.base_points
        if bonus > 0:
            dispatcher.utter_message(
                response="utter_checkin_bonus",
                streak=streak, earned=earned, bonus=bonus, points=points,
            )
        else:
            next_bonus = min((d for d in rules.streak_bonus if d > streak), default=None)
            if next_bonus is not None:
                dispatcher.utter_message(
                    response="utter_checkin_done_next",
                    streak=streak, earned=earned, points=points,
                    days_to_bonus=next_bonus - streak,
                    next_bonus=rules.streak_bonus[next_bonus],
                )
            else:
                dispatcher.utter_message(
                    response="utter_checkin_done", streak=streak, earned=earned, points=points
                )
        if streak in rules.announce_streaks and who.in_group:
            text = render(domain, "utter_announce_streak", user=mention(who.user), streak=streak)
            if text:
                await post_to_group(svc.poster, group=who.group, text=text,
                                    idem=f"streak:{who.user}:{who.msgid}")
        return []
