"""The compiled action-response validator agrees with Rasa's own."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from qunzhu.plugins import speedups as rasa_speedups

rasa_speedups.install()  # as `python -m qunzhu.tools.rasacli` does before Rasa starts

VALID: list[dict[str, Any]] = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "handoff_offered", "value": True}],
     "responses": [{"response": "utter_checkin_done", "streak": 3, "points": 15}]},
    {"responses": [{"text": "你好", "buttons": [], "image": None, "custom": {}}]},
]
INVALID: list[dict[str, Any]] = [
    {"events": [{"name": "no event key"}]},
    {"events": "not a list"},
    {"responses": "not a list"},
]


def test_installing_twice_changes_nothing() -> None:
    assert RemoteAction._validate_action_result is rasa_speedups.validate_action_result
    rasa_speedups.install()
    assert RemoteAction._validate_action_result is rasa_speedups.validate_action_result


@pytest.mark.parametrize("result", VALID)
def test_valid_responses_pass_like_rasa(result: dict[str, Any]) -> None:
    jsonschema.validate(result, RemoteAction.action_response_format_spec())  # Rasa's way
    assert rasa_speedups.validate_action_result(RemoteAction.__new__(RemoteAction), result)


@pytest.mark.parametrize("result", INVALID)
def test_invalid_responses_fail_like_rasa(result: dict[str, Any]) -> None:
    spec = RemoteAction.action_response_format_spec()
    with pytest.raises(jsonschema.ValidationError) as theirs:
        jsonschema.validate(result, spec)
    with pytest.raises(jsonschema.ValidationError) as ours:
        rasa_speedups.validate_action_result(RemoteAction.__new__(RemoteAction), result)
    assert ours.value.message.startswith(theirs.value.message)
    assert "Failed to validate Action server response" in ours.value.message


def test_event_classes_resolve_as_rasa_resolves_them() -> None:
    from rasa.shared.core.events import ActionExecuted, Event, UserUttered
    from rasa.shared.utils.common import all_subclasses

    assert Event.resolve_by_type is rasa_speedups.resolve_by_type
    for cls in all_subclasses(Event):
        expected = rasa_speedups._rasa_resolve_by_type(cls.type_name)
        assert Event.resolve_by_type(cls.type_name) is expected
        assert Event.resolve_by_type(cls.type_name) is expected  # remembered
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", UserUttered) is UserUttered
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")
    assert "no_such_event" not in rasa_speedups._resolved
    restored = Event.from_parameters({"event": "action", "name": "action_listen", "timestamp": 1.0})
    assert isinstance(restored, ActionExecuted) and restored.action_name == "action_listen"
