"""Where the bridge sends turns: the published route when there is one, else RASA_URL.

Every turn asks the router, so it must not read Redis each time; a publish must still reach
every bridge within a second; and neither a missing, a malformed nor an unreadable route may
leave members without a Rasa. The route source here is a plain async function and the clock a
number the test moves, so each of those is checked exactly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis.exceptions

from bot.inbound.rasa_client import ROUTE_TTL_S, RasaReplicas, RasaRouter

DEFAULT = RasaReplicas.parse("http://127.0.0.1:5005")
SLOT_A = "http://127.0.0.1:5005"
SLOT_B = "http://127.0.0.1:5006"


class Clock:
    """A monotonic clock that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Route:
    """The route in Redis as the router reads it: a value, or an outage, and how often read."""

    def __init__(self, value: str = "") -> None:
        self.value = value
        self.error: BaseException | None = None
        self.reads = 0

    async def __call__(self) -> str:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.value


def router(route: Callable[[], Awaitable[str]] | None, clock: Clock) -> RasaRouter:
    return RasaRouter(DEFAULT, route, ttl_s=ROUTE_TTL_S, clock=clock)


def test_the_route_is_read_the_way_rasa_url_is() -> None:
    """What the registry stores (a slot's URL) parses as RASA_URL does; junk does not."""
    assert RasaReplicas.parse(SLOT_B).urls == (SLOT_B,)
    assert RasaReplicas.parse(f" {SLOT_A}/ , {SLOT_B}").urls == (SLOT_A, SLOT_B)
    for bad in ("", " ", "ftp://x", "127.0.0.1:5005", f"{SLOT_A},ftp://x"):
        with pytest.raises(ValueError):
            RasaReplicas.parse(bad)


async def test_without_a_route_source_turns_go_to_rasa_url() -> None:
    clock = Clock()
    plain = router(None, clock)
    assert await plain.replicas() is DEFAULT
    clock.advance(10)
    assert await plain.replicas() is DEFAULT


async def test_the_published_route_wins_over_rasa_url() -> None:
    clock, route = Clock(), Route(SLOT_B)
    assert (await router(route, clock).replicas()).urls == (SLOT_B,)


async def test_the_route_is_read_at_most_once_per_ttl() -> None:
    clock, route = Clock(), Route(SLOT_B)
    r = router(route, clock)
    for _ in range(50):
        assert (await r.replicas()).urls == (SLOT_B,)
        clock.advance(ROUTE_TTL_S / 100)
    assert route.reads == 1
    clock.advance(ROUTE_TTL_S)
    await r.replicas()
    await r.replicas()
    assert route.reads == 2


async def test_an_empty_route_means_rasa_url() -> None:
    clock, route = Clock(), Route("")
    assert await router(route, clock).replicas() is DEFAULT
    assert route.reads == 1


@pytest.mark.parametrize("junk", ["ftp://x", "127.0.0.1:5006", " ", f"{SLOT_B},ftp://x"])
async def test_a_route_that_is_not_a_url_means_rasa_url(junk: str) -> None:
    clock, route = Clock(), Route(junk)
    assert await router(route, clock).replicas() is DEFAULT


async def test_an_invalid_route_after_a_good_one_falls_back_to_rasa_url() -> None:
    clock, route = Clock(), Route(SLOT_B)
    r = router(route, clock)
    assert (await r.replicas()).urls == (SLOT_B,)
    route.value = "ftp://x"
    clock.advance(ROUTE_TTL_S)
    assert await r.replicas() is DEFAULT


@pytest.mark.parametrize("outage", [
    redis.exceptions.ConnectionError("Connection refused"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    ConnectionRefusedError(111, "Connection refused"),
])
async def test_redis_being_down_keeps_the_last_route_known(outage: BaseException) -> None:
    clock, route = Clock(), Route(SLOT_B)
    r = router(route, clock)
    assert (await r.replicas()).urls == (SLOT_B,)
    route.error = outage
    for _ in range(3):
        clock.advance(ROUTE_TTL_S)
        assert (await r.replicas()).urls == (SLOT_B,)
    assert route.reads == 4, "still asked once per ttl while down"
    route.error, route.value = None, SLOT_A
    clock.advance(ROUTE_TTL_S)
    assert (await r.replicas()).urls == (SLOT_A,), "Redis back: its route again"


async def test_redis_down_from_the_start_means_rasa_url() -> None:
    clock, route = Clock(), Route(SLOT_B)
    route.error = redis.exceptions.ConnectionError("Connection refused")
    assert await router(route, clock).replicas() is DEFAULT


async def test_a_publish_is_picked_up_once_the_ttl_has_passed() -> None:
    clock, route = Clock(), Route(SLOT_A)
    r = router(route, clock)
    assert (await r.replicas()).urls == (SLOT_A,)
    route.value = SLOT_B  # the publisher switched
    clock.advance(ROUTE_TTL_S / 2)
    assert (await r.replicas()).urls == (SLOT_A,), "within the ttl: the route read before"
    clock.advance(ROUTE_TTL_S / 2)
    assert (await r.replicas()).urls == (SLOT_B,)


async def test_a_reset_route_sends_turns_back_to_rasa_url() -> None:
    clock, route = Clock(), Route(SLOT_B)
    r = router(route, clock)
    assert (await r.replicas()).urls == (SLOT_B,)
    route.value = ""
    clock.advance(ROUTE_TTL_S)
    assert await r.replicas() is DEFAULT


async def test_other_failures_of_the_route_source_are_not_swallowed() -> None:
    """Only Redis being down is an outage to ride out; a bug should be seen."""
    clock, route = Clock(), Route(SLOT_B)
    route.error = KeyError("bug")
    with pytest.raises(KeyError):
        await router(route, clock).replicas()
