"""The observable instruments every circuit breaker is published through.

Native :class:`~otelres.resilience.CircuitBreaker` objects and ``pybreaker`` breakers
bridged by :class:`~otelres.resilience.PybreakerListener` both join :data:`PUBLISHED`;
the instruments (created once per meter provider) read their plain counters at collection
time, so a guarded call never makes a synchronous instrument call. The names and
attributes are the contract in ``docs/TELEMETRY.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from otelres._otel import ObservedSet, safe_observations
from otelres.resilience._breaker_state import BreakerState

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

__all__ = ["OUTCOMES", "PUBLISHED", "PublishedBreaker"]

OUTCOMES = ("success", "failure", "ignored", "rejected", "slow")
"""Values of ``breaker.outcome``: each call is counted under exactly one of them."""

_STATES = tuple(BreakerState)


class PublishedBreaker(Protocol):
    """What the instruments read from a breaker (native or bridged)."""

    @property
    def name(self) -> str: ...

    def _outcome_counts(self) -> tuple[int, int, int, int, int]:
        """Counts per outcome, in the order of :data:`OUTCOMES`."""
        ...

    def _current_state(self) -> BreakerState: ...

    def _transition_counts(self) -> list[tuple[BreakerState, BreakerState, int]]: ...

    def _rates(self) -> tuple[float, float]:
        """``(failure_rate, slow_call_rate)``, -1 each when unknown."""
        ...


def _install(meter: Meter, live: Callable[[], list[PublishedBreaker]]) -> None:
    def calls(options: CallbackOptions) -> Iterable[Observation]:
        def produce() -> Iterable[Observation]:
            for breaker in live():
                name = breaker.name
                for outcome, count in zip(OUTCOMES, breaker._outcome_counts(), strict=True):
                    yield Observation(count, {"breaker.name": name, "breaker.outcome": outcome})

        return safe_observations(produce, "otelres.breaker.calls")

    def state(options: CallbackOptions) -> Iterable[Observation]:
        def produce() -> Iterable[Observation]:
            for breaker in live():
                name = breaker.name
                current = breaker._current_state()
                for each in _STATES:
                    yield Observation(
                        1 if each is current else 0,
                        {"breaker.name": name, "breaker.state": each.value},
                    )

        return safe_observations(produce, "otelres.breaker.state")

    def transitions(options: CallbackOptions) -> Iterable[Observation]:
        def produce() -> Iterable[Observation]:
            for breaker in live():
                name = breaker.name
                for from_state, to_state, count in breaker._transition_counts():
                    yield Observation(
                        count,
                        {
                            "breaker.name": name,
                            "breaker.from_state": from_state.value,
                            "breaker.to_state": to_state.value,
                        },
                    )

        return safe_observations(produce, "otelres.breaker.transitions")

    def rate(index: int, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            def produce() -> Iterable[Observation]:
                for breaker in live():
                    yield Observation(breaker._rates()[index], {"breaker.name": breaker.name})

            return safe_observations(produce, metric)

        return callback

    meter.create_observable_counter(
        "otelres.breaker.calls",
        [calls],
        unit="{call}",
        description="Calls through circuit breakers, by outcome.",
    )
    meter.create_observable_gauge(
        "otelres.breaker.state",
        [state],
        unit="1",
        description="1 for the current state of each circuit breaker, 0 for the others.",
    )
    meter.create_observable_counter(
        "otelres.breaker.transitions",
        [transitions],
        unit="{transition}",
        description="State changes of circuit breakers.",
    )
    meter.create_observable_gauge(
        "otelres.breaker.failure_rate",
        [rate(0, "otelres.breaker.failure_rate")],
        unit="1",
        description="Failure ratio over the sliding window; -1 below the minimum calls.",
    )
    meter.create_observable_gauge(
        "otelres.breaker.slow_call_rate",
        [rate(1, "otelres.breaker.slow_call_rate")],
        unit="1",
        description="Slow-call ratio over the sliding window; -1 below the minimum calls.",
    )


PUBLISHED: ObservedSet[PublishedBreaker] = ObservedSet(_install)
"""Every live breaker (native or bridged), per meter provider."""
