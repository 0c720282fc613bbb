"""The simulator app's typed keys, shared by its route modules."""

from __future__ import annotations

from aiohttp import web

from bot.simulator.state import SimState

STATE = web.AppKey("state", SimState)
