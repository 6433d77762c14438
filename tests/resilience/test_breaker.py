"""The circuit breaker's behaviour: tripping, open and half-open, what counts, control, config."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pybreaker
import pytest

from otelres import config
from otelres.resilience import CircuitBreakerOpenError
from otelres.resilience._breaker import (
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    _clear_registry,
    all_breakers,
    circuit_breaker,
    get_breaker,
)
from otelres.testing import FakeClock


class Boom(Exception):
    """A failure of the guarded service."""


class NotOurProblem(Exception):
    """An error that says nothing about the service's health."""


def boom() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    _clear_registry()
    yield
    _clear_registry()


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


def make(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("failure_threshold", 3)
    kwargs.setdefault("reset_timeout", 10.0)
    return CircuitBreaker("svc", clock=clock, **kwargs)


# --------------------------------------------------------------------------- tripping
def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    """failure_threshold consecutive failures open the breaker, not fewer."""
    breaker = make(clock)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    """A success between failures starts the count again."""
    breaker = make(clock)
    fail(breaker, 2)
    assert breaker.call(ok) == "ok"
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.get_state()["metrics"]["consecutive_failures"] == 2


def test_open_breaker_rejects_without_calling(clock: FakeClock) -> None:
    """While open, calls fail fast with CircuitBreakerOpenError naming the breaker and the wait."""
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(4)
    called = []
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(lambda: called.append(1))
    assert called == []
    assert isinstance(info.value, pybreaker.CircuitBreakerError)
    assert info.value.name == "svc"
    assert info.value.state == "open"
    assert info.value.retry_after == pytest.approx(6.0)
    assert "svc" in str(info.value)
    assert breaker.retry_after() == pytest.approx(6.0)


def test_half_open_probe_success_closes(clock: FakeClock) -> None:
    """After reset_timeout one probe runs; its success closes the breaker."""
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10)
    assert breaker.call(ok) == "ok"
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_probe_failure_reopens(clock: FakeClock) -> None:
    """One failed probe opens the breaker again for a full reset_timeout."""
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10)
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(10.0)


def test_success_threshold_needs_that_many_probes(clock: FakeClock) -> None:
    """With success_threshold=3 the breaker stays half-open until the third successful probe."""
    breaker = make(clock, success_threshold=3)
    fail(breaker, 3)
    clock.advance(10)
    breaker.call(ok)
    breaker.call(ok)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.call(ok)
    assert breaker.state is BreakerState.CLOSED


def test_open_duration_grows_on_repeated_trips(clock: FakeClock) -> None:
    """With a multiplier each failed probe doubles the open time, capped at max_reset_timeout."""
    breaker = make(clock, reset_timeout_multiplier=2.0, max_reset_timeout=35.0)
    fail(breaker, 3)
    waits = []
    for _ in range(4):
        waits.append(breaker.retry_after())
        clock.advance(waits[-1] or 0.0)
        fail(breaker)
    assert waits == [10.0, 20.0, 35.0, 35.0]
    clock.advance(35)
    breaker.call(ok)
    fail(breaker, 3)
    assert breaker.retry_after() == 10.0


async def test_half_open_admits_max_calls_and_rejects_the_rest_at_once(clock: FakeClock) -> None:
    """A half-open breaker runs half_open_max_calls probes at once; others get retry_after 0."""
    breaker = make(clock, half_open_max_calls=2, success_threshold=2)
    fail(breaker, 3)
    clock.advance(10)
    release = asyncio.Event()

    async def probe() -> str:
        await release.wait()
        return "probed"

    first = asyncio.ensure_future(breaker.call_async(probe))
    second = asyncio.ensure_future(breaker.call_async(probe))
    await asyncio.sleep(0)
    with pytest.raises(CircuitBreakerOpenError) as info:
        await breaker.call_async(probe)
    assert info.value.state == "half_open"
    assert info.value.retry_after == 0.0
    release.set()
    assert await asyncio.gather(first, second) == ["probed", "probed"]
    assert breaker.state is BreakerState.CLOSED


