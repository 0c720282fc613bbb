"""Groups file validation with file:line errors, and secrets kept out of logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.common.groups import load_directory
from bot.common.logsafe import RedactSecrets
from qunzhu.yamlconfig import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_groups_file_names_its_key_variables(tmp_path: Path) -> None:
    empty = load_directory(ROOT / "data" / "groups.yml", env={})
    assert empty.robots == {} and len(empty.unkeyed) == 2
    keyed = load_directory(ROOT / "data" / "groups.yml", env={
        "QZ_SANDBOX_WEBHOOK_KEY": "k" * 32, "QZ_SANDBOX_STAFF_WEBHOOK_KEY": "s" * 32})
    robot = keyed.robot("sandbox")
    assert robot is not None and robot.welcome_newcomers and keyed.staff_chatid == "staff"
    assert "k" * 32 not in repr(robot)


@pytest.mark.parametrize(("body", "needle"), [
    ("groups:\n  - chatid: a\n    webhook_key: x\n    webhook_key_env: Y\n", ":2: groups[0]"),
    ("groups:\n  - chatid: a\n    name: no key\n", ":2: groups[0]"),
    ("groups:\n  - chatid: a\n    webhook_key: x\n    colour: red\n", ":4: groups[0].colour"),
    ("groups:\n  - {chatid: a, webhook_key: x}\n  - {chatid: a, webhook_key: y}\n",
     "appears twice"),
])
def test_bad_groups_file_names_file_line_and_field(tmp_path: Path, body: str,
                                                   needle: str) -> None:
    path = tmp_path / "groups.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_directory(path, env={})
    assert str(path) in str(info.value) and needle in str(info.value), str(info.value)


def test_redaction_filter_blanks_secrets_in_messages_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "webhook-key-0123456789"
    log = logging.getLogger("qz.test.redact")
    caplog.handler.addFilter(RedactSecrets([secret]))
    try:
        raise ValueError(f"failed posting to https://x/send?key={secret}")
    except ValueError:
        log.exception("send failed for %s", secret)
    assert secret not in caplog.text and "***" in caplog.text


def test_keys_learnt_from_a_reload_are_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    redact = RedactSecrets(["first-key-0123456789"])
    caplog.handler.addFilter(redact)
    redact.add(["added-later-key-0123456789", "short"])
    logging.getLogger("qz.test.redact").warning("posting with added-later-key-0123456789")
    assert "added-later-key" not in caplog.text and "***" in caplog.text
