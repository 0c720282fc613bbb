"""The console application's typed keys (what the app carries for its handlers)."""

from __future__ import annotations

from aiohttp import web

from console.accounts import Accounts
from console.audit import AuditLog
from console.settings import ConsoleSettings
from console.throttle import LoginThrottle
from qunzhu.redisconn import AsyncRedis

REDIS: web.AppKey[AsyncRedis] = web.AppKey("redis")
ACCOUNTS = web.AppKey("accounts", Accounts)
AUDIT = web.AppKey("audit", AuditLog)
THROTTLE = web.AppKey("throttle", LoginThrottle)
SETTINGS = web.AppKey("settings", ConsoleSettings)