def test_finished_probe_frees_its_permit(clock: FakeClock) -> None:
    """Permits limit probes in flight: a successful probe lets the next one run."""
    breaker = make(clock, half_open_max_calls=1, success_threshold=2)
    fail(breaker, 3)
    clock.advance(10)
    breaker.call(ok)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.call(ok)
    assert breaker.state is BreakerState.CLOSED


# --------------------------------------------------------------------------- what counts
def test_ignored_exceptions_neither_fail_nor_succeed(clock: FakeClock) -> None:
    """An exception in ignore_exceptions propagates, is counted as ignored and breaks no run."""
    breaker = make(clock, ignore_exceptions=(NotOurProblem,))

    def not_ours() -> None:
        raise NotOurProblem("bad symbol")

    fail(breaker, 2)
    for _ in range(5):
        with pytest.raises(NotOurProblem):
            breaker.call(not_ours)
    assert breaker.get_state()["metrics"]["consecutive_failures"] == 2
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.get_state()["metrics"]["ignored_calls"] == 5


def test_record_exceptions_limits_what_counts(clock: FakeClock) -> None:
    """Only exceptions matching record_exceptions count as failures."""
    breaker = make(clock, failure_threshold=1, record_exceptions=(Boom,))
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_exception_predicates(clock: FakeClock) -> None:
    """record_exceptions may be a predicate on the exception instance."""
    breaker = make(clock, failure_threshold=1, record_exceptions=lambda e: "fatal" in str(e))

    def raise_(msg: str) -> None:
        raise Boom(msg)

    with pytest.raises(Boom):
        breaker.call(raise_, "minor")
    assert breaker.state is BreakerState.CLOSED
    with pytest.raises(Boom):
        breaker.call(raise_, "fatal outage")
    assert breaker.state is BreakerState.OPEN


def test_result_predicate_counts_returned_values_as_failures(clock: FakeClock) -> None:
    """A value result_is_failure accepts counts as a failure but is still returned."""
    breaker = make(clock, failure_threshold=2, result_is_failure=lambda r: r is None)
    assert breaker.call(lambda: None) is None
    assert breaker.call(lambda: None) is None
    assert breaker.state is BreakerState.OPEN


def test_raising_result_predicate_counts_a_success(clock: FakeClock) -> None:
    """A result predicate that raises is logged and the call counts as a success."""

    def broken(result: object) -> bool:
        raise RuntimeError("bug in predicate")

    breaker = make(clock, failure_threshold=1, result_is_failure=broken)
    assert breaker.call(ok) == "ok"
    assert breaker.get_state()["metrics"]["success_calls"] == 1


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_interrupts_and_cancellation_never_count(clock: FakeClock, exc_type: type) -> None:
    """KeyboardInterrupt, SystemExit and CancelledError propagate and are never failures."""
    breaker = make(clock, failure_threshold=1)

    def interrupted() -> None:
        raise exc_type()

    for _ in range(3):
        with pytest.raises(exc_type):
            breaker.call(interrupted)
    metrics = breaker.get_state()["metrics"]
    assert breaker.state is BreakerState.CLOSED
    assert (metrics["failure_calls"], metrics["ignored_calls"]) == (0, 0)


async def test_cancelled_probe_gives_its_permit_back(clock: FakeClock) -> None:
    """A probe cancelled mid-call frees its permit without closing or opening the breaker."""
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10)
    task = asyncio.ensure_future(breaker.call_async(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(ok) == "ok"
    assert breaker.state is BreakerState.CLOSED


# --------------------------------------------------------------------------- sliding windows
def test_failure_rate_over_count_window(clock: FakeClock) -> None:
    """The failure rate over the last window_size calls opens it once minimum_calls were made."""
    breaker = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=10, minimum_calls=6
    )
    for _ in range(2):
        breaker.call(ok)
        fail(breaker)
    assert breaker.get_state()["metrics"]["failure_rate"] == -1.0
    breaker.call(ok)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)  # 6 calls, 3 failures: 50 %
    assert breaker.state is BreakerState.OPEN


