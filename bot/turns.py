"""The background half of a callback: one Rasa turn per accepted message, one reply.

Inbox entries are read with a consumer group. A turn's replies are saved before the
reply is sent and the reply is marked once sent, so an entry reclaimed after a crash
neither runs Rasa again nor replies twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from bot import rasa_client
from bot.clock import Clock
from bot.names import NameResolver
from bot.newcomers import Newcomers
from bot.outbox import Post
from bot.store import INBOX, WORKERS, BridgeStore, Entry, entries
from bot.texts import Texts
from bot.wecom.api import WeComApi, WeComApiError
from qunzhu.textnorm import strip_invisible, strip_mentions

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000
RETRY_FIRST_S = 1.0  # a failed turn is asked again after 1, 2, 4, 8, 8 … seconds
RETRY_MAX_S = 8.0
Touch = Callable[[], Awaitable[None]]


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def canned_reply(msgtype: str) -> str:
    """The bridge's own answer to a message with no words: a bare @mention or a real image."""
    return "utter_bridge_hello" if msgtype == "text" else "utter_bridge_text_only"


def clean_text(text: str, bot_names: tuple[str, ...]) -> str:
    """What Rasa gets: the member's words without the @bot mention or invisible characters."""
    return strip_mentions(strip_invisible(text), bot_names).strip()[:MAX_TEXT_CHARS]


