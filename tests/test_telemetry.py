"""otelres.configure(): spans and metrics reach in-memory exporters, a real OTLP/HTTP receiver
and a Prometheus endpoint; it is idempotent, respects OTEL_SDK_DISABLED and foreign providers,
and a dead collector never hurts the application."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelres import _otel
from otelres._testing.otlp_receiver import OtlpHttpReceiver, attributes_of
from otelres.config import config_from_dict
from otelres.telemetry import configure, export_status

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def _config(**telemetry: object) -> object:
    return config_from_dict({"telemetry": telemetry}, environ={})


def _emit(handle: object) -> None:
    """One span and one counter point through otelres' own tracer and meter."""
    tracer = _otel.get_tracer(handle.tracer_provider)  # type: ignore[attr-defined]
    meter = _otel.get_meter(handle.meter_provider)  # type: ignore[attr-defined]
    with tracer.start_as_current_span("kraken fetch_ticker", attributes={"exchange.id": "kraken"}):
        meter.create_counter("otelres.test.calls", unit="{call}").add(3, {"outcome": "ok"})


def test_span_and_metric_reach_in_memory_exporters() -> None:
    """Processors and readers passed to configure() receive otelres' spans and metrics."""
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    handle = configure(
        _config(service_name="unit", environment="test"),
        set_global=False,
        span_processors=[SimpleSpanProcessor(spans)],
        metric_readers=[reader],
    )
    try:
        _emit(handle)
        (span,) = spans.get_finished_spans()
        assert span.name == "kraken fetch_ticker"
        assert span.instrumentation_scope.name == "otelres"
        assert span.resource.attributes["service.name"] == "unit"
        assert span.resource.attributes["deployment.environment"] == "test"
        data = reader.get_metrics_data()
        points = [
            (m.name, p.value, dict(p.attributes))
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        ]
        assert ("otelres.test.calls", 3, {"outcome": "ok"}) in points
    finally:
        handle.shutdown()


@pytest.mark.integration
def test_otlp_http_wire_format_reaches_a_real_receiver() -> None:
    """Over OTLP/HTTP the receiver decodes the protobuf into the span, metric and resource sent."""
    with OtlpHttpReceiver() as receiver:
        handle = configure(
            _config(
                service_name="wire",
                service_version="9.9",
                traces_exporter="otlp",
                metrics_exporter="otlp",
                otlp_protocol="http/protobuf",
                otlp_endpoint=receiver.endpoint,
                resource_attributes={"team": "quant"},
            ),
            set_global=False,
        )
        _emit(handle)
        assert handle.force_flush(10)
        receiver.wait_for(lambda r: bool(r.spans()) and "otelres.test.calls" in r.metric_names())
        handle.shutdown()
    (span,) = receiver.spans()
    assert span.name == "kraken fetch_ticker"
    assert attributes_of(span) == {"exchange.id": "kraken"}
    assert len(span.trace_id) == 16
    assert len(span.span_id) == 8
    resource = receiver.resource_attributes()
    assert resource["service.name"] == "wire"
    assert resource["service.version"] == "9.9"
    assert resource["team"] == "quant"
    assert export_status().ok is True


@pytest.mark.integration
def test_prometheus_endpoint_is_scraped_over_http() -> None:
    """With the Prometheus exporter, /metrics serves otelres' counters in text format."""
    handle = configure(
        _config(metrics_exporter="prometheus", prometheus_port=0, service_name="scraped"),
        set_global=False,
    )
    try:
        assert handle.prometheus_url is not None
        _emit(handle)
        with urllib.request.urlopen(handle.prometheus_url, timeout=5) as response:
            body = response.read().decode()
        assert 'otelres_test_calls_total{' in body
        line = next(line for line in body.splitlines() if line.startswith("otelres_test_calls_total{"))
        assert 'outcome="ok"' in line
        assert line.endswith(" 3.0")
    finally:
        handle.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(handle.prometheus_url, timeout=2)