def test_count_window_forgets_old_calls(clock: FakeClock) -> None:
    """Calls older than the last window_size leave the failure rate."""
    breaker = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=4, minimum_calls=4
    )
    fail(breaker)
    for _ in range(3):
        breaker.call(ok)
    assert breaker.get_state()["metrics"]["failure_rate"] == 0.25
    breaker.call(ok)
    assert breaker.get_state()["metrics"]["failure_rate"] == 0.0


def test_failure_rate_over_time_window(clock: FakeClock) -> None:
    """In a time window, failures older than window_size seconds no longer count."""
    breaker = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=0.6,
        window_type="time",
        window_size=10,
        minimum_calls=3,
    )
    fail(breaker, 2)
    clock.advance(11)
    breaker.call(ok)
    breaker.call(ok)
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.get_state()["metrics"]["failure_rate"] == pytest.approx(1 / 3)
    clock.advance(3)
    fail(breaker, 2)
    assert breaker.state is BreakerState.OPEN


def test_slow_call_rate_opens(clock: FakeClock) -> None:
    """Calls slower than slow_call_duration count as slow, and their rate can open it."""
    breaker = make(
        clock,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
    )

    def slow() -> str:
        clock.advance(1.5)
        return "late"

    breaker.call(ok)
    breaker.call(ok)
    breaker.call(slow)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.call(slow) == "late"
    assert breaker.state is BreakerState.OPEN
    metrics = breaker.get_state()["metrics"]
    assert (metrics["slow_calls"], metrics["success_calls"]) == (2, 4)


def test_window_starts_empty_after_closing(clock: FakeClock) -> None:
    """Closing the breaker forgets the window, so old failures cannot re-open it at once."""
    breaker = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=4, minimum_calls=2
    )
    fail(breaker, 2)
    assert breaker.state is BreakerState.OPEN
    clock.advance(10)
    breaker.call(ok)
    assert breaker.get_state()["metrics"]["failure_rate"] == -1.0
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED


# --------------------------------------------------------------------------- manual control
def test_force_open_rejects_until_reset(clock: FakeClock) -> None:
    """force_open() rejects every call, whatever the time, until reset()."""
    breaker = make(clock)
    breaker.force_open()
    clock.advance(10_000)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(ok)
    assert (info.value.state, info.value.retry_after) == ("forced_open", None)
    breaker.reset()
    assert breaker.call(ok) == "ok"


def test_disabled_breaker_lets_everything_through(clock: FakeClock) -> None:
    """disable() passes every call and never trips, yet still counts outcomes."""
    breaker = make(clock, failure_threshold=1)
    breaker.disable()
    fail(breaker, 5)
    assert breaker.state is BreakerState.DISABLED
    assert breaker.call(ok) == "ok"
    assert breaker.get_state()["metrics"]["failure_calls"] == 5
    breaker.reset()
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_reset_closes_an_open_breaker(clock: FakeClock) -> None:
    """reset() closes an open breaker and forgets its failures (the seed's reset)."""
    breaker = make(clock)
    fail(breaker, 3)
    breaker.reset()
    assert breaker.get_state()["state"] == "closed"
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


# --------------------------------------------------------------------------- listeners, state
def test_listeners_get_each_transition(clock: FakeClock) -> None:
    """Listeners receive a BreakerTransition record for every state change, with the reason."""
    seen: list[BreakerTransition] = []
    breaker = make(clock, listeners=[seen.append])
    fail(breaker, 3)
    clock.advance(10)
    breaker.call(ok)
    assert [(t.from_state.value, t.to_state.value, t.reason) for t in seen] == [
        ("closed", "open", "failure threshold"),
        ("open", "half_open", "open timeout elapsed"),
        ("half_open", "closed", "probes succeeded"),
    ]
    assert seen[0].open_for == 10.0
    assert seen[0].at == 1000.0
    assert seen[0].name == "svc"


