"""Rasa's event broker, turned into one TURN analytics event per member message.

Rasa publishes every tracker event of a turn when its tracker store saves the conversation
(`TrackerStore.stream_events`). This broker keeps, per conversation, the member's message
(intent, confidence, words, and the WeCom ids the bridge sent as metadata) and the bot's
first reply, and on the `action_listen` that ends the turn appends one event to the brand's
streams (`qunzhu.events`). The eid is the WeCom msgid, so a turn the bridge asks again (a
retry while the message is fresh) is counted once. `publish` runs on Rasa's event loop: one
XADD with a short timeout per turn, and nothing here ever raises into Rasa.

Configured in endpoints.yml as `event_broker: type: qunzhu.plugins.events_broker.TurnEventBroker`
with the tracker store's Redis address; QZ_REDIS_CLUSTER=1 talks to a Redis Cluster.
"""

from __future__ import annotations

import logging
from asyncio import AbstractEventLoop
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from qunzhu.config import brand_file, load_brand
from qunzhu.events import Event, Kind, clip, emit_sync
from qunzhu.liveconfig import LiveFile
from qunzhu.redisconn import SyncRedis, cluster_mode, sync_client

log = logging.getLogger(__name__)

ACTION_LISTEN = "action_listen"
FALLBACK_INTENT = "nlu_fallback"  # FallbackClassifier's verdict (config.yml)
# What the project answers a message it did not understand with: config.yml's core fallback
# and data/rules/service.yml's nlu_fallback rule run action_fallback, which says utter_default
# (or offers a person); Rasa's own default fallback, in case a policy still predicts it.
FALLBACK_ACTIONS = frozenset({"action_fallback", "action_default_fallback"})
FALLBACK_RESPONSES = frozenset({"utter_default", "utter_offer_human"})
MAX_PENDING = 10_000  # conversations whose turn is under way; a turn lasts one save
SOCKET_TIMEOUT_S = 0.25  # publish blocks Rasa's event loop: never wait long for analytics


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass
class PendingTurn:
    """A member's message whose turn has not ended yet."""

    eid: str
    group: str
    user: str
    at: float
    intent: str
    confidence: float
    text: str
    fallback: bool
    closest: str = ""  # what the model would have said, fallback aside (faq/<key> for FAQs)
    closest_confidence: float = 0.0
    answer: str = ""

    def heard(self, event: dict[str, Any]) -> None:
        """Note a bot reply or an action of this turn (the first reply is the answer)."""
        kind = event.get("event")
        if kind == "bot":
            if not self.answer and _text(event.get("text")):
                self.answer = clip(_text(event.get("text")))
            meta = event.get("metadata")
            utter = meta.get("utter_action") if isinstance(meta, dict) else None
            self.fallback = self.fallback or utter in FALLBACK_RESPONSES
        elif kind == "action" and event.get("name") in FALLBACK_ACTIONS:
            self.fallback = True

    def event(self) -> Event:
        """The TURN event of this message."""
        return Event(Kind.TURN, self.eid, self.group, self.user, self.at,
                     {"intent": self.intent, "confidence": self.confidence,
                      "fallback": self.fallback, "text": self.text, "answer": self.answer,
                      "closest": self.closest, "closest_confidence": self.closest_confidence})


def closest_intent(parse_data: Any) -> tuple[str, float]:
    """The model's best guess other than "I don't know" (the FAQ's own key for an FAQ), so
    the console can say which intent an unanswered question came closest to."""
    if not isinstance(parse_data, dict):
        return "", 0.0
    ranking = parse_data.get("intent_ranking")
    for entry in ranking if isinstance(ranking, list) else []:
        name = _text(entry.get("name")) if isinstance(entry, dict) else ""
        if name and name != FALLBACK_INTENT:
            confidence = entry.get("confidence")
            score = float(confidence) if isinstance(confidence, (int, float)) else 0.0
            selector = parse_data.get("response_selector")
            if name == "faq" and isinstance(selector, dict):
                chosen = (selector.get("faq") or {}).get("response") or {}
                key = _text(chosen.get("intent_response_key"))
                return (key or name), score
            return name, score
    return "", 0.0


def _metadata(event: dict[str, Any]) -> dict[str, Any]:
    """The metadata the channel sent with the message (the bridge: msgid, chatid, userid)."""
    meta = event.get("metadata")
    if not isinstance(meta, dict) or not meta:
        parse_data = event.get("parse_data")
        meta = parse_data.get("metadata") if isinstance(parse_data, dict) else None
    return meta if isinstance(meta, dict) else {}


