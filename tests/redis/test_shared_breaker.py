"""CircuitBreakers of one name on separate Redis connections behave as one breaker."""

from __future__ import annotations

import time

import pytest

from otelres.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerOpenError,
    RedisBreakerStorage,
    RedisConnection,
)
from otelres.resilience._breaker_state import BreakerTransition

pytestmark = pytest.mark.integration



def pair(conns: list[RedisConnection], name: str, **options: object) -> list[CircuitBreaker]:
    """Breaker *name* in two "processes" (the first two connections), state in Redis."""
    return [
        CircuitBreaker(name, storage=RedisBreakerStorage(name, conn), **options)  # type: ignore[arg-type]
        for conn in conns[:2]
    ]


def fail() -> None:
    raise ConnectionError("exchange down")


def test_a_full_cycle_is_shared(conns: list[RedisConnection]) -> None:
    """A trips it, B is rejected until the open period ends, B's probe closes it for A too."""
    a, b = pair(conns, "cycle", failure_threshold=2, reset_timeout=0.3)
    seen: list[BreakerTransition] = []
    b.add_listener(seen.append)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(fail)
    with pytest.raises(CircuitBreakerOpenError) as info:
        b.call(lambda: "ticker")
    assert info.value.retry_after is not None
    assert 0.1 < info.value.retry_after <= 0.3
    time.sleep(0.35)
    assert b.call(lambda: "ticker") == "ticker"  # the probe
    assert a.state is BreakerState.CLOSED
    assert a.call(lambda: "ticker") == "ticker"
    # B saw (and reports) the transitions it made itself: half-open, then closed.
    assert [(t.from_state, t.to_state) for t in seen] == [
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_failed_probe_reopens_for_longer_everywhere(conns: list[RedisConnection]) -> None:
    """A failed probe re-opens the breaker with the grown open period, which B reads."""
    a, b = pair(conns, "grow", failure_threshold=1, reset_timeout=0.2, reset_timeout_multiplier=4.0)
    with pytest.raises(ConnectionError):
        a.call(fail)
    time.sleep(0.25)
    with pytest.raises(ConnectionError):
        a.call(fail)  # the probe fails: open again, for 0.2 x 4 s
    with pytest.raises(CircuitBreakerOpenError) as info:
        b.call(lambda: None)
    assert info.value.retry_after is not None
    assert 0.6 < info.value.retry_after <= 0.8


def test_forcing_open_and_resetting_apply_to_every_process(conns: list[RedisConnection]) -> None:
    """force_open() in one process rejects everywhere; reset() anywhere lets calls through again."""
    a, b = pair(conns, "manual")
    a.force_open()
    with pytest.raises(CircuitBreakerOpenError) as info:
        b.call(lambda: None)
    assert info.value.state == "forced_open"
    assert info.value.retry_after is None
    b.reset()
    assert a.call(lambda: 1) == 1
    assert b.state is BreakerState.CLOSED


def test_a_success_anywhere_ends_the_run_of_failures(conns: list[RedisConnection]) -> None:
    """Failures are consecutive across processes: a success in B resets A's count."""
    a, b = pair(conns, "run", failure_threshold=3)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(fail)
    assert b.call(lambda: 1) == 1
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(fail)
    assert a.state is BreakerState.CLOSED  # 2 + 2 with a success between: never 3 in a row
    with pytest.raises(ConnectionError):
        b.call(fail)
    assert a.state is BreakerState.OPEN
