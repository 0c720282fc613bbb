"""The bridge's app factory: one resource per cleanup_ctx, background loops as tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from bot.analytics.aggregator import Aggregator
from bot.campaigns import api as campaigns_api
from bot.campaigns import customer_api as customer_groups_api
from bot.campaigns.customer import CustomerSends
from bot.campaigns.render import LiveData
from bot.campaigns.scheduler import Scheduler
from bot.campaigns.welcome_sync import WelcomeSync
from bot.common import appkeys, legacy, spooled
from bot.common.budget import Budget, Gate
from bot.common.clock import Clock, FollowedClock, RealClock
from bot.common.configwatch import ConfigWatch, OperatorFiles
from bot.common.groups import Directory
from bot.common.names import NameResolver
from bot.common.posts import Post
from bot.common.settings import MAX_BODY_BYTES, BridgeSettings
from bot.common.spool import Record, Spool
from bot.common.store import HANDOFFS, BridgeStore
from bot.common.texts import Texts
from bot.inbound.callbacks import CallbackHandler
from bot.inbound.newcomers import Newcomers
from bot.inbound.turns import TurnWorker
from bot.outbound import api
from bot.outbound.handoff import HandoffRelay
from bot.outbound.sender import Sender, SenderConfig
from bot.wecom.api import WeComApi
from bot.wecom.crypto import WeComCrypto
from bot.wecom.webhook import WebhookClient
from qunzhu.campaigns import Limits
from qunzhu.customergroups import customer_groups_file, load_customer_groups
from qunzhu.liveconfig import LiveFile
from qunzhu.models import ModelRegistry
from qunzhu.names import NameBook
from qunzhu.redisconn import REDIS_DOWN, REDIS_DOWN_OR_SLOW, async_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Background:
    """Which loops this process runs (tests may run the sender alone, or none)."""

    turns: bool = True
    sender: bool = True
    handoff: bool = True
    events: bool = False  # the aggregator (on in production through BRIDGE_ROLES)
    campaigns: bool = False  # the campaign scheduler (on in production through BRIDGE_ROLES)


@web.middleware
async def close_after_413(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body refused as too large may be half sent: close the connection after answering.

    Otherwise the unread rest of it would be read as the next request on a kept-alive
    connection, and that request would hang.
    """
    try:
        response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        response = web.Response(status=413, text="body too large\n")
    if response.status == 413:
        response.force_close()
        response.headers["Connection"] = "close"
    return response


def _crypto(settings: BridgeSettings, receive_id: str, clock: Clock) -> WeComCrypto | None:
    if not settings.token or not settings.encoding_aes_key:
        return None
    return WeComCrypto(settings.token, settings.encoding_aes_key, receive_id, clock=clock.now)


def create_app(
    settings: BridgeSettings,
    *,
    clock: Clock | None = None,
    files: OperatorFiles | None = None,
    directory: Directory | None = None,
    texts: Texts | None = None,
    background: Background | None = None,
    sender_config: SenderConfig | None = None,
) -> web.Application:
    """Build the bridge: callbacks, API, and the turn worker, sender and handoff relay.

    `files` are the live operator files (loaded from the settings when omitted); a fixed
    `directory` replaces the groups file (tests).
    """
    clock = clock or RealClock()
    files = files or OperatorFiles.load(settings.groups_file)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[close_after_413])
    app[appkeys.SETTINGS] = settings
    app[appkeys.CLOCK] = clock
    groups: Callable[[], Directory] = (
        (lambda: directory) if directory is not None else (lambda: files.groups.value))
    app[appkeys.GROUPS] = groups
    app[appkeys.TEXTS] = texts or Texts.from_domain()
    background = background or Background()
    brand = files.brand
    app[appkeys.CAMPAIGNS] = lambda: files.campaigns.value
    app[appkeys.BRAND_ID] = brand.value.id

    async def post(item: Post, idem: str) -> str:
        post_id, _new = await api.enqueue(app, item, idem)
        return post_id

    customer_file = LiveFile("customer_groups", customer_groups_file(), load_customer_groups,
                             check_every_s=math.inf)  # ConfigWatch reloads it
    app[customer_groups_api.CUSTOMER_GROUPS] = lambda: customer_file.value
    app[appkeys.CONFIG_WATCH] = ConfigWatch(
        [*(f for f in files.all() if directory is None or f is not files.groups),
         customer_file],
        app[appkeys.TEXTS], groups, post)

    def tags_of(chatid: str) -> list[str]:
        robot = groups().robot(chatid)
        return list(robot.tags) if robot else []

    def limits(chatid: str) -> Limits:
        return files.campaigns.value.limits(chatid, tags_of(chatid))

    def welcome_text(chatid: str) -> str | None:
        return files.campaigns.value.welcome_for(chatid, tags_of(chatid))

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        client = async_client(
            settings.redis_url, cluster=settings.redis_cluster, timeout_s=5,
            max_connections=settings.send_concurrency + settings.workers + 32,
            decode_responses=True)
        app[appkeys.REDIS] = client
        app[appkeys.STORE] = BridgeStore(client)
        app[appkeys.GATE] = Gate(Budget(client), limits, lambda: groups().staff_chatid)
        try:
            await client.ping()
        except REDIS_DOWN as exc:  # serve anyway: callbacks are spooled until it is back
            log.warning("Redis unreachable at start-up (%s)", type(exc).__name__)
        yield
        await client.close()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=settings.send_concurrency + 32)
        async with aiohttp.ClientSession(connector=connector) as session:
            app[appkeys.SESSION] = session
            yield

    async def loops_ctx(app: web.Application) -> AsyncIterator[None]:
        store, session = app[appkeys.STORE], app[appkeys.SESSION]
        wecom = WeComApi(session, base_url=settings.wecom_api_base, corp_id=settings.corp_id,
                         corp_secret=settings.corp_secret)
        texts_ = app[appkeys.TEXTS]
        names = NameResolver(NameBook(app[appkeys.REDIS], brand.value.id), wecom, groups)
        newcomers = Newcomers(store, wecom, groups, texts_, post,
                              lambda: brand.value.bot_name, names, brand=brand.value.id,
                              welcome_text=welcome_text, gate=app[appkeys.GATE], clock=clock)
        try:
            await legacy.migrate(store, brand.value.id, settings.dedupe_ttl_s)
        except REDIS_DOWN as exc:  # Redis is not there yet: the next start moves them
            log.warning("could not look for an older version's keys (%s)", type(exc).__name__)
        watch = app[appkeys.CONFIG_WATCH]
        runners: list[tuple[Callable[[], None], asyncio.Task[None]]] = [
            (watch.stop, asyncio.create_task(watch.run()))]
        if background.turns:
            worker = TurnWorker(
                store, session, wecom, texts_, newcomers, clock,
                rasa_url=settings.rasa_url, rasa_timeout_s=settings.rasa_timeout_s,
                rasa_route=ModelRegistry(app[appkeys.REDIS], brand.value.id).route,
                consumer=settings.consumer, concurrency=settings.workers,
                bot_names=lambda: (brand.value.bot_name,),
                reclaim_idle_ms=settings.reclaim_idle_ms,
                turn_ttl_s=settings.dedupe_ttl_s, post=post, names=names,
                fresh_s=settings.turn_fresh_s,
            )
            runners.append((worker.stop, asyncio.create_task(worker.run())))
            runners.append((names.stop, asyncio.create_task(names.run())))
        if background.sender:
            config = sender_config or SenderConfig(
                concurrency=settings.send_concurrency, reclaim_idle_ms=settings.reclaim_idle_ms
            )
            sender = Sender(store, WebhookClient(session, base_url=settings.wecom_api_base),
                            groups, texts_, clock, consumer=settings.consumer, config=config,
                            brand=brand.value.id)
            runners.append((sender.stop, asyncio.create_task(sender.run())))
        if background.handoff:
            relay = HandoffRelay(store, HANDOFFS, groups, texts_, post, settings.consumer, names,
                                 reclaim_idle_ms=settings.reclaim_idle_ms)
            runners.append((relay.stop, asyncio.create_task(relay.run())))
        if background.events:
            aggregator = Aggregator(app[appkeys.REDIS], brand.value.id, consumer=settings.consumer,
                                    reclaim_idle_ms=settings.reclaim_idle_ms)
            runners.append((aggregator.stop, asyncio.create_task(aggregator.run())))
        if background.campaigns:
            # a lease holder is one process: a token beside the consumer name, in case two
            # processes were given the same BRIDGE_CONSUMER
            process_owner = f"{settings.consumer}:{secrets.token_hex(3)}"
            scheduler_clock = _scheduler_clock(settings, clock, session)
            live = LiveData(app[appkeys.REDIS], lambda: brand.value, lambda: files.games.value,
                            groups, store.member_count)
            scheduler = Scheduler(app[appkeys.REDIS], brand.value.id, app[appkeys.CAMPAIGNS],
                                  groups, live, post, scheduler_clock,
                                  owner=process_owner)
            runners.append((scheduler.stop, asyncio.create_task(scheduler.run())))
            # Customer groups: WeCom's own welcome templates and owner-confirmed 群发, on
            # the real clock (finding a lost task compares WeCom's timestamps).
            customer_groups = app[customer_groups_api.CUSTOMER_GROUPS]
            welcome = WelcomeSync(app[appkeys.REDIS], brand.value.id, customer_groups, wecom,
                                  clock, owner=process_owner)
            sends = CustomerSends(app[appkeys.REDIS], brand.value.id, customer_groups, wecom,
                                  clock, owner=process_owner)
            runners.append((welcome.stop, asyncio.create_task(welcome.run())))
            runners.append((sends.stop, asyncio.create_task(sends.run())))
        yield
        for stop, _task in runners:
            stop()
        for _stop, task in runners:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def spool_ctx(app: web.Application) -> AsyncIterator[None]:
        """The disk spool and its drainer: what Redis could not take moves in when it is back."""
        if settings.spool_dir is None:
            app[appkeys.SPOOL] = None
            yield
            return
        spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        app[appkeys.SPOOL] = spool
        store, stopping = app[appkeys.STORE], asyncio.Event()

        async def redis_answers() -> bool:
            try:
                return await asyncio.wait_for(store.ping(), 2.0)
            except REDIS_DOWN_OR_SLOW:
                return False

        async def apply(records: list[Record]) -> None:
            await spooled.apply(store, records)

        drainer = asyncio.create_task(spool.run(redis_answers, apply, stopping))
        yield
        stopping.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(drainer, 5)
        spool.close()

    app.cleanup_ctx.extend([redis_ctx, spool_ctx, session_ctx, loops_ctx])
    _add_callback_routes(app, settings, clock)
    api.add_routes(app)
    campaigns_api.add_routes(app)
    customer_groups_api.add_routes(app)
    return app


def _scheduler_clock(settings: BridgeSettings, clock: Clock,
                     session: aiohttp.ClientSession) -> Clock:
    """The bridge's clock; in the sandbox, the simulator's simulated time (fast-forward)."""
    if not settings.sandbox_clock_url:
        return clock
    url = settings.sandbox_clock_url

    async def offset() -> float:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return float((await resp.json())["offset_s"])

    return FollowedClock(clock, offset)


def _add_callback_routes(app: web.Application, settings: BridgeSettings, clock: Clock) -> None:
    """GET (URL verification) and POST for the 智能机器人 and the app callback."""
    for kind, receive_id in (("aibot", ""), ("app", settings.corp_id)):
        handler = CallbackHandler(
            "aibot" if kind == "aibot" else "app",
            _crypto(settings, receive_id, clock),
            lambda: app[appkeys.STORE],
            clock,
            settings.dedupe_ttl_s,
            spool=lambda: app.get(appkeys.SPOOL),
            redis_wait_s=settings.inbox_wait_s,
        )
        app.router.add_get(f"/wecom/{kind}", handler.verify)
        app.router.add_post(f"/wecom/{kind}", handler.receive)
