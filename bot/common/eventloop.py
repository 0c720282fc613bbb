"""The bridge's event loop: uvloop when installed (Rasa's Sanic installs it), else asyncio's."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop: the bridge spends its CPU in socket I/O, where uvloop is cheaper."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with Rasa
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
