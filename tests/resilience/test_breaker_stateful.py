"""A Hypothesis state machine drives the breaker and a small reference model side by side.

Calls are held open mid-flight (coroutines stepped by hand, no event loop), so the model
also covers overlapping calls: several half-open probes at once, and calls that started
closed and end after the breaker opened. Some machines also trip on the failure rate over
a count window, which the model keeps as a plain list.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from otelres.resilience import CircuitBreakerOpenError
from otelres.resilience._breaker import CircuitBreaker
from otelres.testing import FakeClock


class Boom(Exception):
    """A counted failure."""


class Ignored(Exception):
    """An exception the breaker ignores."""


class _Hold:
    """An awaitable that suspends once, so a test can finish the call later."""

    def __await__(self) -> Generator[None, None, str]:
        yield None
        return "done"


@dataclass
class Model:
    """The breaker as the documentation describes it, with nothing but integers and a clock."""

    threshold: int
    reset_timeout: float
    multiplier: float
    max_timeout: float
    max_probes: int
    success_threshold: int
    rate_threshold: float | None = None
    window_size: int = 1
    minimum_calls: int = 1
    window: list[bool] = field(default_factory=list)
    state: str = "closed"
    generation: int = 0
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0
    probes: int = 0
    probe_successes: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("success", "failure", "ignored", "rejected"), 0)
    )

    def _enter(self, state: str) -> None:
        self.generation += 1
        self.state = state
        self.failures = self.probes = self.probe_successes = 0
        self.window = []

    def _rate_trips(self, failed: bool) -> bool:
        """Record a closed-state outcome in the count window; whether its rate trips."""
        if self.rate_threshold is None:
            return False
        self.window = [*self.window, failed][-self.window_size :]
        if len(self.window) < min(self.minimum_calls, self.window_size):
            return False
        return sum(self.window) / len(self.window) >= self.rate_threshold

    def _open(self, now: float) -> None:
        duration = self.reset_timeout
        if self.multiplier != 1.0 and self.trips > 0:
            duration = min(
                self.reset_timeout * self.multiplier**self.trips,
                max(self.max_timeout, self.reset_timeout),
            )
        self.trips += 1
        self.open_until = now + duration
        self._enter("open")

    def admit(self, now: float) -> int | None:
        """The call's permit (-1: not a probe), or None when rejected."""
        if self.state in ("closed", "disabled"):
            return -1
        if self.state == "open" and now >= self.open_until:
            self._enter("half_open")
        if self.state == "half_open" and self.probes < self.max_probes:
            self.probes += 1
            return self.generation
        self.counts["rejected"] += 1
        return None

    def finish(self, permit: int, outcome: str, now: float) -> None:
        if outcome != "cancelled":
            self.counts[outcome] += 1
        current_probe = permit == self.generation and self.state == "half_open"
        if permit != -1:
            if not current_probe:
                return
            if outcome == "failure":
                self._open(now)
                return
            self.probes -= 1
            if outcome == "success":
                self.probe_successes += 1
                if self.probe_successes >= self.success_threshold:
                    self.trips = 0
                    self._enter("closed")
            return
        if self.state != "closed":
            return
        if outcome == "success":
            if self._rate_trips(False):
                self._open(now)
            else:
                self.failures = 0
        elif outcome == "failure":
            self.failures += 1
            if self._rate_trips(True) or self.failures >= self.threshold:
                self._open(now)

    def force(self, state: str) -> None:
        self.trips = 0
        self._enter(state)


