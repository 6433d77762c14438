"""Backup metrics and spans (names are a contract: see docs/TELEMETRY.md).

* ``otelres.backup.last_success`` (gauge, unix seconds): time of the newest valid backup
  per ``backup.type`` in storage;
* ``otelres.backup.size`` (gauge, By): stored size of that backup;
* ``otelres.backup.count`` (gauge, ``{backup}``): backups in storage per ``backup.type``
  and ``backup.status`` (valid, incomplete, damaged);
* ``otelres.backup.created`` (counter, ``{backup}``): backups this process attempted, per
  ``backup.type`` and ``backup.outcome`` (success, failure);
* ``otelres.backup.duration`` (histogram, s): time to write one backup, per
  ``backup.type`` and ``backup.outcome`` (plus ``error.type`` on failure).

Gauges and the counter are observable: read from the managers' own bookkeeping at
collection time. A backup is rare and slow, so its duration is recorded directly, and
each create / verify / restore / prune gets a span unless the span mode is ``"off"``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Status, StatusCode

from otelres import _otel

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, Meter, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["Observed", "backup_span", "publish", "record_duration"]

_log = logging.getLogger("otelres.backup")


class Observed(Protocol):
    """What a manager exposes to the observable instruments."""

    def _telemetry_location(self) -> str: ...

    def _telemetry_stats(self) -> Mapping[str, Mapping[str, float]]: ...

    def _telemetry_created(self) -> Mapping[tuple[str, str], int]: ...


def _unique(live: Callable[[], list[Observed]]) -> list[Observed]:
    # Two managers over one directory would report the same series twice; keep one.
    """One manager per storage location, so two over one directory report one series."""
    by_location: dict[str, Observed] = {}
    for manager in live():
        by_location[manager._telemetry_location()] = manager
    return list(by_location.values())


def _install(meter: Meter, live: Callable[[], list[Observed]]) -> None:
    """Create the observable instruments for one meter (called once per provider)."""
    def stats_points(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def produce() -> Iterator[Observation]:
            for manager in _unique(live):
                for backup_type, stats in manager._telemetry_stats().items():
                    if key in stats:
                        yield Observation(stats[key], {"backup.type": backup_type})

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return _otel.safe_observations(produce, f"otelres.backup.{key}")

        return callback

    def count_points() -> Iterator[Observation]:
        for manager in _unique(live):
            for backup_type, stats in manager._telemetry_stats().items():
                for status in ("valid", "incomplete", "damaged"):
                    yield Observation(
                        int(stats.get(f"count.{status}", 0)),
                        {"backup.type": backup_type, "backup.status": status},
                    )

    def created_points() -> Iterator[Observation]:
        for manager in live():
            for (backup_type, outcome), value in manager._telemetry_created().items():
                yield Observation(value, {"backup.type": backup_type, "backup.outcome": outcome})

    meter.create_observable_gauge(
        "otelres.backup.last_success",
        [stats_points("last_success")],
        unit="s",
        description="Unix time of the newest valid backup in storage",
    )
    meter.create_observable_gauge(
        "otelres.backup.size",
        [stats_points("size")],
        unit="By",
        description="Stored size of the newest valid backup",
    )
    meter.create_observable_gauge(
        "otelres.backup.count",
        [lambda options: _otel.safe_observations(count_points, "otelres.backup.count")],
        unit="{backup}",
        description="Backups in storage by status",
    )
    meter.create_observable_counter(
        "otelres.backup.created",
        [lambda options: _otel.safe_observations(created_points, "otelres.backup.created")],
        unit="{backup}",
        description="Backups this process attempted to write",
    )


_MANAGERS: _otel.ObservedSet[Observed] = _otel.ObservedSet(_install)
_histograms: weakref.WeakKeyDictionary[Any, Histogram] = weakref.WeakKeyDictionary()
_global_histogram: list[Histogram] = []


# The newest manager of each storage location stays referenced, so the freshness gauges
# outlive the throw-away managers of the seed's usage (`BackupManager().create_backup(...)`):
# a staleness alert must still see the last success after the manager is gone. Bounded by
# the number of distinct backup locations.
_kept: dict[tuple[str, int | None], Observed] = {}


def publish(manager: Observed, meter_provider: MeterProvider | None) -> None:
    """Report *manager* through the observable instruments of *meter_provider*."""
    try:
        _MANAGERS.add(manager, meter_provider)
        key = (manager._telemetry_location(), None if meter_provider is None else id(meter_provider))
        _kept[key] = manager
    except Exception:
        _log.exception("otelres: could not register backup metrics")


def _histogram(meter_provider: MeterProvider | None) -> Histogram:
    """The duration histogram of *meter_provider*, created once."""
    if meter_provider is None:
        if not _global_histogram:
            _global_histogram.append(_make_histogram(_otel.get_meter(None)))
        return _global_histogram[0]
    histogram = _histograms.get(meter_provider)
    if histogram is None:
        histogram = _make_histogram(_otel.get_meter(meter_provider))
        _histograms[meter_provider] = histogram
    return histogram


def _make_histogram(meter: Meter) -> Histogram:
    return meter.create_histogram(
        "otelres.backup.duration",
        unit="s",
        description="Time to write one backup",
        explicit_bucket_boundaries_advisory=[
            0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
        ],
    )


def record_duration(
    meter_provider: MeterProvider | None, seconds: float, attributes: Mapping[str, str]
) -> None:
    """Record one backup's duration; a telemetry failure is logged, never raised."""
    try:
        _histogram(meter_provider).record(seconds, dict(attributes))
    except Exception:
        _log.exception("otelres: recording otelres.backup.duration failed")


@contextmanager
def backup_span(
    tracer_provider: TracerProvider | None, name: str, attributes: Mapping[str, Any]
) -> Iterator[Span | None]:
    """A span around one backup operation (None in span mode ``"off"``).

    An exception leaving the block marks the span ERROR with ``error.type`` and goes on
    to the caller unchanged; a failure of telemetry itself never reaches the caller.
    """
    if _otel.span_mode() == "off":
        yield None
        return
    try:
        span = _otel.get_tracer(tracer_provider).start_span(name, attributes=dict(attributes))
    except Exception:
        _log.exception("otelres: starting span %s failed", name)
        yield None
        return
    from opentelemetry import trace

    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False,
                            set_status_on_exception=False):
            yield span
    except Exception as exc:
        try:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        except Exception:
            _log.exception("otelres: annotating span %s failed", name)
        raise
    finally:
        try:
            span.end()
        except Exception:
            _log.exception("otelres: ending span %s failed", name)
