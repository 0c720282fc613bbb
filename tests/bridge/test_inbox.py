"""The inbox registry: every typed callback is stored and restored as itself."""

from __future__ import annotations

import json

import pytest

from bot.inbound.inbox import Callback, from_fields, to_fields
from bot.wecom.parser import AibotEvent, AibotMessage, AppEvent, AppMessage

MESSAGES: list[Callback] = [
    AibotMessage("m1", "group", "g1", "alice", "text", "@福利官 打卡", "http://r/1", "ab1"),
    AibotEvent("e1", "enter_chat", "alice", "g1", {"x": 1}),
    AppMessage("9001", "alice", "text", "我的积分", "1000002", 1_800_000_000),
    AppEvent("change_external_chat", "update", "sys", 1_800_000_000, "g1", "add_member", 2,
             {"JoinScene": "1"}),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_each_kind_comes_back_typed_and_equal(message: Callback) -> None:
    item = from_fields(to_fields(message, 1_800_000_000.5))
    assert item is not None and type(item.message) is type(message)
    assert item.message == message and item.dedupe == message.dedupe_key
    assert item.received_at == 1_800_000_000.5


def test_unknown_kinds_and_damaged_payloads_are_refused_not_guessed() -> None:
    fields = to_fields(MESSAGES[0], 1.0)
    assert from_fields({**fields, "kind": "voice_call"}) is None
    assert from_fields({**fields, "payload": "{not json"}) is None
    assert from_fields({**fields, "payload": "[1, 2]"}) is None
    assert from_fields({**fields, "payload": json.dumps({"msgid": "m1"})}) is None  # missing
    assert from_fields({**fields, "received_at": "soon"}) is None


def test_a_field_from_another_version_is_ignored() -> None:
    fields = to_fields(MESSAGES[0], 1.0)
    payload = {**json.loads(fields["payload"]), "added_later": "x"}
    item = from_fields({**fields, "payload": json.dumps(payload)})
    assert item is not None and item.message == MESSAGES[0]
