"""Spans and metrics from `otelres.configure()` reach an OTLP/gRPC receiver in the real wire format.

The receiver implements the Collector's TraceService and MetricsService with the stubs of
``opentelemetry-proto`` and decodes each request: what it sees is what the Collector, and
after it Jaeger and Prometheus, receive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tests.conftest import free_port
from tests.stack._otlp_grpc import OtlpGrpcReceiver, attributes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

APP = Path(__file__).with_name("otlp_app.py")
SERVICE = "otelres-grpc-test"


def run_app(endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(APP), "--endpoint", endpoint, "--service-name", SERVICE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(name="received", scope="module")
def _received() -> Iterator[tuple[OtlpGrpcReceiver, dict[str, Any]]]:
    with OtlpGrpcReceiver() as receiver:
        result = run_app(receiver.endpoint)
        assert result.returncode == 0, result.stderr[-3000:]
        yield receiver, json.loads(result.stdout.strip().splitlines()[-1])


def by_name(receiver: OtlpGrpcReceiver) -> dict[str, list[Any]]:
    spans: dict[str, list[Any]] = {}
    for _resource, _scope, span in receiver.spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def test_spans_carry_the_service_resource_and_the_otelres_scope(
    received: tuple[OtlpGrpcReceiver, dict[str, Any]],
) -> None:
    """Every span's resource names the service; otelres' spans come from the `otelres` scope."""
    receiver, _ = received
    spans = receiver.spans()
    assert spans
    for resource, scope, span in spans:
        assert attributes(resource)["service.name"] == SERVICE
        if span.name.startswith("otelres."):
            assert scope.name == "otelres"
            assert scope.version


def test_a_retried_guarded_call_is_one_trace_of_retry_attempt_and_breaker_spans(
    received: tuple[OtlpGrpcReceiver, dict[str, Any]],
) -> None:
    """Under the app's span: the retry span, two attempt spans (the first failed), each wrapping a breaker span."""
    receiver, outcome = received
    assert outcome["btc"] == 64000.0
    spans = by_name(receiver)
    (root,) = spans["fetch_ticker BTC/USD"]
    (retry,) = [s for s in spans["otelres.retry"] if s.trace_id == root.trace_id]
    assert retry.parent_span_id == root.span_id
    assert attributes(retry)["retry.name"] == "kraken"
    assert "error.type" not in attributes(retry)
    assert [event.name for event in retry.events] == ["otelres.retry"]
    assert attributes(retry.events[0])["error.type"] == "ExchangeDown"
    attempts = sorted(
        (s for s in spans["otelres.retry.attempt"] if s.trace_id == root.trace_id),
        key=lambda s: attributes(s)["retry.attempt"],
    )
    assert [attributes(a)["retry.attempt"] for a in attempts] == [1, 2]
    for attempt in attempts:
        assert attempt.parent_span_id == retry.span_id
        assert attributes(attempt)["retry.name"] == "kraken"
    assert attributes(attempts[0])["error.type"] == "ExchangeDown"
    assert "error.type" not in attributes(attempts[1])
    breakers = [s for s in spans["otelres.breaker"] if s.trace_id == root.trace_id]
    assert sorted(b.parent_span_id for b in breakers) == sorted(a.span_id for a in attempts)
    for breaker in breakers:
        assert attributes(breaker)["breaker.name"] == "kraken"


def test_a_failure_that_was_retried_leaves_every_span_of_the_call_unset_not_error(
    received: tuple[OtlpGrpcReceiver, dict[str, Any]],
) -> None:
    """The caller got its answer, so the failed attempt and its breaker span carry error.type but no ERROR status."""
    receiver, _ = received
    spans = by_name(receiver)
    (root,) = spans["fetch_ticker BTC/USD"]
    unset = Status.STATUS_CODE_UNSET
    for name in ("otelres.retry", "otelres.retry.attempt", "otelres.breaker"):
        in_call = [s for s in spans[name] if s.trace_id == root.trace_id]
        assert in_call
        assert [s.status.code for s in in_call] == [unset] * len(in_call), name
    failed = [s for s in spans["otelres.breaker"] if s.trace_id == root.trace_id and attributes(s).get("error.type")]
    assert [attributes(s)["error.type"] for s in failed] == ["ExchangeDown"]


def test_the_breaker_opening_and_rejecting_are_events_on_the_calling_span(
    received: tuple[OtlpGrpcReceiver, dict[str, Any]],
) -> None:
    """The transition closed -> open and the rejection show up as events of the breaker's spans."""
    receiver, outcome = received
    assert outcome["eth"] == ["ExchangeDown", "ExchangeDown", "CircuitBreakerOpenError"]
    spans = by_name(receiver)
    (root,) = spans["fetch_ticker ETH/USD"]
    in_trace = [s for _, _, s in receiver.spans() if s.trace_id == root.trace_id]
    events = {event.name: attributes(event) for span in in_trace for event in span.events}
    transition = events["otelres.breaker.transition"]
    assert (transition["breaker.from_state"], transition["breaker.to_state"]) == ("closed", "open")
    assert transition["breaker.name"] == "kraken"
    assert events["otelres.breaker.rejected"]["breaker.name"] == "kraken"
    failed = [s for s in in_trace if s.name == "otelres.breaker" and attributes(s).get("error.type")]
    assert {attributes(s)["error.type"] for s in failed} >= {"ExchangeDown"}


def test_metrics_arrive_with_the_documented_names_and_attributes(
    received: tuple[OtlpGrpcReceiver, dict[str, Any]],
) -> None:
    """Breaker and retry counts reach the receiver under their contract names, with the run's values."""
    receiver, _ = received
    points = receiver.metric_points()

    def value(name: str, **attrs: str) -> float:
        matching = [
            v
            for resource, scope, point_attrs, v in points[name]
            if all(point_attrs.get(k.replace("_", ".")) == want for k, want in attrs.items())
        ]
        assert matching, f"{name} has no point with {attrs}: {[p[2] for p in points[name]]}"
        return matching[-1]

    for resource, scope, _attrs, _value in points["otelres.breaker.calls"]:
        assert attributes(resource)["service.name"] == SERVICE
        assert scope.name == "otelres"
    assert value("otelres.breaker.calls", breaker_name="kraken", breaker_outcome="success") == 1
    assert value("otelres.breaker.calls", breaker_name="kraken", breaker_outcome="failure") == 3
    assert value("otelres.breaker.calls", breaker_name="kraken", breaker_outcome="rejected") == 1
    assert value("otelres.breaker.state", breaker_name="kraken", breaker_state="open") == 1
    assert value("otelres.retry.calls", retry_name="kraken", retry_outcome="success_with_retry") == 1
    assert value("otelres.retry.attempts", retry_name="kraken", error_type="ExchangeDown") == 1


def test_a_collector_that_is_down_does_not_break_the_application() -> None:
    """With nothing listening on the OTLP port, the guarded calls give the same results and the app exits 0."""
    result = run_app(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"btc": 64000.0, "eth": ["ExchangeDown", "ExchangeDown", "CircuitBreakerOpenError"]}
