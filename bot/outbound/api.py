"""The bridge's HTTP API for actions and operators: queue a post, ask how it went.

`POST /api/handoffs` queues a member's request for a person for the staff relay, the same
way and with the same guarantees (idempotent on the member's message).

`POST /api/groups/{group}/messages` answers 202 with an id only once the post is durable:
in the Redis stream, or — while Redis is down — fsynced to the bridge's disk spool, from
which it moves into the stream under the same id when Redis is back. A full spool answers
503: never accept and lose. The same idempotency key returns the same id. Everything needs
`Authorization: Bearer <BRIDGE_API_TOKEN>`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiohttp import web

from bot.common import appkeys, spooled
from bot.common.auth import authorised
from bot.common.budget import Kind
from bot.common.posts import Post, parse_request, post_kind
from bot.common.spool import Spool, SpoolFull
from bot.common.store import new_post_id
from bot.outbound.handoffs import parse_handoff
from bot.wecom import safejson
from bot.wecom.webhook import PayloadError
from qunzhu.config import SHANGHAI
from qunzhu.redisconn import REDIS_DOWN, REDIS_DOWN_OR_SLOW

log = logging.getLogger(__name__)
MAX_API_BODY = 256 * 1024
REDIS_WAIT_S = 2.0  # how long a post waits on Redis before it is spooled instead


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def enqueue(app: web.Application, post: Post, idem: str,
                  post_id: str = "") -> tuple[str, bool]:
    """Queue a post in the outbox (also used by the bridge's own welcome/handoff/replies)."""
    return await app[appkeys.STORE].enqueue(post.group, post.fields(), idem,
                                            app[appkeys.CLOCK].now(), post_id=post_id)


def _accepted(post_id: str, duplicate: bool, state: str = "queued") -> web.Response:
    return web.json_response({"id": post_id, "status_url": f"/api/messages/{post_id}",
                              "duplicate": duplicate, "state": state}, status=202)


async def _spool_post(app: web.Application, spool: Spool, post: Post, idem: str,
                      post_id: str) -> web.Response:
    """202 once the post is fsynced to the spool; 503 if the spool is full."""
    record = spooled.post_record(post_id, post.group, post.fields(), idem,
                                 app[appkeys.CLOCK].now())
    try:
        await spool.put(record)
    except SpoolFull as exc:
        log.error("post refused: %s", exc)
        return _problem(503, "queue unavailable and the spool is full, retry")
    return _accepted(post_id, False, "spooled")


async def _held_back(app: web.Application, group: str, idem: str,
                     kind: Kind) -> web.Response | None:
    """The anti-spam budget's refusal of a post, or None to go on.

    Without an idempotency key every request counts; with one, asking again is free.
    While Redis is down the budget cannot be asked: a reaction (a member is waiting for it)
    goes on to the disk spool uncounted; anything else gets 503, and the caller retries.
    """
    now = datetime.fromtimestamp(app[appkeys.CLOCK].now(), SHANGHAI)
    key = idem or f"api:{new_post_id()}"
    try:
        verdict = await asyncio.wait_for(
            app[appkeys.GATE].allow(group, key, kind, now), REDIS_WAIT_S)
    except REDIS_DOWN_OR_SLOW:
        if kind == "reaction":
            return None
        return _problem(503, "the anti-spam budget is unavailable, retry")
    if verdict.sent:
        return None
    return web.json_response({
        "error": f"held back by the group's anti-spam budget ({verdict.reason})",
        "reason": verdict.reason,
        "retry_at": verdict.retry_at.isoformat() if verdict.retry_at else None}, status=429)


async def post_message(request: web.Request) -> web.Response:
    """Accept a post for a group: 202 + id once it is durably queued."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    group = request.match_info["group"]
    if request.app[appkeys.GROUPS]().robot(group) is None:
        return _problem(404, f"no robot is configured for group {group!r}")
    if request.content_length is not None and request.content_length > MAX_API_BODY:
        return _problem(413, "body too large")
    try:
        doc = safejson.loads(await request.read() or b"null")
    except safejson.JsonRefused as exc:
        return _problem(400, f"body must be JSON ({exc})")
    try:
        post, idem = parse_request(group, doc)
        kind = post_kind(doc)
    except PayloadError as exc:
        return _problem(400, str(exc))
    idem = request.headers.get("Idempotency-Key", "") or idem
    # The API's keys have a namespace of their own: a caller's key can never take the place
    # of the bridge's own posts (campaign:…, welcome:…) in the outbox.
    idem = f"api:{idem}" if idem else ""
    held = await _held_back(request.app, group, idem, kind)
    if held is not None:
        return held
    spool = request.app[appkeys.SPOOL]
    waiting = spool.find(f"idem:{idem}") if spool is not None and idem else None
    if waiting is not None:
        return _accepted(str(waiting["id"]), True, "spooled")
    # The id is chosen here, so a post that reached Redis after we gave up waiting and was
    # spooled as well is still one post (no idempotency key: the id is the key).
    post_id = new_post_id()
    if spool is not None and spool.pending:  # behind what waits, to keep the order
        return await _spool_post(request.app, spool, post, idem, post_id)
    try:
        post_id, new = await asyncio.wait_for(enqueue(request.app, post, idem, post_id),
                                              REDIS_WAIT_S)
    except REDIS_DOWN_OR_SLOW as exc:
        if spool is not None:
            log.warning("outbox unavailable (%s); spooling the post to disk",
                        type(exc).__name__)
            return await _spool_post(request.app, spool, post, idem, post_id)
        log.error("outbox unavailable: %s", type(exc).__name__)
        return _problem(503, "queue unavailable, retry")
    return _accepted(post_id, not new)


async def post_handoff(request: web.Request) -> web.Response:
    """Accept a member's request for a person: 202 once durable, once per Idempotency-Key."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    if request.content_length is not None and request.content_length > MAX_API_BODY:
        return _problem(413, "body too large")
    idem = request.headers.get("Idempotency-Key", "")
    if not idem or len(idem) > 200:
        return _problem(400, "Idempotency-Key (the member's message, at most 200 characters) "
                             "is required")
    try:
        handoff = parse_handoff(safejson.loads(await request.read() or b"null"))
    except safejson.JsonRefused as exc:
        return _problem(400, f"body must be JSON ({exc})")
    except PayloadError as exc:
        return _problem(400, str(exc))
    fields = handoff.fields()
    spool = request.app[appkeys.SPOOL]
    if spool is not None and spool.find(f"handoff:{idem}") is not None:
        return web.json_response({"duplicate": True, "state": "spooled"}, status=202)
    if spool is None or not spool.pending:
        try:
            entry_id, new = await asyncio.wait_for(
                request.app[appkeys.STORE].add_handoff(idem, fields), REDIS_WAIT_S)
            return web.json_response({"id": entry_id, "duplicate": not new,
                                      "state": "queued"}, status=202)
        except REDIS_DOWN_OR_SLOW as exc:
            if spool is None:
                log.error("handoff queue unavailable: %s", type(exc).__name__)
                return _problem(503, "queue unavailable, retry")
            log.warning("handoff queue unavailable (%s); spooling to disk", type(exc).__name__)
    try:
        await spool.put(spooled.handoff_record(idem, fields))
    except SpoolFull as exc:
        log.error("handoff refused: %s", exc)
        return _problem(503, "queue unavailable and the spool is full, retry")
    return web.json_response({"duplicate": False, "state": "spooled"}, status=202)


async def message_status(request: web.Request) -> web.Response:
    """Where a post is: queued, sent, digested (merged into a digest) or dead."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    spool = request.app[appkeys.SPOOL]
    if spool is not None and spool.find(f"post:{request.match_info['post_id']}") is not None:
        return web.json_response({"id": request.match_info["post_id"], "state": "spooled"})
    try:
        status = await request.app[appkeys.STORE].status(request.match_info["post_id"])
    except REDIS_DOWN:
        return _problem(503, "status unavailable, retry")
    if not status:
        return _problem(404, "no such post (or it is older than 7 days)")
    return web.json_response({"id": request.match_info["post_id"], **status})


async def metrics(request: web.Request) -> web.Response:
    """Counters and queue depths for operators."""
    if not authorised(request):
        return _problem(401, "missing or wrong bearer token")
    store = request.app[appkeys.STORE]
    try:
        counters = await store.metrics()
        depths = await store.queue_depths()
    except REDIS_DOWN:
        return _problem(503, "metrics unavailable, retry")
    return web.json_response({"counters": counters, "queues": depths,
                              "spool": spool_state(request.app),
                              "config": config_state(request.app)})


def spool_state(app: web.Application) -> dict[str, int]:
    """What waits on disk for Redis, and what the spool did since this process started."""
    spool = app[appkeys.SPOOL]
    if spool is None:
        return {}
    return {"records": spool.pending_records, "bytes": spool.pending_bytes,
            "spooled": spool.stats.spooled, "drained": spool.stats.drained,
            "refused_full": spool.stats.refused_full}


def config_state(app: web.Application) -> dict[str, str]:
    """Each operator file: "ok", or its error while the last good version serves."""
    problems = {p.name: p.message for p in app[appkeys.CONFIG_WATCH].problems()}
    return {name: problems.get(name, "ok") for name in ("brand", "games", "groups", "campaigns",
                                                     "customer_groups")}


async def health(request: web.Request) -> web.Response:
    """Liveness, whether Redis answers, and "degraded" while an operator file is invalid
    or Redis is down but the disk spool takes callbacks and posts.

    A degraded bridge still serves (with the last good configuration, or onto the spool), so
    it answers 200: an orchestrator must not restart it for an operator's typo or take it
    out of service while it is the one keeping members' messages.
    """
    problems = request.app[appkeys.CONFIG_WATCH].problems()
    config = {p.name: p.message for p in problems}
    try:
        await request.app[appkeys.REDIS].ping()
    except REDIS_DOWN:
        if request.app[appkeys.SPOOL] is not None:  # still accepting, onto the disk spool
            return web.json_response({"ok": True, "status": "degraded", "redis": False,
                                      "spool": spool_state(request.app),
                                      "config_errors": config})
        return web.json_response({"ok": False, "status": "down", "redis": False,
                                  "spool": spool_state(request.app),
                                  "config_errors": config}, status=503)
    return web.json_response({"ok": True, "status": "degraded" if problems else "ok",
                              "redis": True, "spool": spool_state(request.app),
                              "config_errors": config})


def add_routes(app: web.Application) -> None:
    """Mount the API."""
    app.router.add_post("/api/groups/{group}/messages", post_message)
    app.router.add_get("/api/messages/{post_id}", message_status)
    app.router.add_post("/api/handoffs", post_handoff)
    app.router.add_get("/api/metrics", metrics)
    app.router.add_get("/healthz", health)