def test_raising_listener_never_reaches_the_caller(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; the caller sees only its own exception."""

    def bad(_: BreakerTransition) -> None:
        raise RuntimeError("listener bug")

    breaker = make(clock, failure_threshold=1)
    later: list[BreakerTransition] = []
    breaker.add_listener(bad)
    breaker.add_listener(later.append)
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert len(later) == 1
    assert "listener bug" in caplog.text
    breaker.remove_listener(bad)
    breaker.reset()
    assert len(later) == 2


def test_get_state_has_the_seed_shape(clock: FakeClock) -> None:
    """get_state() reports name, state and the seed's call metrics."""
    breaker = make(clock)
    breaker.call(ok)
    fail(breaker, 3)
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(ok)
    state = breaker.get_state()
    assert state["name"] == "svc"
    assert state["state"] == "open"
    assert {
        k: state["metrics"][k]
        for k in ("total_calls", "success_calls", "failure_calls", "rejected_calls", "success_rate")
    } == {
        "total_calls": 5,
        "success_calls": 1,
        "failure_calls": 3,
        "rejected_calls": 1,
        "success_rate": 0.2,
    }


# --------------------------------------------------------------------------- arguments, config
@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"window_type": "sliding"}, "window_type"),
        ({"reset_timeout_multiplier": 0.5}, "reset_timeout_multiplier"),
        ({"slow_call_rate_threshold": 0.5}, "slow_call_duration"),
        ({"failure_rate_threshold": 0.5, "window_size": 2.5}, "window_size"),
        ({"span_mode": "verbose"}, "span_mode"),
        ({"reset_timeout": 1, "timeout_seconds": 2}, "timeout_seconds"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], named: str) -> None:
    """An invalid argument raises ValueError naming the breaker and the argument."""
    with pytest.raises(ValueError, match=named) as info:
        CircuitBreaker("api", **kwargs)
    assert "'api'" in str(info.value)


def test_bad_exception_filter_is_a_type_error() -> None:
    """record_exceptions must hold exception classes."""
    with pytest.raises(TypeError, match="record_exceptions"):
        CircuitBreaker("api", record_exceptions=("ValueError",))  # type: ignore[arg-type]


def test_timeout_seconds_is_the_seed_alias(clock: FakeClock) -> None:
    """timeout_seconds (the seed's name) sets the open duration."""
    breaker = CircuitBreaker("api", failure_threshold=1, timeout_seconds=7, clock=clock)
    fail(breaker)
    assert breaker.reset_timeout == 7.0
    assert breaker.retry_after() == 7.0


def test_settings_come_from_config_and_arguments_win() -> None:
    """Per-name tables and [resilience] defaults configure breakers; arguments override them."""
    config.set_current(
        config.config_from_dict(
            {
                "resilience": {
                    "circuit_breaker_threshold": 7,
                    "circuit_breaker_timeout": 30,
                    "circuit_breaker": {
                        "kraken": {"threshold": 2, "timeout_seconds": 5, "success_threshold": 2}
                    },
                }
            }
        )
    )
    kraken = CircuitBreaker("kraken")
    assert (kraken.failure_threshold, kraken.reset_timeout, kraken.success_threshold) == (2, 5, 2)
    other = CircuitBreaker("binance")
    assert (other.failure_threshold, other.reset_timeout) == (7, 30)
    assert CircuitBreaker("kraken", failure_threshold=9).failure_threshold == 9


