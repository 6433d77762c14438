"""A real OTLP/HTTP receiver on 127.0.0.1 that decodes what exporters send.

It speaks the OTLP wire format (protobuf over HTTP POST to ``/v1/traces``,
``/v1/metrics``, ``/v1/logs``), decodes every request with ``opentelemetry-proto`` and
keeps the decoded requests, so a test can check what really left the process::

    with OtlpHttpReceiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        ...                               # run code that exports over OTLP/HTTP
        receiver.wait_for(lambda r: "fetch" in r.span_names())
        assert "otelres.breaker.calls" in receiver.metric_names()

``fail_with`` makes it answer every request with that HTTP status, to test what happens
when the collector is unhappy.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OtlpHttpReceiver"]


class OtlpHttpReceiver:
    """An OTLP/HTTP (protobuf) receiver for tests; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self._decoders: dict[str, Any] = {
            "/v1/traces": ExportTraceServiceRequest,
            "/v1/metrics": ExportMetricsServiceRequest,
            "/v1/logs": ExportLogsServiceRequest,
        }
        self.traces: list[Any] = []
        self.metrics: list[Any] = []
        self.logs: list[Any] = []
        self.headers: list[dict[str, str]] = []
        """The HTTP headers of every request received, in order (names in lower case)."""
        self.fail_with: int | None = None
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                status = receiver._receive(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the base endpoint (exporters append ``/v1/...``)."""
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> OtlpHttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, path: str, body: bytes) -> int:
        if self.fail_with is not None:
            return self.fail_with
        decoder = self._decoders.get(path)
        if decoder is None:
            return 404
        request = decoder()
        request.ParseFromString(body)
        with self._lock:
            {"/v1/traces": self.traces, "/v1/metrics": self.metrics, "/v1/logs": self.logs}[
                path
            ].append(request)
            self._lock.notify_all()
        return 200

    def wait_for(self, condition: Callable[[OtlpHttpReceiver], bool], timeout: float = 10.0) -> None:
        """Block until *condition(self)* holds; ``AssertionError`` after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"OTLP receiver: condition not met within {timeout} s")
                self._lock.wait(left)

    # -- decoded views -----------------------------------------------------------------
    def spans(self) -> list[Any]:
        """Every received span (protobuf ``Span`` messages)."""
        return _items(self.traces, "resource_spans", "scope_spans", "spans")

    def span_names(self) -> list[str]:
        """Names of every received span, in arrival order."""
        return [span.name for span in self.spans()]

    def metrics_received(self) -> list[Any]:
        """Every received metric (protobuf ``Metric`` messages, data points included)."""
        return _items(self.metrics, "resource_metrics", "scope_metrics", "metrics")

    def metric_names(self) -> set[str]:
        """Names of every metric received so far."""
        return {metric.name for metric in self.metrics_received()}

    def log_records(self) -> list[Any]:
        """Every received log record (protobuf ``LogRecord`` messages)."""
        return _items(self.logs, "resource_logs", "scope_logs", "log_records")

    def resource_attributes(self) -> dict[str, Any]:
        """Resource attributes of the first request received (any signal)."""
        for request, field in (
            *((r, "resource_spans") for r in self.traces),
            *((r, "resource_metrics") for r in self.metrics),
            *((r, "resource_logs") for r in self.logs),
        ):
            for item in getattr(request, field):
                return {kv.key: _any_value(kv.value) for kv in item.resource.attributes}
        return {}


def _items(requests: list[Any], resources: str, scopes: str, items: str) -> list[Any]:
    """The innermost messages of OTLP export *requests*: resource -> scope -> item."""
    return [
        item
        for request in requests
        for resource in getattr(request, resources)
        for scope in getattr(resource, scopes)
        for item in getattr(scope, items)
    ]


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes_of(item: Any) -> dict[str, Any]:
    """A protobuf span's, point's or log record's attributes as a plain dict."""
    return {kv.key: _any_value(kv.value) for kv in item.attributes}
