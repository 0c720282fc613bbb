"""The compiled action-response validator agrees with Rasa's own."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

import qunzhu.nlu  # noqa: F401  (installs the speed-up, as in the Rasa server)
from qunzhu import rasa_speedups

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


def test_installed_once_when_the_nlu_component_is_imported() -> None:
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
