"""docs/TELEMETRY.md is the contract: every instrument, span and event listed there is emitted as listed.

The test reads the tables of docs/TELEMETRY.md, runs one scenario per owner module (the
functions in ``SCENARIOS``) against in-memory SDK providers — once in span mode ``events``
and once in ``always``, each time under an application span — and checks every row:
the instrument exists with the listed kind and unit, its points carry exactly the listed
attribute keys (``key?`` marks a key present on some points only) and only the listed values
where the row names them; a span or event appears in the listed mode and not below it.

A row whose owner module does not exist, or has no scenario here, fails: add one to
``SCENARIOS`` when you add rows.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics as metrics_api

from otelres import _otel, config
from otelres.testing import FakeClock, TelemetryCapture, capture_telemetry

DOC = Path(__file__).resolve().parent.parent / "docs" / "TELEMETRY.md"
_KEY = re.compile(r"`([a-z0-9_.]+)`(\?)?(?:\s*\(([^)]*)\))?")


@dataclass(frozen=True)
class Row:
    """One row of a TELEMETRY.md table."""

    name: str
    kind: str
    unit: str | None
    mode: str | None
    required: frozenset[str]
    optional: frozenset[str]
    values: dict[str, frozenset[str]]
    owner: str

    @property
    def keys(self) -> frozenset[str]:
        return self.required | self.optional

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _ticked(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"docs/TELEMETRY.md: expected a `name` in backticks, got {cell!r}"
    return match.group(1)


def _attributes(cell: str) -> tuple[frozenset[str], frozenset[str], dict[str, frozenset[str]]]:
    required, optional, values = set(), set(), {}
    for key, maybe, listed in _KEY.findall(cell):
        (optional if maybe else required).add(key)
        if listed:
            values[key] = frozenset(v.strip() for v in listed.split(","))
    return frozenset(required), frozenset(optional), values


def read_rows() -> tuple[list[Row], list[Row]]:
    """The metric rows and the span/event rows of docs/TELEMETRY.md."""
    metric_rows: list[Row] = []
    span_rows: list[Row] = []
    header: list[str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = cells
            continue
        if set(line) <= set("|-: "):
            continue
        row = dict(zip(header, cells, strict=True))
        if header[0] == "instrument":
            required, optional, values = _attributes(row["attributes"])
            metric_rows.append(
                Row(_ticked(row["instrument"]), row["kind"], _ticked(row["unit"]), None,
                    required, optional, values, _ticked(row["owner"]))
            )
        elif header[0] == "name" and "owner" in row:
            required, optional, values = _attributes(row["attributes"])
            span_rows.append(
                Row(_ticked(row["name"]), row["type"], None, row["mode"],
                    required, optional, values, _ticked(row["owner"]))
            )
    return metric_rows, span_rows


METRIC_ROWS, SPAN_ROWS = read_rows()


# --------------------------------------------------------------------------- scenarios
def _breaker_scenario() -> None:
    from otelres.resilience import CircuitBreaker, CircuitBreakerOpenError

    clock = FakeClock()
    breaker = CircuitBreaker(
        "contract-breaker",
        failure_threshold=2,
        reset_timeout=5,
        failure_rate_threshold=0.9,
        slow_call_duration=1.0,
        minimum_calls=1,
        ignore_exceptions=(KeyError,),
        clock=clock,
    )
    _keep.append(breaker)
    breaker.call(int)
    breaker.call(clock.advance, 2)  # slow
    for exc in (KeyError("ignored"), ConnectionError("down"), ConnectionError("down")):
        with pytest.raises(type(exc)):
            breaker.call(_raiser(exc))
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(int)
    breaker.force_open()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(int)
    breaker.disable()
    breaker.reset()


def _retry_scenario() -> None:
    from otelres.resilience import Retry

    retry = Retry("contract-retry", max_attempts=3, initial_delay=0.001, sleep=lambda s: None)
    _keep.append(retry)
    failures = iter([ConnectionError("once")])

    def flaky() -> int:
        for exc in failures:
            raise exc
        return 1

    assert retry.call(flaky) == 1
    with pytest.raises(ValueError):
        retry.call(_raiser(ValueError("always")))


def _limiter_scenario() -> None:
    from otelres.resilience import RateLimiter, RateLimitExceededError

    clock = FakeClock()
    waiting = RateLimiter("contract-limiter", rate=10, capacity=1, clock=clock, sleep=clock.sleep)
    rejecting = RateLimiter("contract-limiter-reject", rate=1, capacity=1, mode="reject")
    _keep.extend([waiting, rejecting])
    waiting.call(int)
    waiting.call(int)  # waits 0.1 s on the fake clock
    rejecting.call(int)
    with pytest.raises(RateLimitExceededError):
        rejecting.call(int)


def _redis_scenario() -> None:
    from otelres.resilience import (
        RateLimitExceededError,
        RedisBreakerStorage,
        RedisConnection,
        RedisTokenBucket,
    )
    from tests.conftest import free_port

    # Nothing listens there: an outage, which is what these instruments report.
    conn = RedisConnection(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2)
    storage = RedisBreakerStorage("contract-redis", conn, fail_mode="open")
    bucket = RedisTokenBucket("contract-redis", conn, rate=1, capacity=1, fail_mode="closed")
    _keep.extend([conn, storage, bucket])
    assert storage.state.value == "closed"  # fail-open: the local state answers
    with pytest.raises(RateLimitExceededError):
        bucket.try_acquire(1)


def _bulkhead_scenario() -> None:
    from otelres.resilience import Bulkhead, BulkheadFullError

    bulkhead = Bulkhead("contract-bulkhead", max_concurrent=1)
    _keep.append(bulkhead)
    bulkhead.call(int)
    bulkhead.acquire()
    try:
        with pytest.raises(BulkheadFullError):
            bulkhead.call(int)
    finally:
        bulkhead.release()


def _timeout_scenario() -> None:
    from otelres.resilience import CallTimeoutError, Timeout

    timeout = Timeout("contract-timeout", 0.01)
    _keep.append(timeout)
    with pytest.raises(CallTimeoutError):
        timeout.call(time.sleep, 0.1)


def _fallback_scenario() -> None:
    from otelres.resilience import Fallback

    fallback = Fallback("contract-fallback", value=0)
    _keep.append(fallback)
    assert fallback.call(_raiser(ConnectionError("down"))) == 0


def _policy_scenario() -> None:
    from otelres.resilience import CircuitBreaker, Policy

    policy = Policy("contract-policy", breaker=CircuitBreaker("contract-policy-breaker"))
    _keep.append(policy)
    assert policy.call(int) == 0
    with pytest.raises(ConnectionError):
        policy.call(_raiser(ConnectionError("down")))


def _health_scenario() -> None:
    from otelres.health import HealthChecker, HealthResult, HealthStatus, health_check

    @health_check("contract-green", register=False)
    def green() -> HealthStatus:
        return HealthStatus.GREEN

    @health_check("contract-yellow", register=False)
    async def yellow() -> HealthResult:
        return HealthResult.yellow("slow")

    checker = HealthChecker([green, yellow], config=config.Config())
    _keep.append(checker)
    assert checker.run_sync().overall is HealthStatus.YELLOW


def _alerts_scenario() -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    from otelres.monitoring import Alert, AlertManager, AlertRule, MetricsCollector

    def broken(alert: Alert) -> None:
        raise RuntimeError("handler down")

    manager = AlertManager(
        [AlertRule("contract", "contract.errors", ">", 0, severity="critical")],
        [lambda alert: None, broken],
        service_name="contract",
    )
    pipeline = MeterProvider(metric_readers=[manager.reader])
    MetricsCollector(meter_provider=pipeline).increment("contract.errors")
    assert [a.status for a in manager.evaluate()] == ["firing"]
    pipeline.shutdown()


def _ccxt_scenario() -> None:
    """One successful and one refused call of an instrumented ccxt client (local exchange)."""
    import ccxt
    from otelres_instrumentation_ccxt import CcxtInstrumentor

    from otelres.testing import ExchangeServer

    with ExchangeServer() as server:
        client = server.client("kraken")
        CcxtInstrumentor.instrument_client(client)
        try:
            client.fetch_time()
            with pytest.raises(ccxt.BadSymbol):
                client.fetch_ticker("NOPE/USD")
        finally:
            CcxtInstrumentor.uninstrument_client(client)


def _backup_scenario() -> None:
    import tempfile

    from otelres.backup import BackupError, BackupManager, RecoveryManager

    folder = tempfile.TemporaryDirectory(prefix="otelres-contract-")
    manager = BackupManager(f"{folder.name}/backups")
    _keep.extend([folder, manager])
    backup_id = manager.create_backup({"portfolio": {"cash": 1}}, backup_type="contract")
    with pytest.raises(BackupError):
        manager.create_backup(files=[f"{folder.name}/missing"], backup_type="contract")
    recovery = RecoveryManager(manager)
    assert recovery.verify(backup_id).ok
    recovery.restore(backup_id, f"{folder.name}/restored", dry_run=True)
    manager.prune(dry_run=True)


def _raiser(exc: BaseException) -> Callable[[], Any]:
    def raise_it() -> Any:
        raise exc

    return raise_it


_keep: list[object] = []
"""Components stay alive until collection (observable instruments skip collected ones)."""

SCENARIOS: dict[str, Callable[[], None]] = {
    "otelres.resilience._breaker": _breaker_scenario,
    "otelres.resilience._retry": _retry_scenario,
    "otelres.resilience._rate_limiter": _limiter_scenario,
    "otelres.resilience._bulkhead": _bulkhead_scenario,
    "otelres.resilience._timeout": _timeout_scenario,
    "otelres.resilience._fallback": _fallback_scenario,
    "otelres.resilience._policy": _policy_scenario,
    "otelres.resilience._redis_client": _redis_scenario,
    "otelres.health._telemetry": _health_scenario,
    "otelres.monitoring._alerts": _alerts_scenario,
    "otelres.backup._telemetry": _backup_scenario,
    "otelres_instrumentation_ccxt._runtime": lambda: _ccxt_scenario(),
}
"""Owner module -> a function making every instrument, span and event it owns appear."""


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# --------------------------------------------------------------------------- what was emitted
@dataclass
class Emitted:
    instruments: dict[str, Any]
    points: dict[str, list[dict[str, Any]]]
    units: dict[str, str]
    spans: dict[str, dict[str, list[dict[str, Any]]]]
    """mode -> span or event name (prefixed ``span:`` / ``event:``) -> attribute dicts."""


def _run(capture: TelemetryCapture, mode: str) -> dict[str, list[dict[str, Any]]]:
    _otel.set_span_mode(mode)
    capture.clear()
    tracer = capture.tracer_provider.get_tracer("contract-app")
    for owner, scenario in SCENARIOS.items():
        with tracer.start_as_current_span(f"app {owner}"):
            scenario()
    seen: dict[str, list[dict[str, Any]]] = {}
    for span in capture.spans():
        seen.setdefault(f"span:{span.name}", []).append(dict(span.attributes or {}))
        for event in span.events:
            seen.setdefault(f"event:{event.name}", []).append(dict(event.attributes or {}))
    return seen


def _instruments(capture: TelemetryCapture) -> dict[str, Any]:
    """The otelres instruments registered with the SDK meter provider, by name."""
    found: dict[str, Any] = {}
    meters = getattr(capture.meter_provider, "_meters", None)
    assert meters is not None, "SDK internals changed: update _instruments() in this test"
    for meter in meters.values():
        if getattr(meter, "_instrumentation_scope", None) is None:
            continue
        if meter._instrumentation_scope.name not in ("otelres", "otelres_instrumentation_ccxt"):
            continue
        for instrument in meter._instrument_id_instrument.values():
            found[instrument.name] = instrument
    return found


@pytest.fixture(name="emitted", scope="module")
def _emitted() -> Iterator[Emitted]:
    config.set_current(config.Config())
    capture = capture_telemetry()
    try:
        spans = {mode: _run(capture, mode) for mode in ("off", "events", "always")}
        points: dict[str, list[dict[str, Any]]] = {}
        units: dict[str, str] = {}
        for point in capture.points():
            points.setdefault(point.name, []).append(point.attributes)
            units[point.name] = point.unit
        yield Emitted(_instruments(capture), points, units, spans)
    finally:
        _keep.clear()
        _otel.set_span_mode("events")
        config.set_current(None)


def _require_owner(row: Row) -> None:
    if not _exists(row.owner):
        pytest.fail(f"{row.name}: its owner {row.owner} does not exist; fix the row or the module")
    if row.owner not in SCENARIOS:
        pytest.fail(
            f"{row.name}: no scenario for its owner {row.owner}; add one to SCENARIOS in "
            "tests/test_telemetry_contract.py"
        )


def _check_attributes(row: Row, found: list[dict[str, Any]]) -> None:
    for attributes in found:
        keys = set(attributes)
        assert row.required <= keys, f"{row}: missing {sorted(row.required - keys)}"
        assert keys <= row.keys, f"{row}: unlisted attributes {sorted(keys - row.keys)}"
        for key, allowed in row.values.items():
            if key in attributes:
                assert str(attributes[key]) in allowed, (
                    f"{row}: {key}={attributes[key]!r} is not one of {sorted(allowed)}"
                )
    for key in row.optional:
        assert any(key in a for a in found), f"{row}: optional {key} never seen; drop it?"


_KINDS: dict[str, type] = {
    "counter": metrics_api.Counter,
    "histogram": metrics_api.Histogram,
    "observable counter": metrics_api.ObservableCounter,
    "observable gauge": metrics_api.ObservableGauge,
    "up-down counter": metrics_api.UpDownCounter,
    "observable up-down counter": metrics_api.ObservableUpDownCounter,
}


# --------------------------------------------------------------------------- the tests
def test_the_tables_were_read() -> None:
    """The parser found the documented rows (so an edit cannot silently empty the contract)."""
    names = {row.name for row in METRIC_ROWS}
    assert {"otelres.breaker.calls", "otelres.breaker.state"} <= names
    assert any(row.name == "otelres.breaker.rejected" for row in SPAN_ROWS)
    assert all(row.kind in _KINDS for row in METRIC_ROWS), [r.kind for r in METRIC_ROWS]
    assert all(row.kind in ("span", "event") for row in SPAN_ROWS)
    assert all(row.mode in ("events", "always") for row in SPAN_ROWS)


@pytest.mark.parametrize("row", METRIC_ROWS, ids=str)
def test_instrument_is_emitted_as_documented(row: Row, emitted: Emitted) -> None:
    """The instrument exists with the documented kind and unit, and its points the documented attributes."""
    _require_owner(row)
    instrument = emitted.instruments.get(row.name)
    assert instrument is not None, f"{row.name} is documented but never created"
    assert isinstance(instrument, _KINDS[row.kind]), (
        f"{row.name}: documented as {row.kind}, created as {type(instrument).__name__}"
    )
    assert row.name in emitted.points, f"{row.name} produced no points"
    assert emitted.units[row.name] == row.unit
    _check_attributes(row, emitted.points[row.name])


@pytest.mark.parametrize("row", SPAN_ROWS, ids=str)
def test_span_or_event_is_emitted_as_documented(row: Row, emitted: Emitted) -> None:
    """The span or event appears from its documented mode on, with the documented attributes."""
    _require_owner(row)
    key = f"{row.kind}:{row.name}"
    assert key not in emitted.spans["off"], f"{row} appears in span mode off"
    if row.mode == "always":
        assert key not in emitted.spans["events"], f"{row} appears in mode events already"
    found = emitted.spans["always"].get(key, [])
    assert found, f"{row} never appeared in mode always"
    if row.mode == "events":
        assert emitted.spans["events"].get(key), f"{row} did not appear in mode events"
    _check_attributes(row, found + emitted.spans["events"].get(key, []))


def test_every_emitted_instrument_is_documented(emitted: Emitted) -> None:
    """Nothing otelres emits is missing from docs/TELEMETRY.md."""
    documented = {row.name for row in METRIC_ROWS}
    owners = {row.owner for row in METRIC_ROWS} | set(SCENARIOS)
    assert owners
    # The global provider also holds what other tests in the session recorded under names of
    # their own (the metrics facade's user-named instruments, "operation_duration"...): only
    # otelres' namespace is the contract.
    ours = {name for name in emitted.points if name.startswith("otelres.")}
    assert ours <= documented, sorted(ours - documented)


def test_every_emitted_span_and_event_is_documented(emitted: Emitted) -> None:
    """Every span and event otelres made in the scenarios is in docs/TELEMETRY.md."""
    documented = {f"{row.kind}:{row.name}" for row in SPAN_ROWS}
    made = {
        key
        for seen in emitted.spans.values()
        for key in seen
        if key.split(":", 1)[1].startswith("otelres")
    }
    assert made <= documented, sorted(made - documented)
