"""An outage is logged when it starts, once a minute while it lasts, and when it ends."""

from __future__ import annotations

import logging

import pytest

from bot.common.outage import OutageLog


def test_a_two_minute_outage_is_four_lines_not_hundreds(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    outage = OutageLog("reading the inbox", logging.getLogger("qz.test.outage"),
                       clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "qz.test.outage"):
        for second in range(121):  # a retry every second
            now[0] = float(second)
            outage.failed(ConnectionError("refused"))
        now[0] = 121.0
        outage.ok()
        outage.ok()  # working again: nothing more to say
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "reading the inbox paused (ConnectionError); retrying",
        "reading the inbox still paused after 60 s (ConnectionError)",
        "reading the inbox still paused after 120 s (ConnectionError)",
        "reading the inbox resumed after 121 s",
    ]
    assert not outage.down