def test_config_can_switch_breakers_off(clock: FakeClock) -> None:
    """[resilience] circuit_breaker_enabled = false builds breakers disabled; enabled=True wins."""
    config.set_current(config.config_from_dict({"resilience": {"circuit_breaker_enabled": False}}))
    breaker = make(clock, failure_threshold=1)
    fail(breaker, 3)
    assert breaker.state is BreakerState.DISABLED
    assert make(clock, enabled=True).state is BreakerState.CLOSED


# --------------------------------------------------------------------------- registry, decorator
def test_registry_returns_one_breaker_per_name() -> None:
    """get_breaker() hands out the same breaker for a name and lists it in all_breakers()."""
    first = get_breaker("exchange", failure_threshold=4)
    assert get_breaker("exchange") is first
    assert get_breaker("exchange", failure_threshold=4) is first
    assert all_breakers() == {"exchange": first}


def test_registry_refuses_conflicting_settings() -> None:
    """Asking for an existing name with different settings is an error, not silently ignored."""
    get_breaker("exchange", failure_threshold=4)
    with pytest.raises(ValueError, match="failure_threshold=5 conflicts"):
        get_breaker("exchange", failure_threshold=5)


async def test_seed_decorator_guards_async_functions() -> None:
    """@circuit_breaker(name=..., failure_threshold=...) guards an async def, counting each call."""

    @circuit_breaker(name="kraken_api", failure_threshold=2)
    async def fetch_kraken_data() -> str:
        raise Boom("exchange down")

    for _ in range(2):
        with pytest.raises(Boom):
            await fetch_kraken_data()
    with pytest.raises(CircuitBreakerOpenError):
        await fetch_kraken_data()
    assert fetch_kraken_data.breaker is get_breaker("kraken_api")  # type: ignore[attr-defined]
    assert fetch_kraken_data.__name__ == "fetch_kraken_data"


def test_decorated_functions_share_the_named_breaker() -> None:
    """Two functions decorated with one name trip and reject together."""

    @circuit_breaker(name="shared", failure_threshold=1)
    def first() -> None:
        raise Boom()

    @circuit_breaker(name="shared", failure_threshold=1)
    def second() -> str:
        return "never"

    with pytest.raises(Boom):
        first()
    with pytest.raises(CircuitBreakerOpenError):
        second()


def test_bare_decorator_names_the_breaker_after_the_function() -> None:
    """@circuit_breaker without arguments uses module.qualname as the breaker name."""

    @circuit_breaker
    def lookup(x: int) -> int:
        return x * 2

    assert lookup(21) == 42
    assert lookup.breaker.name.endswith("lookup")  # type: ignore[attr-defined]
    assert lookup.breaker.name in all_breakers()  # type: ignore[attr-defined]


def test_breaker_instance_is_a_decorator(clock: FakeClock) -> None:
    """A CircuitBreaker decorates sync functions, keeping their arguments and metadata."""
    breaker = make(clock)

    @breaker
    def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    assert add(1, b=2) == 3
    assert add.__doc__ == "Adds."
    assert breaker.get_state()["metrics"]["success_calls"] == 1


# --------------------------------------------------------------------------- sync/async parity
SCRIPT = ["ok", "fail", "fail", "ignored", "fail", "reject", "wait", "ok", "fail", "wait", "ok"]


def _run_sync(breaker: CircuitBreaker, clock: FakeClock) -> list[str]:
    seen = []
    for step in SCRIPT:
        if step == "wait":
            clock.advance(10)
            continue
        fn = {"ok": ok, "fail": boom, "ignored": _raise_ignored, "reject": ok}[step]
        try:
            breaker.call(fn)
            seen.append("returned")
        except Exception as exc:
            seen.append(type(exc).__name__)
        seen.append(breaker.state.value)
    return seen


