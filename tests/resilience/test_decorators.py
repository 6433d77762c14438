"""Every guard as a decorator: on methods, static and class methods, and refusing generators."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
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

GUARDS: dict[str, Callable[[], Any]] = {
    "breaker": lambda: CircuitBreaker("deco"),
    "retry": lambda: Retry("deco", initial_delay=0),
    "fallback": lambda: Fallback("deco", value="fallback"),
    "timeout": lambda: Timeout("deco", 5.0),
    "bulkhead": lambda: Bulkhead("deco", max_concurrent=2),
    "limiter": lambda: RateLimiter("deco", rate=1000),
    "policy": lambda: Policy("deco", breaker=CircuitBreaker("deco-policy")),
}


@pytest.fixture(name="make", params=sorted(GUARDS))
def _make(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A factory of one kind of guard (every kind in turn)."""
    return GUARDS[request.param]


def test_guard_above_staticmethod_keeps_it_static(make: Callable[[], Any]) -> None:
    """A guard written above @staticmethod gives a static method, callable on class and instance."""

    class Client:
        @make()
        @staticmethod
        def double(x: int) -> int:
            return 2 * x

    assert Client.double(2) == 4
    assert Client().double(3) == 6


def test_guard_above_classmethod_keeps_it_a_classmethod(make: Callable[[], Any]) -> None:
    """A guard written above @classmethod gives a class method that receives the class."""

    class Client:
        @make()
        @classmethod
        def kind(cls) -> str:
            return cls.__name__

    assert Client.kind() == "Client"
    assert Client().kind() == "Client"


def test_guard_on_async_staticmethod_awaits_it(make: Callable[[], Any]) -> None:
    """An async static method under a guard stays a coroutine function that returns its result."""

    class Client:
        @make()
        @staticmethod
        async def fetch(x: int) -> int:
            await asyncio.sleep(0)
            return x + 1

    assert asyncio.iscoroutinefunction(Client.fetch)
    assert asyncio.run(Client().fetch(1)) == 2


def test_guard_on_method_passes_self(make: Callable[[], Any]) -> None:
    """A guarded instance method gets its instance, sync and async."""

    class Client:
        factor = 5

        @make()
        def scale(self, x: int) -> int:
            return self.factor * x

        @make()
        async def ascale(self, x: int) -> int:
            return self.factor * x

    assert Client().scale(2) == 10
    assert asyncio.run(Client().ascale(3)) == 15


def test_generator_functions_are_refused(make: Callable[[], Any]) -> None:
    """Decorating a generator function raises a TypeError naming the guard and the function."""
    guard = make()

    def ticks() -> Iterator[int]:
        yield 1

    async def aticks() -> AsyncIterator[int]:
        yield 1

    for fn in (ticks, aticks):
        with pytest.raises(TypeError, match=rf"{type(guard).__name__}\('deco'\).*{fn.__name__}"):
            guard(fn)


def test_breaker_on_async_staticmethod_counts_failures() -> None:
    """A breaker above an async @staticmethod counts the awaited failure, not a coroutine."""
    breaker = CircuitBreaker("static-async", failure_threshold=1)

    class Client:
        @breaker
        @staticmethod
        async def fetch() -> None:
            raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(Client.fetch())
    assert breaker.get_state()["metrics"]["failure_calls"] == 1
    assert breaker.state.value == "open"


@pytest.mark.parametrize("kind", ["bulkhead", "fallback", "timeout"])
def test_sync_call_of_a_coroutine_function_is_refused(kind: str) -> None:
    """call(async_fn) raises a TypeError pointing to call_async instead of guarding nothing."""
    guard = GUARDS[kind]()

    async def fetch() -> str:
        raise ConnectionError("would have run unguarded")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed: no "never awaited" warning
        with pytest.raises(TypeError, match="call_async"):
            guard.call(fetch)
    if kind == "bulkhead":
        assert guard.in_flight == 0
