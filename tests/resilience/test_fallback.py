"""Fallback: static values, handlers, last good results, chains, and what is never swallowed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from otelres.resilience import CircuitBreakerOpenError, Fallback
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry


class Down(Exception):
    """The service failed."""


Call = Callable[..., Any]


@pytest.fixture(name="call", params=["sync", "async"])
def _call(request: pytest.FixtureRequest) -> Call:
    """Run a sync function through ``fallback.call`` or an async twin through ``call_async``."""

    twins: dict[Callable[..., Any], Callable[..., Any]] = {}

    def run(fallback: Fallback, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return fallback.call(fn, *args, **kwargs)
        if fn not in twins:  # one async twin per function, as a decorated function would be

            async def afn(*a: Any, **k: Any) -> Any:
                return fn(*a, **k)

            twins[fn] = afn
        return asyncio.run(fallback.call_async(twins[fn], *args, **kwargs))

    return run


def down(*args: Any, **kwargs: Any) -> Any:
    raise Down("503")


def test_success_passes_through(call: Call) -> None:
    """A successful call returns its own result."""
    assert call(Fallback("f", value=0), lambda: 42) == 42


def test_static_value(call: Call) -> None:
    """A failing call returns the static value."""
    assert call(Fallback("f", value={"price": None}), down) == {"price": None}


def test_handler_gets_the_exception(call: Call) -> None:
    """The handler is called with the exception and its result is returned."""
    assert call(Fallback("f", handler=lambda exc: f"fallback for {exc}"), down) == "fallback for 503"


async def test_async_handler() -> None:
    """call_async awaits a coroutine handler."""

    async def handler(exc: Exception) -> str:
        await asyncio.sleep(0)
        return "cached"

    async def fails() -> str:
        raise Down

    assert await Fallback("f", handler=handler).call_async(fails) == "cached"


def test_only_listed_exceptions(call: Call) -> None:
    """Exceptions outside ``on`` propagate unchanged."""
    fallback = Fallback("f", value=0, on=KeyError)
    with pytest.raises(Down):
        call(fallback, down)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), asyncio.CancelledError()])
def test_base_exceptions_are_never_swallowed(exc: BaseException) -> None:
    """KeyboardInterrupt, SystemExit and CancelledError pass through any fallback."""

    def raises() -> None:
        raise exc

    with pytest.raises(type(exc)):
        Fallback("f", value=0).call(raises)


def test_on_rejects_base_exceptions() -> None:
    """Asking to handle a BaseException is refused at construction."""
    with pytest.raises(TypeError, match="on="):
        Fallback("f", value=0, on=(asyncio.CancelledError,))  # type: ignore[arg-type]


def test_breaker_rejection_is_answered(call: Call) -> None:
    """An open breaker's rejection gets the fallback answer too."""

    def rejected() -> None:
        raise CircuitBreakerOpenError("svc", 5.0)

    assert call(Fallback("f", value="stale"), rejected) == "stale"


def test_last_good_per_arguments(clock: FakeClock, call: Call) -> None:
    """last_good answers with the latest success of the same function with the same arguments."""
    fallback = Fallback("f", last_good=True, clock=clock)
    prices = {"BTC": 100, "ETH": 10}
    failing = {"on": False}

    def fetch(symbol: str) -> int:
        if failing["on"]:
            raise Down
        return prices[symbol]

    assert call(fallback, fetch, "BTC") == 100
    assert call(fallback, fetch, "ETH") == 10
    prices["BTC"] = 101
    assert call(fallback, fetch, "BTC") == 101
    failing["on"] = True
    assert call(fallback, fetch, "BTC") == 101
    assert call(fallback, fetch, "ETH") == 10
    with pytest.raises(Down):  # never succeeded with these arguments
        call(fallback, fetch, "SOL")

    def other(symbol: str) -> int:
        raise Down

    with pytest.raises(Down):  # another function shares nothing
        call(fallback, other, "BTC")


