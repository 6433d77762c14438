"""The observable instruments every circuit breaker is published through.

Native :class:`~otelres.resilience.CircuitBreaker` objects and ``pybreaker`` breakers
bridged by :class:`~otelres.resilience.PybreakerListener` both join :data:`PUBLISHED`;
the instruments (created once per meter provider) read their plain counters at collection
time, so a guarded call never makes a synchronous instrument call. Breakers that share a
name are one series: their counts add up, and the state gauge reads 1 for every state one of
them is in. The names and attributes are the contract in ``docs/TELEMETRY.md``.
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


def _by_name(breakers: list[PublishedBreaker]) -> dict[str, list[PublishedBreaker]]:
    """Group *breakers* by name: breakers sharing a name are one series."""
    named: dict[str, list[PublishedBreaker]] = {}
    for breaker in breakers:
        named.setdefault(breaker.name, []).append(breaker)
    return named


def _install(meter: Meter, live: Callable[[], list[PublishedBreaker]]) -> None:
    def calls(options: CallbackOptions) -> Iterable[Observation]:
        def produce() -> Iterable[Observation]:
            for name, group in _by_name(live()).items():
                counts = [b._outcome_counts() for b in group]
                totals = [sum(column) for column in zip(*counts, strict=True)]
                for outcome, count in zip(OUTCOMES, totals, strict=True):
                    yield Observation(count, {"breaker.name": name, "breaker.outcome": outcome})

        return safe_observations(produce, "otelres.breaker.calls")

    def state(options: CallbackOptions) -> Iterable[Observation]:
        def produce() -> Iterable[Observation]:
            for name, group in _by_name(live()).items():
                current = {b._current_state() for b in group}
                for each in _STATES:
                    yield Observation(
                        1 if each in current else 0,
                        {"breaker.name": name, "breaker.state": each.value},
                    )

        return safe_observations(produce, "otelres.breaker.state")

    def transitions(options: CallbackOptions) -> Iterable[Observation]:
        def produce() -> Iterable[Observation]:
            totals: dict[tuple[str, BreakerState, BreakerState], int] = {}
            for breaker in live():
                for from_state, to_state, count in breaker._transition_counts():
                    key = (breaker.name, from_state, to_state)
                    totals[key] = totals.get(key, 0) + count
            for (name, from_state, to_state), count in totals.items():
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
                for name, group in _by_name(live()).items():
                    # The highest rate of the group: the one closest to tripping.
                    yield Observation(max(b._rates()[index] for b in group), {"breaker.name": name})

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