def _where(sender_id: str, meta: dict[str, Any]) -> tuple[str, str]:
    """(group, member) from the metadata, else from a "<chatid>:<userid>" conversation id."""
    chat_part, sep, user_part = sender_id.rpartition(":")
    user = _text(meta.get("userid")).strip() or (user_part if sep else sender_id)
    group = _text(meta.get("chatid")).strip() or (chat_part if sep else "")
    if _text(meta.get("chattype")).strip() == "single":
        group = ""
    return group, user


def pending_turn(sender_id: str, event: dict[str, Any]) -> PendingTurn:
    """Start a turn from a `user` event as Rasa serialises it."""
    meta = _metadata(event)
    stamp = event.get("timestamp")
    at = float(stamp) if isinstance(stamp, (int, float)) else 0.0
    msgid = _text(meta.get("msgid")).strip()
    parse_data = event.get("parse_data")
    intent = parse_data.get("intent") if isinstance(parse_data, dict) else None
    intent = intent if isinstance(intent, dict) else {}
    name = _text(intent.get("name"))
    confidence = intent.get("confidence")
    group, user = _where(sender_id, meta)
    closest, closest_confidence = closest_intent(parse_data)
    return PendingTurn(
        eid=f"turn:{msgid}" if msgid else f"turn:{sender_id}:{at:.6f}",
        group=group, user=user, at=at, intent=name,
        confidence=float(confidence) if isinstance(confidence, (int, float)) else 0.0,
        text=clip(_text(event.get("text"))), fallback=name == FALLBACK_INTENT,
        closest=closest, closest_confidence=closest_confidence)


class Turns:
    """Folds Rasa's stream of tracker events into finished turns, per conversation."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._pending: OrderedDict[str, PendingTurn] = OrderedDict()
        self._max = max(1, max_pending)

    def __len__(self) -> int:
        """Turns under way (bounded by max_pending)."""
        return len(self._pending)

    def feed(self, event: dict[str, Any]) -> Event | None:
        """The TURN event this tracker event finishes, if it finishes one."""
        sender_id = _text(event.get("sender_id"))
        kind = event.get("event")
        if kind == "user":
            # A turn that never reached action_listen (the action limit) still happened.
            unfinished = self._pending.pop(sender_id, None)
            self._pending[sender_id] = pending_turn(sender_id, event)
            while len(self._pending) > self._max:
                dropped, _turn = self._pending.popitem(last=False)
                log.warning("turn of %s dropped: more than %d turns under way", dropped,
                            self._max)
            return None if unfinished is None else unfinished.event()
        turn = self._pending.get(sender_id)
        if turn is None:
            return None
        if kind == "action" and event.get("name") == ACTION_LISTEN:
            del self._pending[sender_id]
            return turn.event()
        turn.heard(event)
        return None


def redis_url(config: EndpointConfig) -> str:
    """The Redis the tracker store uses, as a URL (endpoints.yml gives its parts)."""
    kwargs = config.kwargs
    scheme = "rediss" if str(kwargs.get("use_ssl", "")).lower() in ("1", "true") else "redis"
    password = str(kwargs.get("password") or "")
    auth = f":{quote(password, safe='')}@" if password else ""
    db = "" if cluster_mode() else f"/{int(kwargs.get('db') or 0)}"
    return f"{scheme}://{auth}{config.url or '127.0.0.1'}:{int(kwargs.get('port') or 6379)}{db}"


def configured_brand() -> str:
    """brand.yml's id, or its last good copy's while an operator's edit has broken the file."""
    return LiveFile("brand", brand_file(), load_brand).value.id


class TurnEventBroker(EventBroker):
    """Rasa's tracker events in, one TURN analytics event per member message out."""

    def __init__(self, client: SyncRedis, brand: str, max_pending: int = MAX_PENDING) -> None:
        """Emit into `brand`'s event streams on `client`."""
        self._r = client
        self._brand = brand
        self._turns = Turns(max_pending)

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None,
    ) -> TurnEventBroker:
        """From endpoints.yml: `url`, `port`, `db`, `password` (and `brand`, else brand.yml's)."""
        client = sync_client(redis_url(broker_config), socket_timeout=SOCKET_TIMEOUT_S,
                             socket_connect_timeout=SOCKET_TIMEOUT_S)
        brand = str(broker_config.kwargs.get("brand") or configured_brand())
        return cls(client, brand)

    def publish(self, event: dict[str, Any]) -> None:
        """Fold one tracker event in; at the end of a turn, one XADD. Never raises."""
        try:
            finished = self._turns.feed(event)
            if finished is not None:
                emit_sync(self._r, self._brand, finished)
        except Exception:  # analytics must never cost a member the reply
            log.exception("tracker event not folded into a turn")

    def is_ready(self) -> bool:
        """Always: while Redis is away, turns go uncounted rather than Rasa waiting."""
        return True

    async def close(self) -> None:
        """Close the Redis connections."""
        self._r.close()