@pytest.mark.integration
def test_collector_down_leaves_the_application_working() -> None:
    """Exporting to a port where nothing listens fails quietly and is reported by export_status()."""
    dead = f"http://127.0.0.1:{free_port()}"
    handle = configure(
        _config(traces_exporter="otlp", otlp_protocol="http/protobuf", otlp_endpoint=dead, otlp_timeout_seconds=1),
        set_global=False,
    )
    try:
        _emit(handle)  # must not raise
        handle.force_flush(5)
        status = export_status()
        assert status.ok is False
        assert status.signal == "traces"
        assert status.last_error is not None
        assert "export failed" in status.last_error
    finally:
        handle.shutdown()


def test_collector_rejecting_requests_is_reported() -> None:
    """A collector that answers 400 to every export turns export_status() to failed."""
    with OtlpHttpReceiver() as receiver:
        receiver.fail_with = 400
        handle = configure(
            _config(metrics_exporter="otlp", otlp_protocol="http/protobuf", otlp_endpoint=receiver.endpoint),
            set_global=False,
        )
        _emit(handle)
        handle.force_flush(5)
        handle.shutdown()
    assert export_status().ok is False
    assert export_status().signal == "metrics"


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELRES_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, check=False, timeout=60, cwd=tempfile.mkdtemp(),
        env={**clean, **env},
    )


@pytest.mark.integration
def test_global_configure_from_environment_exports_over_otlp() -> None:
    """In a fresh process, configure() driven by OTEL_* alone installs global providers that export."""
    with OtlpHttpReceiver() as receiver:
        result = _run(
            """
            import otelres
            from otelres import _otel
            from opentelemetry import trace, metrics
            t = otelres.configure()
            assert otelres.configure() is t, "configure() must be idempotent"
            assert trace.get_tracer_provider() is t.tracer_provider
            with _otel.get_tracer().start_as_current_span("global span"):
                _otel.get_meter().create_counter("otelres.test.global").add(1)
            t.shutdown()
            """,
            OTEL_SERVICE_NAME="from-env",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci",
        )
        assert result.returncode == 0, result.stderr
        receiver.wait_for(lambda r: bool(r.spans()) and "otelres.test.global" in r.metric_names())
    assert receiver.span_names() == ["global span"]
    assert receiver.resource_attributes()["service.name"] == "from-env"
    assert receiver.resource_attributes()["deployment.environment"] == "ci"


