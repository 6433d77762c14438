"""The BreakerStorage contract, as LocalBreakerStorage keeps it and the breaker relies on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otelres import config
from otelres.resilience import BreakerStorage, CircuitBreakerOpenError, LocalBreakerStorage
from otelres.resilience._breaker import BreakerState, CircuitBreaker
from otelres.resilience._breaker_storage import (
    default_storage_factory,
    set_default_storage_factory,
)
from otelres.testing import FakeClock

S = BreakerState


@pytest.fixture(name="storage")
def _storage(clock: FakeClock) -> LocalBreakerStorage:
    return LocalBreakerStorage(clock)


@pytest.fixture(name="restore_factory")
def _restore_factory() -> Iterator[None]:
    yield
    set_default_storage_factory(None)


def test_local_storage_satisfies_the_protocol(storage: LocalBreakerStorage) -> None:
    """LocalBreakerStorage is a BreakerStorage (runtime-checkable protocol)."""
    assert isinstance(storage, BreakerStorage)


def test_transition_is_compare_and_set(storage: LocalBreakerStorage) -> None:
    """A transition with a stale generation or state changes nothing and returns None."""
    opened = storage.transition(S.CLOSED, S.OPEN, generation=0, open_for=5)
    assert opened is not None
    assert (opened.state, opened.generation, opened.trips) == (S.OPEN, 1, 1)
    assert storage.transition(S.CLOSED, S.OPEN, generation=0, open_for=5) is None
    assert storage.transition(S.OPEN, S.HALF_OPEN, generation=0) is None
    assert storage.snapshot().generation == 1


def test_open_period_runs_on_the_storage_clock(
    storage: LocalBreakerStorage, clock: FakeClock
) -> None:
    """retry_after counts down the open period on the storage's clock, and is 0 when over."""
    storage.transition(S.CLOSED, S.OPEN, generation=0, open_for=5)
    clock.advance(2)
    assert storage.snapshot().retry_after == 3
    clock.advance(4)
    assert storage.snapshot().retry_after == 0


def test_probe_permits_are_limited_per_half_open_period(storage: LocalBreakerStorage) -> None:
    """Only `limit` permits are in flight at once, and only for the current generation."""
    storage.transition(S.CLOSED, S.OPEN, generation=0, open_for=0)
    half = storage.transition(S.OPEN, S.HALF_OPEN, generation=1)
    assert half is not None
    assert storage.try_acquire_probe(half.generation, 2)
    assert storage.try_acquire_probe(half.generation, 2)
    assert not storage.try_acquire_probe(half.generation, 2)
    assert not storage.try_acquire_probe(half.generation - 1, 5)
    assert storage.release_probe(half.generation, success=True) == 1
    assert storage.try_acquire_probe(half.generation, 2)
    assert storage.release_probe(half.generation - 1, success=True) == 0
    assert storage.snapshot().probes == 2


def test_failures_count_only_while_closed(storage: LocalBreakerStorage) -> None:
    """add_failure counts in closed, returns 0 elsewhere; reset_failures clears the run."""
    assert [storage.add_failure() for _ in range(3)] == [1, 2, 3]
    storage.reset_failures()
    assert storage.failures == 0
    storage.force(S.DISABLED)
    assert storage.add_failure() == 0


def test_force_clears_everything(storage: LocalBreakerStorage) -> None:
    """force() sets the state unconditionally with a new generation and no trips or failures."""
    storage.add_failure()
    storage.transition(S.CLOSED, S.OPEN, generation=0, open_for=5)
    forced = storage.force(S.FORCED_OPEN)
    assert (forced.state, forced.generation, forced.trips, forced.failures) == (
        S.FORCED_OPEN, 2, 0, 0,
    )


class RecordingStorage:
    """A BreakerStorage that delegates to a local one and records which methods were called."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.inner = LocalBreakerStorage(clock)
        self.calls: list[str] = []

    @property
    def state(self) -> BreakerState:
        return self.inner.state

    @property
    def failures(self) -> int:
        return self.inner.failures

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return recorded


def test_closed_success_path_only_reads_the_storage(clock: FakeClock) -> None:
    """Successful closed calls make no storage call unless a failure run must be reset."""
    storage = RecordingStorage(clock)
    breaker = CircuitBreaker("recorded", storage=storage, clock=clock)  # type: ignore[arg-type]
    for _ in range(5):
        breaker.call(int)
    assert storage.calls == []
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    breaker.call(int)
    breaker.call(int)
    assert storage.calls == ["add_failure", "reset_failures"]


def test_breaker_state_lives_in_the_given_storage(clock: FakeClock) -> None:
    """Two breakers on one storage (two processes sharing Redis, say) trip and reject together."""
    shared = LocalBreakerStorage(clock)
    here = CircuitBreaker("shared", failure_threshold=2, storage=shared, clock=clock)
    there = CircuitBreaker("shared", failure_threshold=2, storage=shared, clock=clock)
    for breaker in (here, there):
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
    with pytest.raises(CircuitBreakerOpenError):
        here.call(int)
    clock.advance(60)
    assert there.call(int) == 0
    assert here.state is BreakerState.CLOSED


def test_default_factory_builds_the_storage(clock: FakeClock, restore_factory: None) -> None:
    """set_default_storage_factory() decides the storage of breakers built without storage=."""
    made: list[str] = []

    def factory(name: str, clock: Callable[[], float]) -> BreakerStorage:
        made.append(name)
        return LocalBreakerStorage(clock)

    set_default_storage_factory(factory)
    assert default_storage_factory() is factory
    CircuitBreaker("from-factory", clock=clock)
    assert made == ["from-factory"]
    set_default_storage_factory(None)
    CircuitBreaker("local-again", clock=clock)
    assert made == ["from-factory"]


def test_breaker_disabled_by_config_keeps_shared_state_untouched(
    clock: FakeClock, restore_factory: None
) -> None:
    """A breaker switched off by config never forces 'disabled' into a shared storage."""
    shared = LocalBreakerStorage(clock)
    set_default_storage_factory(lambda name, clock: shared)
    config.set_current(config.config_from_dict({"resilience": {"circuit_breaker_enabled": False}}))
    breaker = CircuitBreaker("switched-off", clock=clock)
    assert breaker.state is BreakerState.DISABLED
    assert shared.state is BreakerState.CLOSED
