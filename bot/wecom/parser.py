"""Typed callback messages from decrypted WeCom plaintext, with an unknown-message fallback.

The 智能机器人 speaks JSON (docs 100719/101031), the app callback XML (doc 96238). Only the
decrypted fields are trusted: for XML, the outer envelope's other fields are not signed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from bot.wecom import safejson
from bot.wecom.errors import ParseError


# ------------------------------------------------------------------ envelopes
def aibot_encrypt_field(body: bytes) -> str:
    """The `encrypt` field of a 智能机器人 POST body `{"encrypt": "..."}`."""
    try:
        doc = safejson.loads(body)
    except safejson.JsonRefused as exc:
        raise ParseError(f"body is {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("encrypt"), str):
        raise ParseError('body has no "encrypt" string')
    return str(doc["encrypt"])


def parse_xml(text: str | bytes) -> ET.Element:
    """Parse XML refusing DOCTYPE, entities and external references (XML bombs)."""
    try:
        root: ET.Element = safe_fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        return root
    except DefusedXmlException as exc:
        raise ParseError("XML with a DOCTYPE or entities is refused") from exc
    except ET.ParseError as exc:
        raise ParseError("body is not well-formed XML") from exc


def app_encrypt_field(body: bytes) -> str:
    """The `Encrypt` element of an app callback `<xml>…<Encrypt/></xml>` body."""
    root = parse_xml(body)
    node = root.find("Encrypt")
    if root.tag != "xml" or node is None or not (node.text or "").strip():
        raise ParseError("body has no <Encrypt> element")
    return (node.text or "").strip()


# ------------------------------------------------------------------ 智能机器人 (JSON)
@dataclass(frozen=True)
class AibotMessage:
    """A member's message to the 智能机器人, in a group or single chat."""

    msgid: str
    chattype: str
    chatid: str
    userid: str
    msgtype: str
    text: str
    response_url: str
    aibotid: str = ""
    quote: str = ""

    @property
    def dedupe_key(self) -> str:
        """WeCom retries carry the same msgid."""
        return f"aibot:{self.msgid}"

    @property
    def conversation_id(self) -> str:
        """`<chatid>:<userid>` in groups; the userid alone in a single chat."""
        return f"{self.chatid}:{self.userid}" if self.chatid else self.userid


@dataclass(frozen=True)
class AibotEvent:
    """A 智能机器人 event (enter_chat, template card clicks): acknowledged, not sent to Rasa."""

    msgid: str
    eventtype: str
    userid: str
    chatid: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def dedupe_key(self) -> str:
        """Events carry a msgid too."""
        return f"aibot:{self.msgid}"


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested JSON object, or an empty one when absent or of the wrong type."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _text_of(doc: dict[str, Any]) -> str:
    """The member's words from text, mixed (text items) or a voice transcript."""
    msgtype = doc.get("msgtype")
    if msgtype == "text":
        return str(_obj(doc, "text").get("content") or "")
    if msgtype == "voice":
        return str(_obj(doc, "voice").get("content") or "")
    if msgtype == "mixed":
        items = _obj(doc, "mixed").get("msg_item")
        parts = [
            str(_obj(item, "text").get("content") or "")
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and item.get("msgtype") == "text"
        ]
        return "".join(parts)
    return ""


def parse_aibot(plaintext: str) -> AibotMessage | AibotEvent:
    """Parse a decrypted 智能机器人 callback; no msgid is a parse error (nothing to dedupe on)."""
    try:
        doc = safejson.loads(plaintext)
    except safejson.JsonRefused as exc:
        raise ParseError(f"plaintext is {exc}") from None
    if not isinstance(doc, dict):
        raise ParseError("plaintext is not a JSON object")
    msgid = str(doc.get("msgid") or "")
    sender = _obj(doc, "from")
    userid = str(sender.get("userid") or "")
    if not msgid:
        raise ParseError("callback has no msgid")
    if doc.get("msgtype") == "event":
        event = _obj(doc, "event")
        return AibotEvent(
            msgid=msgid,
            eventtype=str(event.get("eventtype") or ""),
            userid=userid,
            chatid=str(doc.get("chatid") or ""),
            raw=doc,
        )
    if not userid:
        raise ParseError("message has no from.userid")
    quote = _obj(doc, "quote")
    return AibotMessage(
        msgid=msgid,
        chattype=str(doc.get("chattype") or "single"),
        chatid=str(doc.get("chatid") or ""),
        userid=userid,
        msgtype=str(doc.get("msgtype") or ""),
        text=_text_of(doc),
        response_url=str(doc.get("response_url") or ""),
        aibotid=str(doc.get("aibotid") or ""),
        quote=_text_of(quote) if quote else "",
    )


# ------------------------------------------------------------------ app callback (XML)
@dataclass(frozen=True)
class AppMessage:
    """A member's 1:1 message to the self-built app."""

    msgid: str
    userid: str
    msgtype: str
    text: str
    agent_id: str
    create_time: int

    @property
    def dedupe_key(self) -> str:
        """Messages dedupe on MsgId."""
        return f"app:{self.msgid}"


@dataclass(frozen=True)
class AppEvent:
    """An app event; `change_external_chat` carries the group and what changed."""

    event: str
    change_type: str
    from_user: str
    create_time: int
    chat_id: str = ""
    update_detail: str = ""
    member_change_count: int = 0
    fields: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def dedupe_key(self) -> str:
        """FromUserName + CreateTime + Event + ChangeType (+ the chat), never time alone."""
        return ":".join(
            [
                "app-event",
                self.from_user,
                str(self.create_time),
                self.event,
                self.change_type,
                self.chat_id,
                self.update_detail,
            ]
        )


def parse_app(plaintext: str) -> AppMessage | AppEvent:
    """Parse a decrypted app callback into a message or an event."""
    root = parse_xml(plaintext)
    fields = {child.tag: (child.text or "").strip() for child in root}
    msgtype = fields.get("MsgType", "")
    try:
        create_time = int(fields.get("CreateTime") or 0)
    except ValueError as exc:
        raise ParseError("CreateTime is not a number") from exc
    if msgtype == "event":
        try:
            count = int(fields.get("MemChangeCnt") or 0)
        except ValueError:
            count = 0
        return AppEvent(
            event=fields.get("Event", ""),
            change_type=fields.get("ChangeType", ""),
            from_user=fields.get("FromUserName", ""),
            create_time=create_time,
            chat_id=fields.get("ChatId", ""),
            update_detail=fields.get("UpdateDetail", ""),
            member_change_count=count,
            fields=fields,
        )
    msgid = fields.get("MsgId", "")
    if not msgid:
        raise ParseError("message has no MsgId")
    return AppMessage(
        msgid=msgid,
        userid=fields.get("FromUserName", ""),
        msgtype=msgtype,
        text=fields.get("Content", "") if msgtype == "text" else "",
        agent_id=fields.get("AgentID", ""),
        create_time=create_time,
    )