class BreakerMachine(RuleBasedStateMachine):
    """Random interleavings of calls, outcomes, time and manual control."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.held: list[tuple[Any, int]] = []
        self.breaker: CircuitBreaker
        self.model: Model

    @initialize(
        threshold=st.integers(1, 4),
        reset_timeout=st.sampled_from([1.0, 5.0, 30.0]),
        multiplier=st.sampled_from([1.0, 2.0, 3.0]),
        max_timeout=st.sampled_from([2.0, 60.0]),
        max_probes=st.integers(1, 3),
        success_threshold=st.integers(1, 3),
        rate_threshold=st.sampled_from([None, 0.5, 0.5, 0.75]),
        window_size=st.integers(1, 4),
        minimum_calls=st.integers(1, 4),
    )
    def build(
        self,
        threshold: int,
        reset_timeout: float,
        multiplier: float,
        max_timeout: float,
        max_probes: int,
        success_threshold: int,
        rate_threshold: float | None,
        window_size: int,
        minimum_calls: int,
    ) -> None:
        self.model = Model(
            threshold,
            reset_timeout,
            multiplier,
            max_timeout,
            max_probes,
            success_threshold,
            rate_threshold,
            window_size,
            minimum_calls,
        )
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=threshold,
            reset_timeout=reset_timeout,
            reset_timeout_multiplier=multiplier,
            max_reset_timeout=max_timeout,
            half_open_max_calls=max_probes,
            success_threshold=success_threshold,
            failure_rate_threshold=rate_threshold,
            window_size=window_size,
            minimum_calls=minimum_calls,
            ignore_exceptions=(Ignored,),
            clock=self.clock,
        )

    @rule()
    def start_call(self) -> None:
        """Start a call and leave it in flight."""
        expected = self.model.admit(self.clock())

        async def held() -> str:
            return await _Hold()

        coro = self.breaker.call_async(held)
        try:
            coro.send(None)
        except CircuitBreakerOpenError:
            assert expected is None
            return
        assert expected is not None
        self.held.append((coro, expected))

    @precondition(lambda self: bool(self.held))
    @rule(
        index=st.integers(0, 10),
        outcome=st.sampled_from(["success", "failure", "ignored", "cancelled"]),
    )
    def finish_call(self, index: int, outcome: str) -> None:
        """End one call in flight with the given outcome."""
        coro, permit = self.held.pop(index % len(self.held))
        thrown: BaseException | None = {
            "success": None,
            "failure": Boom(),
            "ignored": Ignored(),
            "cancelled": GeneratorExit(),
        }[outcome]
        try:
            if thrown is None:
                coro.send(None)
            elif isinstance(thrown, GeneratorExit):
                coro.close()
                raise StopIteration
            else:
                coro.throw(thrown)
        except StopIteration:
            pass
        except (Boom, Ignored):
            pass
        self.model.finish(permit, outcome, self.clock())

    @rule(outcome=st.sampled_from(["success", "failure", "ignored"]))
    def quick_call(self, outcome: str) -> None:
        """A whole call, start to end."""
        permit = self.model.admit(self.clock())

        def run() -> str:
            if outcome == "failure":
                raise Boom()
            if outcome == "ignored":
                raise Ignored()
            return "ok"

        try:
            self.breaker.call(run)
        except CircuitBreakerOpenError:
            assert permit is None
            return
        except (Boom, Ignored):
            pass
        assert permit is not None
        self.model.finish(permit, outcome, self.clock())

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 5.0, 30.0, 61.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(action=st.sampled_from(["force_open", "disable", "reset"]))
    def control(self, action: str) -> None:
        getattr(self.breaker, action)()
        self.model.force({"force_open": "forced_open", "disable": "disabled", "reset": "closed"}[
            action
        ])

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        assert self.breaker.state.value == self.model.state
        snap = self.breaker.storage.snapshot()
        assert snap.failures == self.model.failures
        assert snap.probes == self.model.probes
        if self.model.state == "open":
            assert snap.retry_after == max(0.0, self.model.open_until - self.clock())

    @invariant()
    def same_counts(self) -> None:
        if not hasattr(self, "model"):
            return
        metrics = self.breaker.get_state()["metrics"]
        counts = self.model.counts
        assert metrics["success_calls"] == counts["success"]
        assert metrics["failure_calls"] == counts["failure"]
        assert metrics["ignored_calls"] == counts["ignored"]
        assert metrics["rejected_calls"] == counts["rejected"]
        if self.model.rate_threshold is not None:
            window = self.model.window
            held = len(window) >= min(self.model.minimum_calls, self.model.window_size)
            expected = sum(window) / len(window) if window and held else -1.0
            assert metrics["failure_rate"] == expected

    def teardown(self) -> None:
        for coro, _ in self.held:
            coro.close()


BreakerMachine.TestCase.settings = settings(max_examples=250, stateful_step_count=40, deadline=None)
test_breaker_matches_the_model = BreakerMachine.TestCase
