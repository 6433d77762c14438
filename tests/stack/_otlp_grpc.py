"""A real OTLP/gRPC receiver on 127.0.0.1: TraceService and MetricsService from opentelemetry-proto."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def attributes(item: Any) -> dict[str, Any]:
    """The attributes of a decoded span, event, resource or data point as a plain dict."""
    found = {}
    for pair in item.attributes:
        kind = pair.value.WhichOneof("value")
        found[pair.key] = getattr(pair.value, kind) if kind else None
    return found


class OtlpGrpcReceiver:
    """Collects every decoded ExportTraceServiceRequest / ExportMetricsServiceRequest it gets."""

    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                with receiver._lock:
                    receiver.traces.append(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                with receiver._lock:
                    receiver.metrics.append(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(5)

    def spans(self) -> list[tuple[Any, Any, Any]]:
        """(resource, scope, span) of every span received."""
        with self._lock:
            return [
                (resource_spans.resource, scope_spans.scope, span)
                for request in self.traces
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]

    def metric_points(self) -> dict[str, list[tuple[Any, Any, dict[str, Any], float]]]:
        """Metric name -> (resource, scope, point attributes, value) of every number point."""
        found: dict[str, list[tuple[Any, Any, dict[str, Any], float]]] = {}
        with self._lock:
            requests = list(self.metrics)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data")
                        points = getattr(metric, kind).data_points
                        for point in points:
                            value = (
                                float(point.count)
                                if kind in ("histogram", "exponential_histogram")
                                else float(point.as_double or point.as_int)
                            )
                            found.setdefault(metric.name, []).append(
                                (resource_metrics.resource, scope_metrics.scope, attributes(point), value)
                            )
        return found
