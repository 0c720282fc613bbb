"""Typed aiohttp application keys, declared in one place."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from bot.clock import Clock
from bot.groups import Directory
from bot.settings import BridgeSettings
from bot.store import BridgeStore
from bot.texts import Texts

SETTINGS = web.AppKey("settings", BridgeSettings)
CLOCK = web.AppKey("clock", Clock)
DIRECTORY = web.AppKey("directory", Directory)
TEXTS = web.AppKey("texts", Texts)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE = web.AppKey("store", BridgeStore)
SESSION = web.AppKey("session", aiohttp.ClientSession)
