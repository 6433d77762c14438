"""The metrics facade: counters, gauges, histograms and timers over real OTel instruments.

The seed system's usage keeps working::

    metrics = get_metrics_collector()
    with metrics.timer("operation_duration"):
        metrics.increment("operations_completed")

Every name becomes one OpenTelemetry instrument of the ``otelres`` meter, created on
first use and cached, so a call costs a dict lookup plus the instrument call itself.
Names are used as given (after an optional ``namespace`` prefix); they must be valid OTel
instrument names. See docs/MONITORING.md for how they appear in Prometheus.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry.metrics import CallbackOptions, NoOpMeter, Observation

from otelres._otel import get_meter

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider
    from opentelemetry.util.types import AttributeValue

    Attributes = Mapping[str, AttributeValue]

__all__ = ["DURATION_BUCKETS", "MetricsCollector", "Timer", "get_metrics_collector"]

DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
)
"""Histogram bucket boundaries (seconds) that timers advise, after OTel's HTTP duration buckets."""

_NAME = re.compile(r"[a-zA-Z][-_./a-zA-Z0-9]{0,254}")
_log = logging.getLogger("otelres.monitoring")
F = TypeVar("F", bound=Callable[..., Any])


def _attr_key(attributes: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A hashable key for a gauge series (list values become tuples)."""
    if not attributes:
        return ()
    return tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items())
    )


class MetricsCollector:
    """Counters, gauges, histograms and timers by name, each a real OTel instrument.

    * :meth:`increment` adds to a counter;
    * :meth:`gauge` (alias :meth:`set`) sets the current value of a gauge, reported at
      each collection through an observable gauge, one series per attribute set;
    * :meth:`record` records a value in a histogram;
    * :meth:`timer` measures a block or a function (sync or async) into a histogram in
      seconds, with ``error.type`` set when it raised.

    Every method takes *attributes* (a mapping of OTel attribute values). *meter_provider*
    defaults to the global one; *namespace* is prefixed to every name
    (``namespace="bot."`` turns ``orders`` into ``bot.orders``); with *enabled* false
    every call is a no-op. A name used for one kind cannot be reused for another.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        namespace: str = "",
        enabled: bool = True,
    ) -> None:
        self.namespace = namespace
        self.enabled = enabled
        self._meter: Meter = get_meter(meter_provider) if enabled else NoOpMeter("otelres")
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._gauges: dict[str, dict[tuple[tuple[str, Any], ...], tuple[float, Attributes | None]]] = {}
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ counters
    def increment(
        self,
        name: str,
        value: float = 1,
        attributes: Attributes | None = None,
        *,
        unit: str = "",
        description: str = "",
    ) -> None:
        """Add *value* (default 1, never negative) to the counter *name*."""
        counter = self._counters.get(name)
        if counter is None:
            counter = self._create(name, "counter", unit, description)
        counter.add(value, attributes)

    # ------------------------------------------------------------------ gauges
    def gauge(
        self,
        name: str,
        value: float,
        attributes: Attributes | None = None,
        *,
        unit: str = "",
        description: str = "",
    ) -> None:
        """Set gauge *name* to *value* for *attributes*; the last value set is reported."""
        series = self._gauges.get(name)
        if series is None:
            self._create(name, "gauge", unit, description)
            series = self._gauges[name]
        series[_attr_key(attributes)] = (value, attributes)

    set = gauge

    # ------------------------------------------------------------------ histograms
    def record(
        self,
        name: str,
        value: float,
        attributes: Attributes | None = None,
        *,
        unit: str = "",
        description: str = "",
    ) -> None:
        """Record *value* in histogram *name*."""
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._create(name, "histogram", unit, description)
        histogram.record(value, attributes)

    def timer(self, name: str, attributes: Attributes | None = None, *, description: str = "") -> Timer:
        """A :class:`Timer` recording seconds into histogram *name* (unit ``s``).

        Use it as ``with metrics.timer("op"):``, ``async with``, or as a decorator
        ``@metrics.timer("op")`` on a sync or async function.
        """
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._create(name, "histogram", "s", description)
        return Timer(histogram, attributes)

    # ------------------------------------------------------------------ creation
    def _create(self, name: str, kind: str, unit: str, description: str) -> Any:
        """Create (once, under the lock) the instrument of *kind* for *name* and cache it.

        Validates the name here, on the first use only, so the hot path never pays for it.
        Timers advise second-sized histogram buckets: the SDK's default buckets are meant
        for milliseconds and would put every duration in the first bucket.
        """
        if not isinstance(name, str) or _NAME.fullmatch(self.namespace + name) is None:
            raise ValueError(
                f"metric name {name!r}: not a valid OpenTelemetry instrument name "
                "(a letter, then up to 254 letters, digits, '_', '.', '-' or '/')"
            )
        full = self.namespace + name
        with self._lock:
            # OTel names are case-insensitive: "Orders" and "orders" are one instrument, so
            # they must be one kind, or the export would carry two metrics of one name.
            known = self._kinds.get(name.lower())
            if known is not None and known != kind:
                raise ValueError(f"metric name {name!r} is already used for a {known}, not a {kind}")
            self._kinds[name.lower()] = kind
            meter = self._meter
            if kind == "counter":
                if name not in self._counters:
                    self._counters[name] = meter.create_counter(full, unit=unit, description=description)
                return self._counters[name]
            if kind == "histogram":
                if name not in self._histograms:
                    advice = list(DURATION_BUCKETS) if unit == "s" else None
                    self._histograms[name] = meter.create_histogram(
                        full, unit=unit, description=description,
                        explicit_bucket_boundaries_advisory=advice,
                    )
                return self._histograms[name]
            if name not in self._gauges:
                series: dict[tuple[tuple[str, Any], ...], tuple[float, Attributes | None]] = {}
                meter.create_observable_gauge(
                    full, [_gauge_callback(series)], unit=unit, description=description
                )
                self._gauges[name] = series
            return None