class TurnWorker:
    """Processes inbox entries: Rasa turns, replies, welcomes."""

    def __init__(
        self,
        store: BridgeStore,
        session: aiohttp.ClientSession,
        api: WeComApi,
        texts: Texts,
        newcomers: Newcomers,
        clock: Clock,
        *,
        rasa_url: str,
        rasa_timeout_s: float,
        consumer: str,
        concurrency: int,
        bot_names: Callable[[], tuple[str, ...]],
        reclaim_idle_ms: int,
        turn_ttl_s: int,
        post: Any,
        names: NameResolver,
        fresh_s: float = 90.0,
    ) -> None:
        self._store = store
        self._session = session
        self._api = api
        self._texts = texts
        self._newcomers = newcomers
        self._clock = clock
        self._rasa = rasa_client.RasaReplicas.parse(rasa_url)
        self._rasa_timeout_s = rasa_timeout_s
        self._consumer = consumer
        self._sem = asyncio.Semaphore(concurrency)
        self._bot_names = bot_names
        self._reclaim_idle_ms = reclaim_idle_ms
        self._turn_ttl_s = turn_ttl_s
        self._post = post  # async (Post, idem) -> post id: the outbox
        self._names = names
        self._fresh_s = fresh_s  # how long a failed turn is retried before the busy reply
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_progress: set[str] = set()  # entry ids this process is working on
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Reclaim what a crashed worker left, then process new entries until stopped."""
        await self._store.ensure_group_patiently(INBOX, WORKERS)
        reclaim_every = max(1.0, self._reclaim_idle_ms / 3000)
        last_reclaim = -1e9
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                if loop.time() - last_reclaim >= reclaim_every:
                    last_reclaim = loop.time()
                    await self._reclaim()
                rows = await self._store.r.xreadgroup(
                    WORKERS, self._consumer, {INBOX: ">"}, count=64, block=500
                )
            except (RedisError, OSError) as exc:
                log.warning("inbox read failed (%s); retrying", type(exc).__name__)
                await self._store.recover_group(INBOX, WORKERS, exc)
                await asyncio.sleep(1)
                continue
            for _stream, rows_of_stream in rows or []:
                for entry in entries(rows_of_stream):
                    await self._sem.acquire()
                    self._spawn(entry)

    def stop(self) -> None:
        """Stop reading; entries in progress finish or stay pending for a reclaim."""
        self._stopping.set()

    async def drain(self) -> None:
        """Wait for turns in progress (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, entry: Entry) -> None:
        self._in_progress.add(entry.id)
        task = asyncio.create_task(self._process(entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self._in_progress.discard(entry.id))

    async def _reclaim(self) -> None:
        start = "0-0"
        while True:
            reply = await self._store.r.xautoclaim(
                INBOX, WORKERS, self._consumer, self._reclaim_idle_ms, start_id=start, count=64
            )
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            for entry in entries(reply[1]):
                if not entry.fields:
                    await self._store.r.xack(INBOX, WORKERS, entry.id)
                    continue
                if entry.id in self._in_progress:
                    continue  # ours, still being retried: not a dead worker's
                await self._sem.acquire()
                self._spawn(entry)
            if start == "0-0":
                return

    async def _process(self, entry: Entry) -> None:
        try:
            kind = entry.fields.get("kind", "")
            payload = json.loads(entry.fields.get("payload", "{}"))
            dedupe = entry.fields.get("dedupe", entry.id)
            received = _float(entry.fields.get("received_at"), self._clock.now())

            async def still_mine() -> None:
                """While retrying, keep the entry from looking idle (or it is reclaimed)."""
                await self._store.r.xclaim(INBOX, WORKERS, self._consumer, 0, [entry.id],
                                           justid=True)

            if kind == "aibot_message":
                await self._aibot_message(dedupe, payload, received, still_mine)
            elif kind == "app_message":
                await self._app_message(dedupe, payload, received, still_mine)
            elif kind == "app_event":
                await self._app_event(payload)
            async with self._store.r.pipeline(transaction=True) as pipe:
                pipe.xack(INBOX, WORKERS, entry.id)
                pipe.xdel(INBOX, entry.id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Left pending: a reclaim retries it once Redis is back.
            log.warning("turn %s postponed: %s", entry.id, type(exc).__name__)
        except Exception:  # a bug must not kill the worker loop; the entry stays pending
            log.exception("turn %s failed", entry.id)
        finally:
            self._sem.release()

    # ------------------------------------------------------------------ kinds
    async def _replies_for(
        self, dedupe: str, conversation_id: str, text: str, metadata: dict[str, str],
        msgtype: str, received: float, still_mine: Touch,
    ) -> tuple[list[str], bool]:
        """The turn's reply texts (from Rasa, or saved by an earlier attempt); replied yet?"""
        saved = await self._store.turn_result(dedupe)
        if "replies" in saved:
            return list(json.loads(saved["replies"])), saved.get("replied") == "1"
        if not text:
            texts = [self._texts.say(canned_reply(msgtype))]
        else:
            answered = await self._ask_rasa(conversation_id, text, metadata, received,
                                            still_mine)
            if answered is None:
                await self._store.incr("rasa_failures")
                texts = [self._texts.say("utter_busy")]
            else:
                texts = answered
        await self._store.save_turn(dedupe, texts, self._turn_ttl_s)
        return texts, False

    async def _ask_rasa(self, conversation_id: str, text: str, metadata: dict[str, str],
                        received: float, still_mine: Touch) -> list[str] | None:
        """Rasa's replies, retried while the message is fresh; None when it never answered.

        Every intent leads to an action that says something, so an empty answer is a
        failure too: Rasa answers 200 with nothing when the action server is down ("the
        actions events are lost"). Game actions are idempotent on the member's message, so
        asking again cannot pay twice.
        """
        delay = RETRY_FIRST_S
        while True:
            try:
                replies = await rasa_client.turn(
                    self._session, self._rasa, conversation_id, text, metadata,
                    self._rasa_timeout_s,
                )
                texts = rasa_client.reply_texts(replies)
                if texts:
                    await self._store.incr("rasa_turns")
                    return texts
                await self._store.incr("rasa_empty_turns")
                why = "an empty answer (actions unavailable?)"
            except rasa_client.RasaUnavailable as exc:
                await self._store.incr("rasa_unavailable")
                why = str(exc)
            if self._clock.now() + delay > received + self._fresh_s:
                log.warning("turn for a member failed (%s); answering busy", why)
                return None
            log.info("turn for a member failed (%s); retrying in %.0f s", why, delay)
            await self._store.incr("turn_retries")
            await still_mine()
            await self._clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _aibot_message(self, dedupe: str, msg: dict[str, Any], received: float,
                             still_mine: Touch) -> None:
        text = clean_text(str(msg.get("text", "")), self._bot_names())
        chatid, userid = str(msg.get("chatid", "")), str(msg.get("userid", ""))
        conversation_id = f"{chatid}:{userid}" if chatid else userid
        metadata = {"msgid": str(msg.get("msgid", "")), "chatid": chatid, "userid": userid,
                    "chattype": str(msg.get("chattype", ""))}
        await self._names.note(chatid, userid)
        texts, replied = await self._replies_for(dedupe, conversation_id, text, metadata,
                                                 str(msg.get("msgtype", "")), received,
                                                 still_mine)
        if replied or not texts:
            return
        in_group = msg.get("chattype") == "group"
        body = "\n\n".join(texts)
        content = f"<@{userid}> {body}" if in_group else body
        errcode = -2
        if msg.get("response_url"):
            errcode = await self._api.respond(
                str(msg["response_url"]), {"msgtype": "markdown", "markdown": {"content": content}}
            )
        if errcode != 0:
            await self._store.incr("reply_url_failures")
            if in_group:  # the response_url is spent or expired: say it in the group instead
                await self._post(Post(chatid, "markdown", body, (userid,)), f"reply:{dedupe}")
        await self._store.mark_replied(dedupe)
        await self._store.incr("replies")

    async def _app_message(self, dedupe: str, msg: dict[str, Any], received: float,
                           still_mine: Touch) -> None:
        userid = str(msg.get("userid", ""))
        text = clean_text(str(msg.get("text", "")), self._bot_names())
        metadata = {"msgid": str(msg.get("msgid", "")), "chatid": "", "userid": userid,
                    "chattype": "single"}
        texts, replied = await self._replies_for(dedupe, userid, text, metadata,
                                                 str(msg.get("msgtype", "")), received,
                                                 still_mine)
        if replied or not texts:
            return
        with contextlib.suppress(WeComApiError):
            await self._api.send_text(str(msg.get("agent_id", "")), userid, "\n\n".join(texts))
        await self._store.mark_replied(dedupe)

    async def _app_event(self, event: dict[str, Any]) -> None:
        if (event.get("event") == "change_external_chat" and event.get("change_type") == "update"
                and event.get("update_detail") == "add_member"):
            await self._newcomers.welcome(
                str(event.get("chat_id", "")), int(event.get("create_time") or 0),
                int(event.get("member_change_count") or 0),
            )
