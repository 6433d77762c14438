"""A sync call() given an async function is refused loudly, and no guard mistakes it for a failure."""

from __future__ import annotations

import warnings

import pytest

from otelres.resilience import (
    CircuitBreaker,
    Fallback,
    GuardMisuseError,
    Policy,
    RateLimiter,
    Retry,
    Timeout,
)
from otelres.testing import no_backoff


async def fetch() -> int:
    raise OSError("never reached: call() only creates the coroutine")


@pytest.mark.parametrize(
    "guard",
    [
        CircuitBreaker("misuse-breaker"),
        Retry("misuse-retry"),
        RateLimiter("misuse-limiter", rate=100),
        Timeout("misuse-timeout", 1.0),
    ],
    ids=lambda g: type(g).__name__,
)
def test_sync_call_of_an_async_function_is_refused(guard: object) -> None:
    """call(async_fn) raises GuardMisuseError (a TypeError) pointing to call_async, leaving no
    'never awaited' warning behind."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(GuardMisuseError, match="call_async"):
            guard.call(fetch)  # type: ignore[attr-defined]
    assert issubclass(GuardMisuseError, TypeError)


def test_the_breaker_counts_the_misuse_as_neither_success_nor_failure() -> None:
    """A refused call changes no success or failure count and never trips the breaker."""
    breaker = CircuitBreaker("misuse-count", failure_threshold=1)
    for _ in range(3):
        with pytest.raises(GuardMisuseError):
            breaker.call(fetch)
    metrics = breaker.get_state()["metrics"]
    assert (metrics["success_calls"], metrics["failure_calls"]) == (0, 0)
    assert breaker.get_state()["state"] == "closed"


def test_a_half_open_probe_permit_is_given_back() -> None:
    """A misused probe call returns its permit, so the next real call can still probe."""
    from otelres.testing import FakeClock

    clock = FakeClock()
    breaker = CircuitBreaker("misuse-probe", failure_threshold=1, reset_timeout=5, clock=clock)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(6)
    with pytest.raises(GuardMisuseError):
        breaker.call(fetch)
    assert breaker.call(lambda: 42) == 42
    assert breaker.get_state()["state"] == "closed"


def test_a_policy_with_a_timeout_does_not_count_the_misuse_as_failures() -> None:
    """Policy(retry, breaker, timeout).call(async_fn): one GuardMisuseError, no attempt repeated,
    no failure counted."""
    breaker = CircuitBreaker("misuse-timeout-policy", failure_threshold=1)
    policy = Policy(
        "misuse-timeout-policy",
        retry=Retry("misuse-timeout-policy", max_attempts=3),
        breaker=breaker,
        timeout=Timeout("misuse-timeout-policy", 1.0),
    )
    with no_backoff(), pytest.raises(GuardMisuseError):
        policy.call(fetch)
    metrics = breaker.get_state()["metrics"]
    assert metrics["failure_calls"] == 0
    assert metrics["total_calls"] <= 1


def test_a_policy_neither_retries_counts_nor_falls_back_on_misuse() -> None:
    """Inside a policy the misuse reaches the caller at once: no retry, no breaker failure,
    no fallback value hiding it."""
    breaker = CircuitBreaker("misuse-policy", failure_threshold=1)
    attempts = Retry("misuse-policy", max_attempts=3)
    policy = Policy(
        "misuse-policy",
        fallback=Fallback("misuse-policy", value=-1),
        retry=attempts,
        breaker=breaker,
    )
    with no_backoff(), pytest.raises(GuardMisuseError):
        policy.call(fetch)
    assert breaker.get_state()["metrics"]["failure_calls"] == 0
    assert breaker.get_state()["state"] == "closed"
