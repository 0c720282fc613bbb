"""The sandbox's simulated time: the simulator fast-forwards to the next campaign post, the
bridge's scheduler follows it, and nothing lets time run backwards or take bad input."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.common.clock import FollowedClock, VirtualClock
from bot.common.settings import sandbox_clock_url
from bot.simulator.simclock import SimClock
from qunzhu.campaigns import load_campaigns, next_due
from tests.bridge.conftest import Sim


async def call(sim: Sim, method: str, body: Any = None, raw: bytes | None = None
               ) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{sim.url}/sim/clock", json=body if raw is None else None,
            data=raw) as resp:
        return resp.status, await resp.json()


async def test_fast_forward_lands_just_before_the_sandbox_groups_next_post(sim: Sim) -> None:
    status, before = await call(sim, "GET")
    assert status == 200 and before["offset_s"] == 0
    now = datetime.fromisoformat(before["now"])
    campaign, due = next_due(load_campaigns(), "sandbox", [], now)  # type: ignore[misc]
    assert before["next"] == {"campaign": campaign.id, "name": campaign.name,
                              "due": due.isoformat()}

    status, after = await call(sim, "POST", {"to": "next_post"})
    assert status == 200
    landed = datetime.fromisoformat(after["now"])
    assert timedelta(seconds=3) <= due - landed <= timedelta(seconds=6), (due, landed)
    assert after["offset_s"] > 0


async def test_time_only_moves_forward_and_bad_requests_get_a_clear_400(sim: Sim) -> None:
    status, moved = await call(sim, "POST", {"advance_s": 3600})
    assert status == 200 and 3599 < moved["offset_s"] < 3601
    for body in ({"advance_s": -60}, {"advance_s": 0}, {"advance_s": "soon"},
                 {"advance_s": True}, {"advance_s": 10**9}, {"to": "yesterday"}):
        status, doc = await call(sim, "POST", body)
        assert status == 400 and "advance_s" in doc["error"], body
    assert await call(sim, "POST", []) == (400, {"error": "body must be a JSON object"})
    status, doc = await call(sim, "POST", raw=b"{not json")
    assert status == 400
    assert (await call(sim, "GET"))[1]["offset_s"] == moved["offset_s"], "nothing changed"


async def test_the_followed_clock_keeps_its_offset_when_the_simulator_is_away() -> None:
    base = VirtualClock(1_000.0)
    answers: list[float | Exception] = [120.0, ConnectionError("restarting"), 30.0]

    async def offset() -> float:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = FollowedClock(base, offset)
    await clock.sleep(1)
    assert clock.now() == 1_121.0
    await clock.sleep(1)
    assert clock.now() == 1_122.0, "the last offset holds while the simulator is away"
    await clock.sleep(1)
    assert clock.now() == 1_122.0, "a smaller offset never takes time backwards"


def test_the_bridge_follows_only_a_local_simulator() -> None:
    assert sandbox_clock_url("") == ""
    assert sandbox_clock_url("http://127.0.0.1:5090/sim/clock").endswith("/sim/clock")
    with pytest.raises(ValueError, match="local simulator"):
        sandbox_clock_url("https://example.com/sim/clock")


def test_a_restarted_simulator_goes_on_from_the_same_simulated_time(tmp_path: Path) -> None:
    keep = tmp_path / "data" / "sim-clock-offset"
    first = SimClock(keep)
    first.advance(7200)
    assert SimClock(keep).offset_s == 7200.0
    keep.write_text("not a number", encoding="utf-8")
    assert SimClock(keep).offset_s == 0.0, "a damaged file is real time, not a crash"
