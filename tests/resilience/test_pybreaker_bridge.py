"""An existing pybreaker breaker publishes otelres metrics and events through the bridge."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pybreaker
import pytest

from otelres.resilience._pybreaker import PybreakerListener, instrument_pybreaker
from otelres.testing import TelemetryCapture, capture_telemetry
from tests.conftest import free_port, require_binary


@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


def _outcomes(capture: TelemetryCapture, name: str) -> dict[str, float]:
    return {
        p.attributes["breaker.outcome"]: p.value
        for p in capture.points("otelres.breaker.calls", **{"breaker.name": name})
    }


def _boom() -> None:
    raise ConnectionError("down")


def _fail(breaker: pybreaker.CircuitBreaker) -> None:
    with pytest.raises((ConnectionError, pybreaker.CircuitBreakerError)):
        breaker.call(_boom)


def test_instrumented_pybreaker_publishes_calls_state_and_transitions(
    capture: TelemetryCapture,
) -> None:
    """Successes, failures, rejections, the state and transitions appear under breaker.name."""
    breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, name="legacy-db")
    instrument_pybreaker(breaker, meter_provider=capture.meter_provider)
    assert capture.value(
        "otelres.breaker.state", **{"breaker.name": "legacy-db", "breaker.state": "closed"}
    ) == 1
    breaker.call(int)
    _fail(breaker)
    _fail(breaker)
    for _ in range(3):
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(int)
    assert _outcomes(capture, "legacy-db") == {
        "success": 1, "failure": 2, "ignored": 0, "rejected": 3, "slow": 0,
    }
    assert capture.value(
        "otelres.breaker.state", **{"breaker.name": "legacy-db", "breaker.state": "open"}
    ) == 1
    assert capture.value(
        "otelres.breaker.transitions",
        **{"breaker.name": "legacy-db", "breaker.from_state": "closed", "breaker.to_state": "open"},
    ) == 1
    assert capture.value("otelres.breaker.failure_rate", **{"breaker.name": "legacy-db"}) == -1


def test_half_open_probe_is_a_call_not_a_rejection(capture: TelemetryCapture) -> None:
    """After the reset timeout the probe is counted as a success and the states are mapped."""
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=0.05, name="probe-db")
    instrument_pybreaker(breaker, meter_provider=capture.meter_provider)
    _fail(breaker)
    time.sleep(0.06)
    breaker.call(int)
    assert _outcomes(capture, "probe-db")["rejected"] == 0
    assert _outcomes(capture, "probe-db")["success"] == 1
    transitions = {
        (p.attributes["breaker.from_state"], p.attributes["breaker.to_state"])
        for p in capture.points("otelres.breaker.transitions", **{"breaker.name": "probe-db"})
    }
    assert transitions == {("closed", "open"), ("open", "half_open"), ("half_open", "closed")}


def test_listener_passed_to_pybreaker_directly_works(capture: TelemetryCapture) -> None:
    """A PybreakerListener given at construction counts calls, and rejections after the first call."""
    listener = PybreakerListener(name="direct", meter_provider=capture.meter_provider)
    breaker = pybreaker.CircuitBreaker(fail_max=1, listeners=[listener])
    _fail(breaker)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(int)
    assert _outcomes(capture, "direct")["failure"] == 1
    assert _outcomes(capture, "direct")["rejected"] == 1


def test_decorated_functions_are_counted(capture: TelemetryCapture) -> None:
    """pybreaker's own decorator goes through the bridge too."""
    breaker = pybreaker.CircuitBreaker(name="decorated")
    instrument_pybreaker(breaker, meter_provider=capture.meter_provider)

    @breaker
    def lookup() -> int:
        return 1

    lookup()
    lookup()
    assert _outcomes(capture, "decorated")["success"] == 2


def test_events_on_the_active_span(capture: TelemetryCapture) -> None:
    """Trips and rejections of a pybreaker become otelres events on the caller's span."""
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60, name="evented")
    instrument_pybreaker(breaker, meter_provider=capture.meter_provider)
    with capture.tracer_provider.get_tracer("app").start_as_current_span("job"):
        _fail(breaker)
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(int)
    (span,) = capture.spans()
    names = [e.name for e in span.events]
    assert names == ["otelres.breaker.transition", "otelres.breaker.rejected"]
    rejected = dict(span.events[1].attributes or {})
    assert rejected["breaker.name"] == "evented"
    assert 59 < rejected["breaker.retry_after"] <= 60


def test_instrumenting_twice_adds_nothing(capture: TelemetryCapture) -> None:
    """instrument_pybreaker on an instrumented breaker returns the same listener; counts stay single."""
    breaker = pybreaker.CircuitBreaker(name="twice")
    first = instrument_pybreaker(breaker, meter_provider=capture.meter_provider)
    assert instrument_pybreaker(breaker, meter_provider=capture.meter_provider) is first
    breaker.call(int)
    assert _outcomes(capture, "twice")["success"] == 1


def test_bridge_failures_never_reach_the_caller(
    capture: TelemetryCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """If the bridge's own bookkeeping breaks, pybreaker's caller still gets its normal result."""
    listener = PybreakerListener(name="fragile", meter_provider=capture.meter_provider)
    breaker = pybreaker.CircuitBreaker(listeners=[listener])
    breaker.call(int)
    listener._bridged[breaker]._successes = None  # type: ignore[assignment]
    assert breaker.call(lambda: "still fine") == "still fine"
    assert "pybreaker listener failed" in caplog.text


def _python(code: str) -> str:
    """Run *code* in a fresh interpreter; its stdout (a failure shows its stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_breaker_import_does_not_import_redis() -> None:
    """`from otelres import circuit_breaker` loads pybreaker for the error base class, not redis."""
    out = _python(
        """
        import sys
        from otelres import CircuitBreakerOpenError, circuit_breaker
        import pybreaker
        assert issubclass(CircuitBreakerOpenError, pybreaker.CircuitBreakerError)
        print(sorted(m for m in sys.modules if m == "redis" or m.startswith("redis.")))
        print(pybreaker.HAS_REDIS_SUPPORT)
        """
    )
    assert out.split() == ["[]", "True"]


def test_pybreaker_redis_storage_still_works_after_otelres(tmp_path: Path) -> None:
    """pybreaker's own Redis storage works (trips, and falls back on RedisError) after otelres loaded pybreaker."""
    binary = require_binary("redis-server")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        out = _python(
            f"""
            import sys, time
            import otelres.resilience._errors
            import pybreaker
            assert "redis" not in sys.modules
            import redis
            client = redis.Redis(port={port}, socket_timeout=1)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="t")
            breaker = pybreaker.CircuitBreaker(fail_max=1, state_storage=storage)
            try:
                breaker.call(lambda: 1 / 0)
            except (ZeroDivisionError, pybreaker.CircuitBreakerError):
                pass
            print(breaker.current_state)
            client.shutdown(nosave=True)
            print(storage.state)  # RedisError caught by pybreaker: its fallback state
            """
        )
    finally:
        server.kill()
        server.wait(10)
    assert out.split() == ["open", "closed"]
