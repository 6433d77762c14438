"""The built-in checks against real breakers, limiters, backups and file systems."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from otelres.health import (
    BackupFreshnessCheck,
    CircuitBreakerCheck,
    DiskSpaceCheck,
    HealthStatus,
    RateLimiterCheck,
    TelemetryExportCheck,
)
from otelres.resilience import CircuitBreaker, RateLimiter, RateLimitExceededError
from otelres.testing import FakeClock
from tests.conftest import free_port


def _fail(breaker: CircuitBreaker, times: int) -> None:
    def boom() -> None:
        raise ConnectionError("down")

    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call(boom)


def test_breakers_closed_is_green_open_is_red() -> None:
    """All watched breakers closed is GREEN; one tripped open makes the check RED naming it."""
    kraken = CircuitBreaker("kraken", failure_threshold=2)
    binance = CircuitBreaker("binance", failure_threshold=2)
    check = CircuitBreakerCheck(source=lambda: [kraken, binance])
    result = check.check()
    assert result.status is HealthStatus.GREEN
    assert result.details["breakers"] == {"kraken": "closed", "binance": "closed"}
    _fail(kraken, 2)
    result = check.check()
    assert result.status is HealthStatus.RED
    assert "kraken (open)" in result.message


def test_forced_and_disabled_breakers_are_yellow() -> None:
    """A breaker forced open or disabled by hand makes the check YELLOW."""
    manual = CircuitBreaker("manual")
    check = CircuitBreakerCheck(source=lambda: [manual])
    manual.force_open()
    assert check.check().status is HealthStatus.YELLOW
    manual.disable()
    assert check.check().status is HealthStatus.YELLOW


def test_a_half_open_breaker_is_yellow() -> None:
    """A breaker probing in half-open state makes the check YELLOW."""
    clock = FakeClock()
    breaker = CircuitBreaker("probe", failure_threshold=1, reset_timeout=10, clock=clock)
    _fail(breaker, 1)
    clock.advance(11)
    states = []

    def probe() -> None:
        states.append(CircuitBreakerCheck(source=lambda: [breaker]).check().status)

    breaker.call(probe)
    assert states == [HealthStatus.YELLOW]


def test_only_watched_breakers_count() -> None:
    """With watched names, other breakers are ignored and missing ones are listed as not created."""
    noisy = CircuitBreaker("noisy", failure_threshold=1)
    _fail(noisy, 1)
    check = CircuitBreakerCheck(["kraken"], source=lambda: [noisy])
    result = check.check()
    assert result.status is HealthStatus.GREEN
    assert result.details["not_created"] == ["kraken"]


def test_registered_breakers_are_found_by_default() -> None:
    """Without a source the check reads the process's breaker registry."""
    from otelres.resilience import get_breaker

    breaker = get_breaker("health_registry_probe", failure_threshold=1)
    _fail(breaker, 1)
    result = CircuitBreakerCheck(["health_registry_probe"]).check()
    assert result.status is HealthStatus.RED
    breaker.reset()


def test_limiter_rejections_turn_yellow_and_clear_next_interval() -> None:
    """Rejections since the previous run above the threshold are YELLOW; a quiet interval is GREEN again."""
    clock = FakeClock()
    limiter = RateLimiter("api", rate=1, capacity=1, mode="reject", clock=clock)
    check = RateLimiterCheck(source=lambda: [limiter])
    limiter.acquire()
    with pytest.raises(RateLimitExceededError):
        limiter.acquire()
    result = check.check()
    assert result.status is HealthStatus.YELLOW
    assert result.details["limiters"]["api"]["rejected"] == 1
    assert "api rejected 1" in result.message
    assert check.check().status is HealthStatus.GREEN


