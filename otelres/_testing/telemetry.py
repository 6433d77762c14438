"""In-memory telemetry capture for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["MetricPoint", "TelemetryCapture", "capture_telemetry"]


class MetricPoint:
    """One collected data point: instrument name, attributes, and its value.

    ``value`` is the number for sums and gauges, and for histograms the count of
    recordings (``sum``, ``count``, ``bucket_counts`` and ``explicit_bounds`` are set too).
    """

    __slots__ = ("attributes", "bucket_counts", "count", "explicit_bounds", "name", "sum", "unit", "value")

    def __init__(self, name: str, unit: str, attributes: Mapping[str, Any], point: Any) -> None:
        self.name = name
        self.unit = unit
        self.attributes = dict(attributes)
        self.sum: float | None = getattr(point, "sum", None)
        self.count: int | None = getattr(point, "count", None)
        self.bucket_counts = tuple(getattr(point, "bucket_counts", ()) or ())
        self.explicit_bounds = tuple(getattr(point, "explicit_bounds", ()) or ())
        self.value: float = point.value if hasattr(point, "value") else float(self.count or 0)

    def __repr__(self) -> str:
        return f"MetricPoint({self.name!r}, {self.attributes!r}, value={self.value!r})"


class TelemetryCapture:
    """Spans and metrics recorded in memory by real SDK providers.

    ``tracer_provider`` and ``meter_provider`` can be injected into otelres components
    (``meter_provider=capture.meter_provider``) or, with ``capture_telemetry()``'s
    default, are the process's global providers.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        span_exporter: InMemorySpanExporter,
        metric_reader: InMemoryMetricReader,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first; only those called *name* when given."""
        spans = list(self.span_exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def clear(self) -> None:
        """Forget the spans finished so far (metrics are cumulative and stay)."""
        self.span_exporter.clear()

    def points(
        self, name: str | None = None, where: Mapping[str, Any] | None = None, /, **attributes: Any
    ) -> list[MetricPoint]:
        """Collect now and return the points of instrument *name* (all instruments when None).

        Only points whose attributes include every item of *where* and of the keyword
        arguments are returned. OpenTelemetry attribute names have dots, which keyword
        arguments cannot, so pass those in *where*::

            capture.points("otelres.breaker.calls", {"breaker.name": "kraken", "breaker.outcome": "failure"})
            capture.points("my.counter", outcome="ok")     # a name without dots also works as a keyword
        """
        if where:
            attributes = {**where, **attributes}
        data = self.metric_reader.get_metrics_data()
        found: list[MetricPoint] = []
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if name is not None and metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        attrs = dict(point.attributes or {})
                        if all(attrs.get(k) == v for k, v in attributes.items()):
                            found.append(MetricPoint(metric.name, metric.unit or "", attrs, point))
        return found

    def value(self, name: str, where: Mapping[str, Any] | None = None, /, **attributes: Any) -> float | None:
        """The summed value of the points :meth:`points` matches, or None when there are none::

            assert capture.value("otelres.breaker.calls", {"breaker.outcome": "rejected"}) == 2
        """
        points = self.points(name, where, **attributes)
        if not points:
            return None
        return sum(p.value for p in points)

    def instrument_names(self) -> set[str]:
        """Names of every instrument that has produced a point so far."""
        return {p.name for p in self.points()}


_lock = threading.Lock()
_global_capture: TelemetryCapture | None = None


def _new_capture() -> TelemetryCapture:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return TelemetryCapture(tracer_provider, meter_provider, exporter, reader)


def capture_telemetry(*, install_global: bool = True) -> TelemetryCapture:
    """A :class:`TelemetryCapture` backed by in-memory SDK providers.

    With ``install_global=True`` (the default) the providers become the process's
    global tracer and meter providers, once per process: later calls return the same
    capture with its spans cleared, so components that use the global providers are
    seen. OpenTelemetry allows setting global providers only once, so this raises
    ``RuntimeError`` when the application already installed its own.

    With ``install_global=False`` a fresh, private capture is returned; inject its
    providers into the components under test.
    """
    global _global_capture
    if not install_global:
        return _new_capture()
    from opentelemetry import metrics, trace

    with _lock:
        if _global_capture is None:
            current_tp = trace.get_tracer_provider()
            current_mp = metrics.get_meter_provider()
            if type(current_tp).__name__ != "ProxyTracerProvider" or type(
                current_mp
            ).__name__ not in ("_ProxyMeterProvider", "ProxyMeterProvider"):
                raise RuntimeError(
                    "capture_telemetry(): the global OpenTelemetry providers are already set "
                    "(by the application or otelres.configure()); use "
                    "capture_telemetry(install_global=False) and inject its providers instead"
                )
            capture = _new_capture()
            trace.set_tracer_provider(capture.tracer_provider)
            metrics.set_meter_provider(capture.meter_provider)
            _global_capture = capture
        _global_capture.clear()
        return _global_capture


def iter_span_events(capture: TelemetryCapture) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Every span event as (span name, event name, attributes)."""
    for span in capture.spans():
        for event in span.events:
            yield span.name, event.name, dict(event.attributes or {})
