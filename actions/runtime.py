"""The services actions share: game store, clock and operator config, swappable in tests."""

from __future__ import annotations

from dataclasses import dataclass

from actions import config
from actions.clock import Clock, SystemClock
from actions.posts import GroupPoster, bridge_poster
from actions.store import GameStore, client


@dataclass
class Services:
    """Everything an action needs besides the tracker."""

    store: GameStore
    clock: Clock
    brand: config.Brand
    games: config.Games
    poster: GroupPoster


_current: Services | None = None


def services() -> Services:
    """The process's services, built on first use inside the action server's event loop."""
    global _current
    if _current is None:
        brand = config.brand()
        _current = Services(
            store=GameStore(client(), brand.id),
            clock=SystemClock(),
            brand=brand,
            games=config.games(),
            poster=bridge_poster(brand.id),
        )
    return _current


def use(replacement: Services | None) -> None:
    """Install services for tests (None goes back to the defaults)."""
    global _current
    _current = replacement