async def _run_async(breaker: CircuitBreaker, clock: FakeClock) -> list[str]:
    async def a_ok() -> str:
        return ok()

    async def a_boom() -> None:
        boom()

    async def a_ignored() -> None:
        _raise_ignored()

    seen = []
    for step in SCRIPT:
        if step == "wait":
            clock.advance(10)
            continue
        fn = {"ok": a_ok, "fail": a_boom, "ignored": a_ignored, "reject": a_ok}[step]
        try:
            await breaker.call_async(fn)
            seen.append("returned")
        except Exception as exc:
            seen.append(type(exc).__name__)
        seen.append(breaker.state.value)
    return seen


def _raise_ignored() -> None:
    raise NotOurProblem()


async def test_sync_and_async_behave_alike() -> None:
    """The same sequence of outcomes gives the same results, states and metrics sync and async."""
    sync_clock, async_clock = FakeClock(), FakeClock()
    options: dict[str, Any] = {"ignore_exceptions": (NotOurProblem,)}
    sync_breaker = make(sync_clock, **options)
    async_breaker = make(async_clock, **options)
    sync_seen = _run_sync(sync_breaker, sync_clock)
    async_seen = await _run_async(async_breaker, async_clock)
    assert sync_seen == async_seen
    assert "CircuitBreakerOpenError" in sync_seen
    assert sync_breaker.get_state() == async_breaker.get_state()


def test_success_that_fills_the_window_can_trip(clock: FakeClock) -> None:
    """The rate is judged on every call: a success reaching minimum_calls opens it if the rate is met."""
    breaker = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=10, minimum_calls=4
    )
    fail(breaker, 2)
    breaker.call(ok)
    assert breaker.state is BreakerState.CLOSED
    breaker.call(ok)
    assert breaker.state is BreakerState.OPEN
    assert breaker.get_state()["metrics"]["failure_rate"] == -1.0  # the window starts over


async def test_decorating_an_async_callable_object(clock: FakeClock) -> None:
    """An object with an async __call__ is guarded as async: its failures are counted when awaited."""

    class Fetcher:
        async def __call__(self) -> None:
            raise Boom("down")

    guarded = make(clock, failure_threshold=1)(Fetcher())
    with pytest.raises(Boom):
        await guarded()
    with pytest.raises(CircuitBreakerOpenError):
        await guarded()


def test_guard_counts_a_block_like_a_call(clock: FakeClock) -> None:
    """`with breaker.guard():` counts the block's outcome and rejects before running it."""
    breaker = make(clock, failure_threshold=2)
    with breaker.guard():
        pass
    for _ in range(2):
        with pytest.raises(Boom), breaker.guard():
            raise Boom("down")
    ran = []
    with pytest.raises(CircuitBreakerOpenError), breaker.guard():
        ran.append(1)
    assert ran == []
    metrics = breaker.get_state()["metrics"]
    assert (metrics["success_calls"], metrics["failure_calls"], metrics["rejected_calls"]) == (
        1, 2, 1,
    )


async def test_async_guard_probes_and_closes(clock: FakeClock) -> None:
    """`async with breaker.guard():` is a half-open probe like call_async, and closes the breaker."""
    breaker = make(clock)
    fail(breaker, 3)
    clock.advance(10)
    async with breaker.guard():
        await asyncio.sleep(0)
    assert breaker.state is BreakerState.CLOSED


def test_minimum_calls_is_capped_by_a_count_window(clock: FakeClock) -> None:
    """A count window smaller than minimum_calls judges the rate once it is full."""
    breaker = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=4, minimum_calls=10
    )
    fail(breaker, 2)
    breaker.call(ok)
    breaker.call(ok)
    assert breaker.state is BreakerState.OPEN


def test_open_error_pickles_and_reads_well(clock: FakeClock) -> None:
    """CircuitBreakerOpenError survives pickling (multiprocessing) with its name, wait and state."""
    import pickle

    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.call(ok)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.name, copy.retry_after, copy.state) == ("svc", 10.0, "open")
    assert str(copy) == str(info.value) == "circuit breaker 'svc' is open; next probe in 10 s"
