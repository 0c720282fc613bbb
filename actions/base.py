"""Shared base for game actions: a Redis outage becomes a polite reply, never a crash."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.context import Speaker, speaker
from actions.runtime import Services, services
from qunzhu.redisconn import REDIS_DOWN

log = logging.getLogger(__name__)


class GameAction(Action, ABC):
    """An action that touches game state; subclasses implement `play`."""

    @abstractmethod
    def name(self) -> str:
        """The action's name in domain.yml."""

    @abstractmethod
    async def play(
        self,
        dispatcher: CollectingDispatcher,
        who: Speaker,
        svc: Services,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Do the game step and tell the member how it went."""

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[EventType]:
        """Run `play`, answering politely if the game store cannot be reached."""
        who = speaker(tracker)
        try:
            return await self.play(dispatcher, who, services(), tracker, domain)
        except REDIS_DOWN as exc:
            log.error("%s: game store unavailable (%s)", self.name(), type(exc).__name__)
            dispatcher.utter_message(response="utter_busy")
            return []