def test_limiter_waits_over_the_ratio_turn_yellow() -> None:
    """More waited acquisitions than max_wait_ratio since the last run is YELLOW."""
    clock = FakeClock()
    limiter = RateLimiter("slow_api", rate=10, capacity=1, clock=clock, sleep=clock.sleep)
    check = RateLimiterCheck(max_wait_ratio=0.5, source=lambda: [limiter])
    for _ in range(4):
        limiter.acquire()  # the first is immediate, the next three wait
    result = check.check()
    assert result.status is HealthStatus.YELLOW
    assert result.details["limiters"]["slow_api"]["wait_ratio"] == 0.75


def _backups(*ages_hours: float) -> SimpleNamespace:
    now = datetime.now(timezone.utc)
    infos = [SimpleNamespace(backup_id=f"manual_{i}", timestamp=now - timedelta(hours=age))
             for i, age in enumerate(ages_hours)]
    return SimpleNamespace(list_backups=lambda: infos)


@pytest.mark.parametrize(
    ("ages", "status"),
    [((1.0,), HealthStatus.GREEN), ((30.0,), HealthStatus.YELLOW), ((49.0,), HealthStatus.RED),
     ((), HealthStatus.RED)],
)
def test_backup_freshness_thresholds(ages: tuple[float, ...], status: HealthStatus) -> None:
    """Newest backup within interval_hours is GREEN, past it YELLOW, past twice it or none RED."""
    result = BackupFreshnessCheck(_backups(*ages), interval_hours=24).check()
    assert result.status is status
    if ages:
        assert result.details["age"]["unit"] == "h"
    else:
        assert result.message == "no backup found"


def test_backup_freshness_with_a_real_backup_manager(tmp_path: Path) -> None:
    """A fresh backup made by BackupManager is GREEN; the same backup a day and a half later is YELLOW."""
    from otelres.backup import BackupManager

    manager = BackupManager(tmp_path / "backups")
    empty = BackupFreshnessCheck(manager, interval_hours=24).check()
    assert empty.status is HealthStatus.RED
    backup_id = manager.create_backup({"portfolio": {"BTC": 1.5}}, backup_type="manual")
    fresh = BackupFreshnessCheck(manager, interval_hours=24).check()
    assert fresh.status is HealthStatus.GREEN
    assert fresh.details["backup_id"] == backup_id
    later = datetime.now(timezone.utc).timestamp() + 36 * 3600
    assert BackupFreshnessCheck(manager, interval_hours=24, clock=lambda: later).check().status is HealthStatus.YELLOW


def test_backup_freshness_can_watch_one_backup_type(tmp_path: Path) -> None:
    """With backup_type="scheduled", a fresh manual backup does not hide a stalled scheduler."""
    from otelres.backup import BackupManager

    manager = BackupManager(tmp_path / "backups")
    manager.create_backup({"portfolio": {"BTC": 1.5}}, backup_type="manual")
    assert BackupFreshnessCheck(manager, interval_hours=24).check().status is HealthStatus.GREEN
    scheduled = BackupFreshnessCheck(manager, interval_hours=24, backup_type="scheduled").check()
    assert scheduled.status is HealthStatus.RED
    assert scheduled.message == "no scheduled backup found"
    backup_id = manager.create_backup({"portfolio": {"BTC": 1.5}}, backup_type="scheduled")
    fresh = BackupFreshnessCheck(manager, interval_hours=24, backup_type="scheduled").check()
    assert fresh.status is HealthStatus.GREEN
    assert fresh.details["backup_id"] == backup_id


def test_only_damaged_backups_are_red_naming_the_damage(tmp_path: Path) -> None:
    """When every backup BackupManager lists is damaged, the check is RED naming the newest
    damaged backup and its problem, not "no backup found"."""
    from otelres.backup import BackupManager

    manager = BackupManager(tmp_path / "backups")
    backup_id = manager.create_backup({"portfolio": {"BTC": 1.5}}, backup_type="manual")
    for manifest in (tmp_path / "backups").rglob("*manifest*"):
        manifest.write_bytes(manifest.read_bytes() + b"garbage")
    result = BackupFreshnessCheck(manager, interval_hours=24).check()
    assert result.status is HealthStatus.RED
    assert result.message.startswith(f"no valid backup: 1 unusable backup, newest {backup_id}: ")
    assert result.details["unusable"][0]["backup_id"] == backup_id


