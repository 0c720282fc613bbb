"""Members stop (or restart) campaign @-mentions, and say when the group gets too many posts.

An opt-out is brand-wide and lasts until the member opts back in (`qunzhu.optouts`); the
campaign scheduler reads it before it @-mentions anyone. "Too many posts" is a signal for
operators, counted once per member, group and local day. Each message acts once: a retried
delivery gets the first delivery's answer and changes nothing (`actions.preferences`).
"""

from __future__ import annotations

from abc import ABC
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.analytics import record, record_daily
from actions.base import GameAction
from actions.context import Speaker
from actions.runtime import Services
from qunzhu.events import Kind


class MentionChoice(GameAction, ABC):
    """Store the member's choice once for this message and say whether it changed anything
    (abstract: each choice names its action and replies)."""

    out: bool  # True: campaigns stop @-mentioning the member
    done: str  # the reply when the choice changed
    already: str  # the reply when it was already so

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Choose; a member whose choice already was so gets a different, friendly answer."""
        choice = await svc.preferences.choose(who.user, who.msgid, self.out)
        if not choice.changed:
            dispatcher.utter_message(response=self.already)
            return []
        # Only a change is an event: the console's opt-out count is outs minus ins.
        await record(svc, who, Kind.OPTOUT, {"on": self.out})
        dispatcher.utter_message(response=self.done)
        return []


class ActionOptOutMentions(MentionChoice):
    """"别@我了": campaigns stop @-mentioning the member, and they are told how to undo it."""

    out, done, already = True, "utter_optout_done", "utter_optout_already"

    def name(self) -> str:
        """Paired with `action_optout_mentions` in domain.yml."""
        return "action_optout_mentions"


class ActionOptInMentions(MentionChoice):
    """"恢复提醒": campaigns may @-mention the member again."""

    out, done, already = False, "utter_optin_done", "utter_optin_already"

    def name(self) -> str:
        """Paired with `action_optin_mentions` in domain.yml."""
        return "action_optin_mentions"


class ActionTooManyPosts(GameAction):
    """"群里消息太多了": count the group's signal for operators, apologise, offer the opt-out."""

    def name(self) -> str:
        """Paired with `action_too_many_posts` in domain.yml."""
        return "action_too_many_posts"

    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Count once per member, group and day; a member already opted out is not re-offered it."""
        complaint = await svc.preferences.too_many(who.group, who.user, who.msgid,
                                                   svc.clock.now())
        if who.in_group:
            await record_daily(svc, who, Kind.TOO_MANY, complaint.day, complaint.at, {})
        dispatcher.utter_message(
            response="utter_too_many_posts_opted_out" if complaint.out
            else "utter_too_many_posts")
        return []
