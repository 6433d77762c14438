"""Synchronous instruments for the slow paths of retry, limiter, bulkhead, timeout and fallback.

Success paths never touch these: outcome counts live in plain per-instance counters that
observable instruments read (see :class:`otelres._otel.ObservedSet`). These counters and
histograms record only where something happened (a retry, a wait, a rejection, a timeout,
a fallback), are created once per meter, and :func:`add` / :func:`observe` never let an
SDK or exporter failure reach the guarded call.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation

from otelres import _otel

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter
    from opentelemetry.util.types import AttributeValue

__all__ = ["SlowPathInstruments", "add", "observe", "summed_by_name"]

_log = logging.getLogger("otelres")
_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

# Bucket boundaries in seconds for waits and delays: backoffs and limiter waits range from
# milliseconds to tens of seconds; the SDK default buckets (0..10000) suit milliseconds.
DELAY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SlowPathInstruments:
    """Counters and histograms of one meter, created on first use and then reused."""

    __slots__ = ("_meter",)

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def counter(self, name: str, unit: str, description: str) -> Counter:
        """The counter *name* of this meter (created once)."""
        counter: Counter = self._get(
            name, lambda: self._meter.create_counter(name, unit=unit, description=description)
        )
        return counter

    def histogram(self, name: str, unit: str, description: str) -> Histogram:
        """The histogram *name* of this meter, in seconds buckets (created once)."""

        def create() -> Histogram:
            try:
                return self._meter.create_histogram(
                    name,
                    unit=unit,
                    description=description,
                    explicit_bucket_boundaries_advisory=list(DELAY_BUCKETS),
                )
            except TypeError:  # pragma: no cover - API older than 1.23 has no advisory
                return self._meter.create_histogram(name, unit=unit, description=description)

        histogram: Histogram = self._get(name, create)
        return histogram

    def _get(self, name: str, create: Callable[[], Any]) -> Any:
        with _lock:
            per_meter = _cache.get(self._meter)
            if per_meter is None:
                per_meter = {}
                _cache[self._meter] = per_meter
            instrument = per_meter.get(name)
            if instrument is None:
                instrument = create()
                per_meter[name] = instrument
            return instrument


def summed_by_name(
    instrument: str,
    live: Callable[[], Sequence[Any]],
    name_key: str,
    series: Sequence[tuple[str, Mapping[str, AttributeValue]]],
) -> Callable[[CallbackOptions], Iterator[Observation]]:
    """An observable-instrument callback publishing plain per-component counts.

    For each ``(attribute, extra)`` of *series* it reports ``getattr(component, attribute)``
    summed over the *live* components sharing a ``name`` (components sharing a name are one
    series, not duplicates), labelled ``{name_key: name, **extra}``. A failure while
    collecting is logged and reports nothing (see :func:`otelres._otel.safe_observations`).
    """

    def callback(options: CallbackOptions) -> Iterator[Observation]:
        def produce() -> Iterator[Observation]:
            totals: dict[tuple[str, int], float] = {}
            for component in live():
                for index, (attribute, _) in enumerate(series):
                    key = (component.name, index)
                    totals[key] = totals.get(key, 0) + getattr(component, attribute)
            for (name, index), value in totals.items():
                yield Observation(value, {name_key: name, **series[index][1]})

        return iter(_otel.safe_observations(produce, instrument))

    return callback


def add(counter: Counter, value: float, attributes: Mapping[str, AttributeValue]) -> None:
    """Add *value* to *counter*; an SDK or exporter failure is logged, never raised."""
    try:
        counter.add(value, attributes)
    except Exception:
        _log.debug("otelres: adding to a counter failed", exc_info=True)


def observe(histogram: Histogram, value: float, attributes: Mapping[str, AttributeValue]) -> None:
    """Record *value* in *histogram*; an SDK or exporter failure is logged, never raised."""
    try:
        histogram.record(value, attributes)
    except Exception:
        _log.debug("otelres: recording in a histogram failed", exc_info=True)