def _gauge_callback(
    series: dict[tuple[tuple[str, Any], ...], tuple[float, Attributes | None]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        """The current value of every series (read at collection time)."""
        return [Observation(value, attributes) for value, attributes in list(series.values())]

    return observe


class Timer:
    """Measures durations in seconds into a histogram; see :meth:`MetricsCollector.timer`.

    Reusable and safe under concurrency in every form: as a decorator each call measures
    itself, and as a context manager the open blocks are kept per thread (``with``) and per
    task (``async with``), so one module-level ``timed = metrics.timer("fetch")`` shared by
    threads or tasks gives each block its own duration; nested blocks are fine too.
    ``elapsed`` holds the last measured duration. A failing block or call is recorded with
    ``error.type`` (the exception class name) and the exception propagates unchanged.
    """

    __slots__ = ("_attributes", "_histogram", "_starts", "elapsed")

    def __init__(self, histogram: Histogram, attributes: Attributes | None = None) -> None:
        self._histogram = histogram
        self._attributes = attributes
        # Start times of the open blocks, by thread (sync) or task (async): one shared stack
        # paired one block's exit with another's start when blocks overlapped.
        self._starts: dict[object, list[float]] = {}
        self.elapsed: float | None = None

    def _record(self, seconds: float, exc_type: type[BaseException] | None) -> None:
        """Record *seconds*, with ``error.type`` when the measured code raised *exc_type*."""
        self.elapsed = seconds
        attributes = self._attributes
        if exc_type is not None:
            attributes = {**(attributes or {}), "error.type": exc_type.__name__}
        try:
            self._histogram.record(seconds, attributes)
        except Exception:  # telemetry never breaks the measured code
            _log.debug("otelres: recording a timer failed", exc_info=True)

    def _open(self, owner: object) -> None:
        """Note the start of a block of *owner* (a thread id or a task)."""
        starts = self._starts.get(owner)
        if starts is None:
            self._starts[owner] = [time.perf_counter()]
        else:
            starts.append(time.perf_counter())

    def _close(self, owner: object, exc_type: type[BaseException] | None) -> None:
        """Record the innermost open block of *owner*."""
        end = time.perf_counter()
        starts = self._starts[owner]
        start = starts.pop()
        if not starts:
            del self._starts[owner]
        self._record(end - start, exc_type)

    def __enter__(self) -> Timer:
        self._open(threading.get_ident())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(threading.get_ident(), exc_type)

    async def __aenter__(self) -> Timer:
        self._open(_current_task())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(_current_task(), exc_type)

    def __call__(self, fn: F) -> F:
        """Decorate *fn* (sync or async) so that every call is measured."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    self._record(time.perf_counter() - start, type(exc))
                    raise
                self._record(time.perf_counter() - start, None)
                return result

            return cast("F", timed_async)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._record(time.perf_counter() - start, type(exc))
                raise
            self._record(time.perf_counter() - start, None)
            return result

        return cast("F", timed)


def _current_task() -> object:
    """The running asyncio task (the owner of an ``async with`` block), else the thread id."""
    import asyncio  # already loaded wherever ``async with`` runs; keeps the facade import light

    return asyncio.current_task() or threading.get_ident()


_collector: MetricsCollector | None = None
_collector_lock = threading.Lock()


def get_metrics_collector() -> MetricsCollector:
    """The process-wide :class:`MetricsCollector` on the global meter provider.

    Created on first use; ``[monitoring] metrics_enabled = false`` (read then) makes it
    a no-op. Instruments follow a meter provider the application installs later.
    """
    global _collector
    collector = _collector
    if collector is None:
        from otelres import config

        with _collector_lock:
            if _collector is None:
                _collector = MetricsCollector(enabled=config.current().monitoring.metrics_enabled)
            collector = _collector
    return collector


def _reset_collector() -> None:
    """Forget the process-wide collector (for tests)."""
    global _collector
    with _collector_lock:
        _collector = None
