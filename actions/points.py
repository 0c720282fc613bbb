"""My points and the group leaderboard."""

from __future__ import annotations

from datetime import date
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.base import GameAction
from actions.clock import local_day
from actions.context import Speaker
from actions.replies import lines
from actions.runtime import Services


class ActionMyPoints(GameAction):
    """Tell a member their balance, streak and check-in count."""

    def name(self) -> str:
        """Paired with `action_my_points` in domain.yml."""
        return "action_my_points"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Read the member's stats; a streak whose last day is long gone reads as 0."""
        stats = await svc.store.member_stats(who.user)
        if stats.checkins == 0 and stats.points == 0:
            dispatcher.utter_message(response="utter_points_new")
            return []
        today = local_day(svc.clock.now())
        alive = stats.last_day is not None and (
            today.toordinal() - _ordinal(stats.last_day) <= 1
        )
        dispatcher.utter_message(
            response="utter_points_balance",
            points=stats.points,
            streak=stats.streak if alive else 0,
            checkins=stats.checkins,
            best_streak=stats.best_streak,
        )
        return []


def _ordinal(day: str) -> int:
    return date.fromisoformat(day).toordinal()


class ActionLeaderboard(GameAction):
    """Show the group's top members and where the asker stands."""

    def name(self) -> str:
        """Paired with `action_leaderboard` in domain.yml."""
        return "action_leaderboard"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """List the top N of this group by name (check-in points earned here)."""
        if not who.in_group:
            dispatcher.utter_message(response="utter_leaderboard_not_group")
            return []
        size = svc.games.checkin.leaderboard_size
        top = await svc.store.leaderboard(who.group, size)
        if not top:
            dispatcher.utter_message(response="utter_leaderboard_empty")
            return []
        medals = {1: "🥇", 2: "🥈", 3: "🥉"}
        names = await svc.names.members(who.group, [s.user for s in top])
        rows = lines(domain, "utter_fmt_leaderboard_row", (
            {"place": medals.get(s.rank, f"{s.rank}."), "user": names[s.user], "score": s.score}
            for s in top))
        mine = await svc.store.rank_of(who.group, who.user)
        if mine is None:
            dispatcher.utter_message(response="utter_leaderboard_unranked", rows=rows)
        else:
            dispatcher.utter_message(
                response="utter_leaderboard", rows=rows, rank=mine.rank, score=mine.score
            )
        return []
