"""The action server's live brand facts and game rules: edits apply without a restart.

A file that fails validation is reported and ignored; the last good version keeps serving
(qunzhu.liveconfig). Member state lives in Redis and is never touched by a reload.
"""

from __future__ import annotations

from qunzhu.config import (
    Brand,
    ConfigError,
    CouponCampaign,
    Games,
    brand_file,
    brand_loader,
    games_file,
    is_range,
    load_brand,
    load_games,
)
from qunzhu.liveconfig import LiveFile

__all__ = ["Brand", "ConfigError", "CouponCampaign", "Games", "brand", "brand_file", "games",
           "games_file", "is_range", "live_files", "load_brand", "load_games"]

_brand: LiveFile[Brand] | None = None
_games: LiveFile[Games] | None = None


def live_files() -> tuple[LiveFile[Brand], LiveFile[Games]]:
    """Load both files once (ConfigError only if one never had a good version)."""
    global _brand, _games
    if _brand is None:
        _brand = LiveFile("brand", brand_file(), brand_loader())
    if _games is None:
        _games = LiveFile("games", games_file(), load_games)
    return _brand, _games


def brand() -> Brand:
    """The brand facts now in force."""
    return live_files()[0].value


def games() -> Games:
    """The game rules now in force."""
    return live_files()[1].value
