"""Publishing health as OpenTelemetry instruments.

* ``otelres.health.status``: observable gauge, one point per check (``health.check.name``)
  and one for the overall status (``health.check.name="overall"``): 0 GREEN, 1 YELLOW,
  2 RED. It reads each live checker's latest results at collection time, so what the
  CLI and the HTTP endpoints show is exactly what dashboards get.
* ``otelres.health.check.duration``: histogram (s) of each check that actually ran
  (cache hits are not recorded), with ``health.check.name`` and ``health.status``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation

from otelres._otel import ObservedSet, get_meter, safe_observations
from otelres.health._check import OVERALL

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, Meter, MeterProvider

    from otelres.health._checker import HealthChecker
    from otelres.health._model import HealthResult

__all__ = ["DURATION", "STATUS", "duration_histogram", "publish"]

STATUS = "otelres.health.status"
DURATION = "otelres.health.check.duration"
#: Bucket bounds (s) for check durations: health checks take milliseconds to seconds.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _install(meter: Meter, live: Callable[[], list[HealthChecker]]) -> None:
    """Create the status gauge for one meter provider; its callback reads the live checkers."""
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return safe_observations(lambda: _status_points(live()), STATUS)

    meter.create_observable_gauge(
        STATUS,
        [observe],
        unit="1",
        description="Health status per check and overall: 0 green, 1 yellow, 2 red",
    )


def _status_points(checkers: list[HealthChecker]) -> Iterable[Observation]:
    """One point per check name and one ``overall`` point, over every checker that has run.

    A process may hold several checkers (its own runner's and the probe server's): their
    points share attributes, so they are merged here rather than left to overwrite one
    another. A check known to two checkers shows its most recent result; ``overall`` is the
    worst of all.
    """
    merged: dict[str, HealthResult] = {}
    for checker in checkers:
        for name, result in checker.latest_results().items():
            seen = merged.get(name)
            if seen is None or result.timestamp >= seen.timestamp:
                merged[name] = result
    if not merged:
        return
    for name, result in merged.items():
        yield Observation(result.status.level, {"health.check.name": name})
    worst = max(result.status.level for result in merged.values())
    yield Observation(worst, {"health.check.name": OVERALL})


_CHECKERS: ObservedSet[HealthChecker] = ObservedSet(_install)

_histograms: weakref.WeakKeyDictionary[Any, Histogram] = weakref.WeakKeyDictionary()
_global_histogram: Histogram | None = None
_lock = threading.Lock()


def publish(checker: HealthChecker, meter_provider: MeterProvider | None) -> None:
    """Report *checker*'s latest results on the ``otelres.health.status`` gauge."""
    _CHECKERS.add(checker, meter_provider)


def duration_histogram(meter_provider: MeterProvider | None) -> Histogram:
    """The ``otelres.health.check.duration`` histogram of *meter_provider*, created once."""
    global _global_histogram
    with _lock:
        if meter_provider is None:
            if _global_histogram is None:
                _global_histogram = _new_histogram(get_meter(None))
            return _global_histogram
        histogram = _histograms.get(meter_provider)
        if histogram is None:
            histogram = _histograms[meter_provider] = _new_histogram(get_meter(meter_provider))
        return histogram


def _new_histogram(meter: Meter) -> Histogram:
    """The duration histogram with buckets suited to checks (1 ms to 30 s)."""
    return meter.create_histogram(
        DURATION,
        unit="s",
        description="Duration of each health check that ran",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )
