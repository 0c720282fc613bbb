"""The FAQ selector asks Rasa's ResponseSelector only about messages classified as `faq`."""

from __future__ import annotations

import pytest
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.training_data.message import Message

from qunzhu.plugins.faq_selector import FaqResponseSelector


def message(text: str, intent: str | None) -> Message:
    data: dict[str, object] = {"text": text}
    if intent:
        data["intent"] = {"name": intent, "confidence": 0.9}
    return Message(data=data)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Texts Rasa's own ResponseSelector.process was given; it marks each as selected."""
    seen: list[str] = []

    def rasa_process(self: ResponseSelector, messages: list[Message]) -> list[Message]:
        for m in messages:
            seen.append(m.get("text"))
            m.set("response_selector", {"faq": {"response": {"intent_response_key": "faq/x"}}})
        return messages

    monkeypatch.setattr(ResponseSelector, "process", rasa_process)
    return seen


def selector(retrieval_intent: str | None) -> FaqResponseSelector:
    component = FaqResponseSelector.__new__(FaqResponseSelector)
    component.retrieval_intent = retrieval_intent
    return component


def test_only_faq_messages_reach_the_selector_and_all_come_back(asked: list[str]) -> None:
    messages = [message("几点开门", "faq"), message("打卡", "checkin"), message("？", None)]
    out = selector("faq").process(messages)
    assert out == messages  # same messages, same order
    assert asked == ["几点开门"]
    assert out[0].get("response_selector") and out[1].get("response_selector") is None


def test_a_selector_for_every_retrieval_intent_is_always_asked(asked: list[str]) -> None:
    selector(None).process([message("几点开门", "faq"), message("打卡", "checkin")])
    assert asked == ["几点开门", "打卡"]
