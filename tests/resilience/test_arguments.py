"""Bad constructor arguments of every guard: a clear error naming the guard and the argument."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from otelres.resilience import (
    Bulkhead,
    CircuitBreaker,
    Fallback,
    Policy,
    RateLimiter,
    Retry,
    Timeout,
)

BAD: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
    (RateLimiter, {"rate": "5"}, r"RateLimiter\('g'\): rate must be a number > 0"),
    (RateLimiter, {"rate": -1.0}, r"rate must be a number > 0"),
    (RateLimiter, {"rate": math.nan}, r"rate must be a number > 0"),
    (RateLimiter, {"rate": 1, "capacity": "10"}, r"capacity must be a number > 0"),
    (RateLimiter, {"rate": 1, "max_wait": "1s"}, r"max_wait must be a number >= 0"),
    (CircuitBreaker, {"failure_threshold": 0}, r"CircuitBreaker\('g'\): failure_threshold"),
    (CircuitBreaker, {"half_open_max_calls": 0}, r"half_open_max_calls must be an integer >= 1"),
    (CircuitBreaker, {"reset_timeout": "60"}, r"reset_timeout must be a number > 0"),
    (CircuitBreaker, {"failure_rate_threshold": 1.5}, r"failure_rate_threshold must be a number in"),
    (Retry, {"max_attempts": True}, r"Retry\('g'\): max_attempts must be an integer >= 1"),
    (Retry, {"initial_delay": math.nan}, r"initial_delay must be a number >= 0"),
    (Retry, {"max_delay": "10"}, r"max_delay must be a number >= 0"),
    (Retry, {"multiplier": math.nan}, r"multiplier must be a number >= 1"),
    (Retry, {"jitter": "equal"}, r"jitter must be one of 'full', 'decorrelated', 'none'"),
    (Retry, {"on_retry": 5}, r"on_retry must be a function"),
    (Retry, {"on_retry": [print, "log"]}, r"on_retry must be a function"),
    (Retry, {"retry_safe": True}, r"retry_safe must be a function"),
    (Retry, {"retry_after": 2.0}, r"retry_after must be a function"),
    (Retry, {"retry_on": "ConnectionError"}, r"retry_on must be BaseException subclasses"),
    (Timeout, {"seconds": "5"}, r"Timeout\('g'\): seconds must be a number > 0"),
    (Timeout, {"seconds": 5, "max_workers": 0}, r"max_workers must be an integer >= 1"),
    (Bulkhead, {"max_concurrent": True}, r"Bulkhead\('g'\): max_concurrent must be an integer"),
    (Bulkhead, {"max_concurrent": 1, "queue_timeout": "5"}, r"queue_timeout must be a number > 0"),
    (Fallback, {"handler": "default"}, r"Fallback\('g'\): handler must be a function"),
    (Fallback, {"last_good": True, "max_entries": 2.5}, r"max_entries must be an integer >= 1"),
    (Fallback, {"value": 0, "then": "other"}, r"then= must be another Fallback"),
    (Policy, {"breaker": Retry("g")}, r"Policy\('g'\): breaker= must be a CircuitBreaker"),
    (Policy, {"retry": CircuitBreaker("g")}, r"retry= must be a Retry"),
    (Policy, {"cost": "1"}, r"Policy\('g'\): cost must be a number > 0"),
]


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"), BAD, ids=[f"{k.__name__}-{next(iter(a))}" for k, a, _ in BAD]
)
def test_bad_argument_is_named(kind: Callable[..., Any], kwargs: dict[str, Any], message: str) -> None:
    """A wrong value or type raises ValueError/TypeError naming the guard and the argument."""
    with pytest.raises((ValueError, TypeError), match=message):
        kind("g", **kwargs)


@pytest.mark.parametrize("name", ["", 5, None])
def test_name_must_be_a_string(name: Any) -> None:
    """Every guard refuses a name that is not a non-empty string (it labels all telemetry)."""
    for make in (
        lambda: Retry(name),
        lambda: RateLimiter(name, rate=1),
        lambda: Timeout(name, 1.0),
        lambda: Bulkhead(name, max_concurrent=1),
        lambda: Fallback(name, value=0),
        lambda: Policy(name),
        lambda: CircuitBreaker(name),
    ):
        with pytest.raises(ValueError, match="name must be a non-empty string"):
            make()


def test_lists_of_exception_classes_are_accepted() -> None:
    """retry_on, ignore_exceptions and on= take lists as well as tuples (pybreaker's exclude=[...])."""
    retry = Retry("lists", retry_on=[ConnectionError], initial_delay=0, max_attempts=2)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError
        return "ok"

    assert retry.call(flaky) == "ok"
    breaker = CircuitBreaker("lists", failure_threshold=1, ignore_exceptions=[KeyError])
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert breaker.state.value == "closed"
    fallback = Fallback("lists", value="default", on=[LookupError])
    assert fallback.call(lambda: {}["missing"]) == "default"
