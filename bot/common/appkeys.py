"""Typed aiohttp application keys, declared in one place."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from aiohttp import web

from bot.common.budget import Gate
from bot.common.clock import Clock
from bot.common.configwatch import ConfigWatch
from bot.common.groups import Directory
from bot.common.settings import BridgeSettings
from bot.common.spool import Spool
from bot.common.store import BridgeStore
from bot.common.texts import Texts
from qunzhu.campaigns import CampaignsFile
from qunzhu.redisconn import AsyncRedis

SETTINGS = web.AppKey("settings", BridgeSettings)
CLOCK = web.AppKey("clock", Clock)
GroupsNow = Callable[[], Directory]  # the groups file now in force (reloaded when it changes)
GROUPS: web.AppKey[GroupsNow] = web.AppKey("groups")
CampaignsNow = Callable[[], CampaignsFile]  # the campaigns file now in force
CAMPAIGNS: web.AppKey[CampaignsNow] = web.AppKey("campaigns")
BRAND_ID: web.AppKey[str] = web.AppKey("brand_id")
GATE = web.AppKey("gate", Gate)  # the anti-spam budget for the bridge's own posts
CONFIG_WATCH = web.AppKey("config_watch", ConfigWatch)
TEXTS = web.AppKey("texts", Texts)
REDIS: web.AppKey[AsyncRedis] = web.AppKey("redis")
STORE = web.AppKey("store", BridgeStore)
SESSION = web.AppKey("session", aiohttp.ClientSession)
SPOOL: web.AppKey[Spool | None] = web.AppKey("spool")  # None: no disk spool configured