def test_breakers_built_directly_are_found_by_default() -> None:
    """Without a source the check also sees breakers built with CircuitBreaker(...), not
    only those of the registry."""
    breaker = CircuitBreaker("health_direct_probe", failure_threshold=1)
    _fail(breaker, 1)
    result = CircuitBreakerCheck().check()
    assert result.status is HealthStatus.RED
    assert result.details["breakers"]["health_direct_probe"] == "open"


def test_disk_space_thresholds(tmp_path: Path) -> None:
    """Free space above the minimum is GREEN, below it YELLOW, below the critical level RED."""
    free = shutil.disk_usage(tmp_path).free
    target = tmp_path / "not" / "created" / "yet"
    assert DiskSpaceCheck(target, min_free_bytes=1).check().status is HealthStatus.GREEN
    yellow = DiskSpaceCheck(target, min_free_bytes=free * 4, critical_free_bytes=1).check()
    assert yellow.status is HealthStatus.YELLOW
    red = DiskSpaceCheck(target, min_free_bytes=free * 4).check()
    assert red.status is HealthStatus.RED
    assert red.details["free"]["unit"] == "By"


@pytest.mark.parametrize(
    ("record", "status", "message"),
    [
        (None, HealthStatus.GREEN, "telemetry not configured in this process"),
        (SimpleNamespace(ok=None, last_error=None, at=None), HealthStatus.GREEN, "no export attempted yet"),
        (SimpleNamespace(ok=True, last_error=None, at=1.0), HealthStatus.GREEN, "last export succeeded"),
        (SimpleNamespace(ok=False, last_error="StatusCode.UNAVAILABLE", at=1.0), HealthStatus.YELLOW,
         "last export failed: StatusCode.UNAVAILABLE"),
    ],
)
def test_telemetry_export_status(record: object, status: HealthStatus, message: str) -> None:
    """A failed last export is YELLOW; no export, or a successful one, is GREEN."""
    result = TelemetryExportCheck(status=lambda: record).check()
    assert (result.status, result.message) == (status, message)


def test_telemetry_check_reads_the_real_export_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a status function the check reads otelres.telemetry.export_status()."""
    import otelres.telemetry
    from otelres.telemetry import ExportStatus

    failed = ExportStatus(ok=False, signal="metrics", at=time.time(), last_error="collector unreachable")
    monkeypatch.setattr(otelres.telemetry, "_status", failed)
    result = TelemetryExportCheck().check()
    assert result.status is HealthStatus.YELLOW
    assert result.message == "last metrics export failed: collector unreachable"
    assert result.details["signal"] == "metrics"


def test_telemetry_check_after_a_real_failed_export() -> None:
    """After configure() exported metrics over OTLP to a port nobody listens on, the check is
    YELLOW naming the signal, with the failure count."""
    from otelres.config import config_from_dict
    from otelres.telemetry import configure

    settings = {
        "metrics_exporter": "otlp", "otlp_protocol": "http/protobuf",
        "otlp_endpoint": f"http://127.0.0.1:{free_port()}", "otlp_timeout_seconds": 0.5,
        "metric_export_interval_seconds": 600,
    }
    telemetry = configure(config_from_dict({"telemetry": settings}), set_global=False)
    try:
        telemetry.meter_provider.get_meter("probe").create_counter("probe.calls").add(1)
        telemetry.force_flush(timeout_seconds=5)
        result = TelemetryExportCheck().check()
    finally:
        telemetry.shutdown(timeout_seconds=1)
    assert result.status is HealthStatus.YELLOW
    assert result.message.startswith("last metrics export failed: ")
    assert result.details["failures"] >= 1
