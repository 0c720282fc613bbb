"""The background half of a callback: one Rasa turn per accepted message, one reply.

Inbox entries are read through the one StreamConsumer. A turn's replies are saved before
the reply is sent and the reply is marked once sent, so an entry reclaimed after a crash
neither runs Rasa again nor replies twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from bot.common.clock import Clock
from bot.common.names import NameResolver
from bot.common.posts import Post, PostFn
from bot.common.store import INBOX, WORKERS, BridgeStore
from bot.common.streams import Entry
from bot.common.texts import Texts
from bot.inbound import inbox, rasa_client
from bot.inbound.newcomers import Newcomers
from bot.wecom.api import WeComApi, WeComApiError
from bot.wecom.parser import AibotMessage, AppEvent, AppMessage
from qunzhu.redisconn import REDIS_DOWN
from qunzhu.textnorm import strip_invisible, strip_mentions

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000
RETRY_FIRST_S = 1.0  # a failed turn is asked again after 1, 2, 4, 8, 8 … seconds
RETRY_MAX_S = 8.0


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
        rasa_route: Callable[[], Awaitable[str]] | None = None,
        consumer: str,
        concurrency: int,
        bot_names: Callable[[], tuple[str, ...]],
        reclaim_idle_ms: int,
        turn_ttl_s: int,
        post: PostFn,
        names: NameResolver,
        fresh_s: float = 90.0,
    ) -> None:
        self._store = store
        self._session = session
        self._api = api
        self._texts = texts
        self._newcomers = newcomers
        self._clock = clock
        self._rasa = rasa_client.RasaRouter(rasa_client.RasaReplicas.parse(rasa_url), rasa_route)
        self._rasa_timeout_s = rasa_timeout_s
        self._inbox = store.consumer(INBOX, WORKERS, consumer,
                                     reclaim_idle_ms=reclaim_idle_ms, read_count=64,
                                     block_ms=500)
        self._sem = asyncio.Semaphore(concurrency)
        self._bot_names = bot_names
        self._turn_ttl_s = turn_ttl_s
        self._post = post  # async (Post, idem) -> post id: the outbox
        self._names = names
        self._fresh_s = fresh_s  # how long a failed turn is retried before the busy reply
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Own pending turns first (a restart), a dead worker's by idle time, then new ones."""
        await self._inbox.run(self._start_turns, self._stopping)

    def stop(self) -> None:
        """Stop reading and cancel turns in progress: they stay pending and are reclaimed
        (their saved replies keep a reclaim from asking Rasa or replying again)."""
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()

    async def _start_turns(self, batch: list[Entry]) -> None:
        """Each entry becomes a task, at most `concurrency` at once (back-pressure)."""
        for entry in batch:
            await self._sem.acquire()
            task = asyncio.create_task(self._process(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process(self, entry: Entry) -> None:
        try:
            item = inbox.from_fields(entry.fields)
            if item is None:
                log.error("inbox entry %s of unknown kind %r dropped", entry.id,
                          entry.fields.get("kind"))
            elif isinstance(item.message, AibotMessage):
                await self._aibot_message(item.dedupe, item.message, item.received_at)
            elif isinstance(item.message, AppMessage):
                await self._app_message(item.dedupe, item.message, item.received_at)
            elif isinstance(item.message, AppEvent):
                await self._app_event(item.message)
            await self._inbox.ack(entry.id)
        except REDIS_DOWN as exc:
            # Left pending: a reclaim retries it once Redis is back.
            log.warning("turn %s postponed: %s", entry.id, type(exc).__name__)
            self._inbox.release(entry.id)
        except Exception:  # a bug must not kill the worker loop; the entry stays pending
            log.exception("turn %s failed", entry.id)
            self._inbox.release(entry.id)
        finally:
            self._sem.release()

    # ------------------------------------------------------------------ kinds
    async def _replies_for(
        self, dedupe: str, conversation_id: str, text: str, metadata: dict[str, str],
        msgtype: str, received: float,
    ) -> tuple[list[str], bool]:
        """The turn's reply texts (from Rasa, or saved by an earlier attempt); replied yet?"""
        saved = await self._store.turn_result(dedupe)
        if "replies" in saved:
            return list(json.loads(saved["replies"])), saved.get("replied") == "1"
        if not text:
            texts = [self._texts.say(canned_reply(msgtype))]
        else:
            answered = await self._ask_rasa(conversation_id, text, metadata, received)
            if answered is None:
                await self._store.incr("rasa_failures")
                texts = [self._texts.say("utter_busy")]
            else:
                texts = answered
        await self._store.save_turn(dedupe, texts, self._turn_ttl_s)
        return texts, False

    async def _ask_rasa(self, conversation_id: str, text: str, metadata: dict[str, str],
                        received: float) -> list[str] | None:
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
                    self._session, await self._rasa.replicas(), conversation_id, text, metadata,
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
            await self._store.incr("turn_retries")  # held: the heartbeat keeps it ours
            await self._clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _aibot_message(self, dedupe: str, msg: AibotMessage, received: float) -> None:
        text = clean_text(msg.text, self._bot_names())
        chatid, userid = msg.chatid, msg.userid
        metadata = {"msgid": msg.msgid, "chatid": chatid, "userid": userid,
                    "chattype": msg.chattype}
        await self._names.note(chatid, userid)
        texts, replied = await self._replies_for(dedupe, msg.conversation_id, text, metadata,
                                                 msg.msgtype, received)
        if replied or not texts:
            return
        in_group = msg.chattype == "group"
        body = "\n\n".join(texts)
        content = f"<@{userid}> {body}" if in_group else body
        errcode = -2
        if msg.response_url:
            errcode = await self._api.respond(
                msg.response_url, {"msgtype": "markdown", "markdown": {"content": content}}
            )
        if errcode != 0:
            await self._store.incr("reply_url_failures")
            if in_group:  # the response_url is spent or expired: say it in the group instead
                await self._post(Post(chatid, "markdown", body, (userid,)), f"reply:{dedupe}")
        await self._store.mark_replied(dedupe)
        await self._store.incr("replies")

    async def _app_message(self, dedupe: str, msg: AppMessage, received: float) -> None:
        text = clean_text(msg.text, self._bot_names())
        metadata = {"msgid": msg.msgid, "chatid": "", "userid": msg.userid,
                    "chattype": "single"}
        texts, replied = await self._replies_for(dedupe, msg.userid, text, metadata,
                                                 msg.msgtype, received)
        if replied or not texts:
            return
        with contextlib.suppress(WeComApiError):
            await self._api.send_text(msg.agent_id, msg.userid, "\n\n".join(texts))
        await self._store.mark_replied(dedupe)

    async def _app_event(self, event: AppEvent) -> None:
        if event.event != "change_external_chat" or event.change_type != "update":
            return
        if event.update_detail == "add_member":
            await self._newcomers.welcome(event.chat_id, event.create_time,
                                          event.member_change_count)
        elif event.update_detail == "del_member":
            await self._newcomers.farewell(event.chat_id, event.create_time)
