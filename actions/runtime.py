"""The services actions share (game store, names, opt-outs, clock, config), swappable in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from actions import config
from actions.clock import Clock, SystemClock
from actions.posts import GroupPoster, bridge_poster
from actions.preferences import Preferences
from actions.store import GameStore, client
from qunzhu.names import NameBook


@dataclass
class Services:
    """Everything an action needs besides the tracker."""

    store: GameStore
    clock: Clock
    poster: GroupPoster
    names: NameBook
    preferences: Preferences
    brand_now: Callable[[], config.Brand] = config.brand
    games_now: Callable[[], config.Games] = config.games

    @property
    def brand(self) -> config.Brand:
        """The brand facts in force now (brand.yml is reloaded when it changes)."""
        return self.brand_now()

    @property
    def games(self) -> config.Games:
        """The game rules in force now (games.yml is reloaded when it changes)."""
        return self.games_now()


_current: Services | None = None


def services() -> Services:
    """The process's services, built on first use inside the action server's event loop."""
    global _current
    if _current is None:
        brand = config.brand()
        _current = Services(
            store=GameStore(client(), brand.id),
            clock=SystemClock(),
            poster=bridge_poster(brand.id),
            names=NameBook(client(), brand.id),
            preferences=Preferences(client(), brand.id),
        )
    return _current


def use(replacement: Services | None) -> None:
    """Install services for tests (None goes back to the defaults)."""
    global _current
    _current = replacement