def test_last_good_respects_max_age(clock: FakeClock) -> None:
    """A last good result older than max_age is not used."""
    fallback = Fallback("f", last_good=True, max_age=10.0, clock=clock)
    state = {"fail": False}

    def fetch(symbol: str) -> int:
        if state["fail"]:
            raise Down
        return 7

    assert fallback.call(fetch, "BTC") == 7
    state["fail"] = True
    clock.advance(9)
    assert fallback.call(fetch, "BTC") == 7
    clock.advance(2)
    with pytest.raises(Down):
        fallback.call(fetch, "BTC")


def test_chain_tries_in_order(clock: FakeClock, call: Call) -> None:
    """Without a last good result, the next fallback of the chain answers."""
    chain = Fallback("cache", last_good=True, clock=clock, then=Fallback("default", value=-1))
    assert call(chain, down, "BTC") == -1


def test_raising_handler_falls_through(call: Call, caplog: pytest.LogCaptureFixture) -> None:
    """A handler that raises is logged and the next fallback answers; with none left, the original error."""

    def broken(exc: Exception) -> Any:
        raise RuntimeError("handler bug")

    chain = Fallback("a", handler=broken, then=Fallback("b", value="b"))
    with caplog.at_level(logging.ERROR, "otelres"):
        assert call(chain, down) == "b"
    original = Down("original")

    def fails() -> None:
        raise original

    with pytest.raises(Down) as info:
        call(Fallback("a", handler=broken), fails)
    assert info.value is original


def test_exactly_one_strategy() -> None:
    """Giving no strategy, or two, is an error naming the choices."""
    with pytest.raises(ValueError, match="exactly one"):
        Fallback("f")
    with pytest.raises(ValueError, match="exactly one"):
        Fallback("f", value=1, last_good=True)


def test_decorator(clock: FakeClock) -> None:
    """The decorator works on sync and async functions and keeps their names."""
    fallback = Fallback("f", value="fb")

    @fallback
    def sync_fn() -> str:
        raise Down

    @fallback
    async def async_fn() -> str:
        raise Down

    assert sync_fn() == "fb"
    assert asyncio.run(async_fn()) == "fb"
    assert async_fn.__name__ == "async_fn"


def test_telemetry(call: Call) -> None:
    """A fallback taken is counted with its name and error type and is an event on the active span."""
    capture: TelemetryCapture = capture_telemetry(install_global=False)
    fallback = Fallback("ticker", value=0, meter_provider=capture.meter_provider)
    tracer = capture.tracer_provider.get_tracer("test")
    call(fallback, lambda: 1)
    assert capture.points("otelres.fallbacks") == []
    with tracer.start_as_current_span("request"):
        call(fallback, down)
    assert capture.value("otelres.fallbacks", **{"fallback.name": "ticker", "error.type": "Down"}) == 1
    (event,) = capture.spans("request")[0].events
    assert event.name == "otelres.fallback"
    assert event.attributes["error.type"] == "Down"


def test_async_handler_cannot_answer_sync_call(caplog: pytest.LogCaptureFixture) -> None:
    """In a sync call a coroutine handler is skipped with an error log; the next fallback answers."""

    async def handler(exc: Exception) -> str:
        return "never"

    chain = Fallback("a", handler=handler, then=Fallback("b", value="sync answer"))
    with caplog.at_level(logging.ERROR, "otelres"):
        assert chain.call(down) == "sync answer"
    assert "async handler" in caplog.text


def test_chain_made_circular_still_ends(call: Call) -> None:
    """A then= chain edited into a cycle asks each fallback once and re-raises, never loops."""
    first = Fallback("first", last_good=True)
    second = Fallback("second", last_good=True, then=first)
    first.then = second

    def down() -> None:
        raise Down("no answer anywhere")

    with pytest.raises(Down):
        call(first, down)


def test_raising_key_function_never_reaches_the_caller(call: Call, caplog: pytest.LogCaptureFixture) -> None:
    """A key function that raises is logged: successes still return, failures get the next fallback."""

    def broken_key(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise KeyError("bug in key")

    chain = Fallback("cache", last_good=True, key=broken_key, then=Fallback("default", value=-1))

    def down() -> None:
        raise Down

    with caplog.at_level(logging.ERROR, logger="otelres"):
        assert call(chain, lambda: 7) == 7
        assert call(chain, down) == -1
    assert "key function of fallback 'cache' raised" in caplog.text