def test_sdk_disabled_sets_up_nothing_and_everything_still_works() -> None:
    """With OTEL_SDK_DISABLED=true configure() installs no provider, and tracing still works as no-op."""
    result = _run(
        """
        import otelres
        from otelres import _otel
        from opentelemetry import trace
        t = otelres.configure()
        assert t.disabled and t.tracer_provider is None and t.meter_provider is None
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        with _otel.get_tracer().start_as_current_span("x"):
            _otel.get_meter().create_counter("c").add(1)
        t.force_flush(); t.shutdown()
        print("ok")
        """,
        OTEL_SDK_DISABLED="true",
        OTEL_TRACES_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_providers_set_by_the_application_are_never_replaced() -> None:
    """When the app already set a tracer provider, configure() warns and leaves it in place."""
    result = _run(
        """
        import warnings
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        import otelres
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = otelres.configure()
        assert trace.get_tracer_provider() is mine
        assert t.tracer_provider is None and "traces" not in t.owned
        assert t.meter_provider is not None
        print(caught[0].message)
        """,
        OTEL_TRACES_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert "already set a global tracer provider" in result.stdout


def test_a_noop_provider_the_application_chose_is_respected() -> None:
    """An application that switched tracing off with NoOpTracerProvider keeps it; configure() warns and owns no traces."""
    result = _run(
        """
        import warnings
        from opentelemetry import trace
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        import otelres
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = otelres.configure()
        assert type(trace.get_tracer_provider()).__name__ == "NoOpTracerProvider"
        assert t.owned == ("metrics",), t.owned
        print(caught[0].message)
        """,
        OTEL_TRACES_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert "already set a global tracer provider" in result.stdout


def test_console_exporter_prints_spans() -> None:
    """The console exporter writes finished spans to stdout as JSON."""
    result = _run(
        """
        import otelres
        from otelres import _otel
        otelres.configure()
        with _otel.get_tracer().start_as_current_span("printed span"):
            pass
        """,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
    )
    assert result.returncode == 0, result.stderr
    start = result.stdout.index("{")
    span = json.loads(result.stdout[start:])
    assert span["name"] == "printed span"


def test_alerts_enabled_in_config_fire_from_the_configured_pipeline(tmp_path: Path) -> None:
    """[monitoring.alerts] enabled = true makes configure() start an alert manager on its metrics."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[monitoring.alerts]\nenabled = true\ninterval_seconds = 0.2\nbreaker_open = true\nlog = true\n'
    )
    result = _run(
        """
        import time
        import otelres
        from otelres.resilience import CircuitBreaker
        t = otelres.configure()
        assert t.alerts is not None
        breaker = CircuitBreaker("alerting-breaker", failure_threshold=1)
        try:
            breaker.call(lambda: 1 / 0)
        except ZeroDivisionError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not t.alerts.firing():
            time.sleep(0.1)
        print("FIRING", [a.name for a in t.alerts.firing()])
        t.shutdown()
        """,
        OTELRES_CONFIG=str(config),
    )
    assert result.returncode == 0, result.stderr
    assert "FIRING ['breaker_open']" in result.stdout
    assert "alert breaker_open firing: circuit breaker alerting-breaker is open" in result.stderr


def test_redis_enabled_in_config_moves_breaker_state_to_redis(tmp_path: Path) -> None:
    """[resilience.redis] enabled = true makes configure() share breaker state through Redis.

    Redis is not running at that address, so the default fail-open mode keeps calls working.
    """
    config = tmp_path / "config.toml"
    config.write_text(
        f'[resilience.redis]\nenabled = true\nurl = "redis://127.0.0.1:{free_port()}/0"\n'
        "socket_timeout_seconds = 0.2\nconnect_timeout_seconds = 0.2\n"
    )
    result = _run(
        """
        import otelres
        from otelres.resilience import CircuitBreaker
        otelres.configure()
        breaker = CircuitBreaker("shared")
        print(type(breaker.storage).__name__, breaker.call(lambda: 42))
        """,
        OTELRES_CONFIG=str(config),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RedisBreakerStorage", "42"]


@pytest.mark.integration
def test_exit_with_the_collector_down_is_bounded(tmp_path: Path) -> None:
    """With every signal exporting over gRPC to a dead port, the process exits within shutdown_timeout_seconds, saying so."""
    config = tmp_path / "config.toml"
    config.write_text("[telemetry]\nshutdown_timeout_seconds = 1.0\n")  # otlp_timeout_seconds stays 10
    result = _run(
        """
        import logging, time, otelres
        from otelres import _otel
        otelres.configure()
        with _otel.get_tracer().start_as_current_span("unsent"):
            _otel.get_meter().create_counter("otelres.test.unsent").add(1)
        logging.getLogger("bot").warning("unsent")
        print("START", time.time())
        """,
        OTELRES_CONFIG=str(config),
        OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    )
    import time

    exit_took = time.time() - float(result.stdout.split()[-1])
    assert result.returncode == 0, result.stderr
    assert exit_took < 6.0, f"exit took {exit_took:.1f} s"  # unbounded, it took ~14 s
    assert "did not finish within 1.0 s" in result.stderr


@pytest.mark.integration
def test_exit_flushes_what_is_buffered_without_an_explicit_shutdown() -> None:
    """An application that never calls shutdown() still delivers its last spans, metrics and logs at exit."""
    with OtlpHttpReceiver() as receiver:
        result = _run(
            """
            import logging, otelres
            from otelres import _otel
            otelres.configure()
            with _otel.get_tracer().start_as_current_span("last words"):
                _otel.get_meter().create_counter("otelres.test.last").add(1)
                logging.getLogger("bot").warning("goodbye")
            """,
            OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="600000",
        )
        assert result.returncode == 0, result.stderr
    assert receiver.span_names() == ["last words"]
    assert "otelres.test.last" in receiver.metric_names()
    assert [r.body.string_value for r in receiver.log_records()] == ["goodbye"]


def test_shutdown_is_bounded_and_safe_to_repeat() -> None:
    """shutdown() with a dead collector returns False within its timeout, and a second call returns at once."""
    import time

    dead = f"http://127.0.0.1:{free_port()}"
    handle = configure(
        _config(traces_exporter="otlp", metrics_exporter="otlp", otlp_endpoint=dead, otlp_timeout_seconds=2),
        set_global=False,
    )
    _emit(handle)
    start = time.monotonic()
    assert handle.shutdown(timeout_seconds=0.5) is False
    assert time.monotonic() - start < 3.0
    start = time.monotonic()
    assert handle.shutdown() is True
    assert time.monotonic() - start < 0.1


def test_prometheus_port_in_use_names_the_key_and_installs_nothing() -> None:
    """A taken Prometheus port is a ConfigError naming telemetry.prometheus_port; no global provider is left half set up."""
    result = _run(
        """
        import socket
        from opentelemetry import trace
        import otelres
        from otelres.config import ConfigError, config_from_dict
        taken = socket.socket(); taken.bind(("127.0.0.1", 0)); taken.listen()
        port = taken.getsockname()[1]
        settings = {"traces_exporter": "console", "metrics_exporter": "prometheus"}
        try:
            otelres.configure(config_from_dict({"telemetry": {**settings, "prometheus_port": port}}, source="bot.toml"))
        except ConfigError as exc:
            print("ERROR", exc)
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        t = otelres.configure(config_from_dict({"telemetry": {**settings, "prometheus_port": 0}}))
        assert trace.get_tracer_provider() is t.tracer_provider and t.prometheus_url
        t.shutdown()
        print("RECOVERED")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR bot.toml: telemetry.prometheus_port: cannot serve /metrics on 127.0.0.1:" in result.stdout
    assert "already in use" in result.stdout
    assert "RECOVERED" in result.stdout


def test_second_configure_with_another_config_warns_and_keeps_the_first() -> None:
    """configure() again with a different configuration warns that it is ignored; after shutdown the warning says why nothing can be installed."""
    result = _run(
        """
        import warnings
        import otelres
        from otelres.config import config_from_dict
        warnings.simplefilter("error")
        first = otelres.configure(config_from_dict({"telemetry": {"service_name": "a"}}))
        assert otelres.configure(config_from_dict({"telemetry": {"service_name": "a"}})) is first
        try:
            otelres.configure(config_from_dict({"telemetry": {"service_name": "b"}}))
        except RuntimeWarning as w:
            print("SECOND", w)
        first.shutdown()
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            third = otelres.configure(config_from_dict({"telemetry": {"service_name": "c"}}))
        assert third is not first and third.owned == ()
        print("THIRD", caught[0].message)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "SECOND otelres.configure(): telemetry is already configured" in result.stdout
    assert "Call shutdown() on the handle first" in result.stdout
    assert "THIRD otelres.configure(): an earlier otelres.configure() installed the global tracer provider" in result.stdout


@pytest.mark.integration
def test_signal_specific_otlp_variables_and_headers_reach_the_exporters() -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT beats the file's endpoint for traces only, and OTEL_EXPORTER_OTLP_HEADERS are sent."""
    dead = f"http://127.0.0.1:{free_port()}"
    with OtlpHttpReceiver() as traces, OtlpHttpReceiver() as metrics:
        config = Path(tempfile.mkdtemp()) / "config.toml"
        config.write_text(
            f'[telemetry]\ntraces_exporter = "otlp"\nmetrics_exporter = "otlp"\n'
            f'otlp_protocol = "grpc"\notlp_endpoint = "{dead}"\n'
        )
        result = _run(
            """
            import otelres
            from otelres import _otel
            t = otelres.configure()
            with _otel.get_tracer().start_as_current_span("routed"):
                _otel.get_meter().create_counter("otelres.test.routed").add(1)
            assert t.shutdown(timeout_seconds=10)
            """,
            OTELRES_CONFIG=str(config),
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{traces.endpoint}/v1/traces",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"{metrics.endpoint}/v1/metrics",
            OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_HEADERS="x-api-key=s3cret,x-team=quant",
        )
        assert result.returncode == 0, result.stderr
    assert traces.span_names() == ["routed"]
    assert "otelres.test.routed" in metrics.metric_names()
    assert traces.headers[0]["x-api-key"] == "s3cret"
    assert metrics.headers[0]["x-team"] == "quant"


def test_otlp_option_precedence() -> None:
    """Signal variable beats generic variable beats [telemetry]; HTTP endpoints get the signal path, gRPC ones do not."""
    from otelres.config import ConfigError
    from otelres.telemetry import _otlp_options

    settings = config_from_dict(
        {"telemetry": {"otlp_endpoint": "http://collector:4318/", "otlp_protocol": "http/protobuf", "otlp_timeout_seconds": 4}},
        environ={},
    ).telemetry
    assert _otlp_options("trace", settings, {}) == ("http/protobuf", "http://collector:4318/v1/traces", 4.0)
    assert _otlp_options("log", settings, {}) == ("http/protobuf", "http://collector:4318/v1/logs", 4.0)
    routed = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:9/x", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
              "OTEL_EXPORTER_OTLP_TIMEOUT": "2"}
    assert _otlp_options("metric", settings, routed) == ("grpc", None, None)  # the exporter reads them
    assert _otlp_options("trace", settings, routed) == ("http/protobuf", "http://collector:4318/v1/traces", None)
    grpc = config_from_dict({"telemetry": {"otlp_endpoint": "http://collector:4317"}}, environ={}).telemetry
    assert _otlp_options("trace", grpc, {})[1] == "http://collector:4317"
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: expected one of 'grpc', 'http/protobuf', got 'http/json'"):
        _otlp_options("log", grpc, {"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json"})


def test_capture_filters_points_by_dotted_attributes() -> None:
    """capture.points()/value() take dotted attribute names in a mapping and plain ones as keywords."""
    from otelres.testing import capture_telemetry

    capture = capture_telemetry(install_global=False)
    counter = _otel.get_meter(capture.meter_provider).create_counter("otelres.test.filtered")
    counter.add(2, {"breaker.name": "kraken", "outcome": "ok"})
    counter.add(5, {"breaker.name": "binance", "outcome": "ok"})
    counter.add(1, {"breaker.name": "kraken", "outcome": "failed"})
    assert capture.value("otelres.test.filtered") == 8
    assert capture.value("otelres.test.filtered", {"breaker.name": "kraken"}) == 3
    assert capture.value("otelres.test.filtered", {"breaker.name": "kraken"}, outcome="ok") == 2
    assert [p.value for p in capture.points("otelres.test.filtered", outcome="failed")] == [1]
    assert capture.value("otelres.test.filtered", {"breaker.name": "coinbase"}) is None


def test_prometheus_without_its_extra_names_the_key_and_the_install_command() -> None:
    """metrics_exporter = 'prometheus' without prometheus_client installed is a ConfigError saying what to install."""
    result = _run(
        """
        import sys
        sys.modules["prometheus_client"] = None  # as if the extra were not installed
        import otelres
        from otelres.config import ConfigError, config_from_dict
        try:
            otelres.configure(config_from_dict({"telemetry": {"metrics_exporter": "prometheus"}}, source="bot.toml"))
        except ConfigError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bot.toml: telemetry.metrics_exporter: 'prometheus' needs the prometheus extra")
    assert "pip install 'otelres[prometheus]'" in result.stdout


def test_a_throw_away_pipeline_changes_no_process_wide_setting() -> None:
    """configure(set_global=False) leaves the span mode and the current configuration alone."""
    from otelres import config as config_module

    before = config_module.current()
    handle = configure(_config(span_mode="always", service_name="throw-away"), set_global=False)
    try:
        assert _otel.span_mode() == "events"
        assert config_module.current() is before
    finally:
        handle.shutdown()
