"""Backup metrics and spans, read through real SDK providers in memory."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from otelres import _otel
from otelres.backup import BackupError, BackupManager
from otelres.testing import TelemetryCapture, capture_telemetry

from ._damage import entry_file, flip_byte


@pytest.fixture(name="capture")
def _capture() -> TelemetryCapture:
    return capture_telemetry(install_global=False)


def _manager(backup_dir: Path, capture: TelemetryCapture, **kwargs: object) -> BackupManager:
    return BackupManager(
        backup_dir,
        meter_provider=capture.meter_provider,
        tracer_provider=capture.tracer_provider,
        **kwargs,  # type: ignore[arg-type]
    )


def test_success_metrics(backup_dir: Path, capture: TelemetryCapture) -> None:
    """After two backups: last_success is the newest one's time, size its size, count and created 2, duration 2 points."""
    moments = iter([datetime(2026, 5, 1, tzinfo=timezone.utc), datetime(2026, 5, 2, tzinfo=timezone.utc)])
    manager = _manager(backup_dir, capture, clock=lambda: next(moments))
    manager.create_backup({"portfolio": {"cash": 1}}, backup_type="scheduled")
    newest = manager.create_backup({"portfolio": {"cash": 2}}, backup_type="scheduled")
    attrs = {"backup.type": "scheduled"}
    assert capture.value("otelres.backup.last_success", **attrs) == datetime(
        2026, 5, 2, tzinfo=timezone.utc
    ).timestamp()
    assert capture.value("otelres.backup.size", **attrs) == manager.get_backup(newest).size_bytes
    assert capture.value("otelres.backup.count", **{**attrs, "backup.status": "valid"}) == 2
    assert capture.value("otelres.backup.created", **{**attrs, "backup.outcome": "success"}) == 2
    (duration,) = capture.points("otelres.backup.duration", **{**attrs, "backup.outcome": "success"})
    assert duration.count == 2
    assert duration.unit == "s"
    units = {p.name: p.unit for p in capture.points()}
    assert units["otelres.backup.last_success"] == "s"
    assert units["otelres.backup.size"] == "By"


def test_metrics_come_from_storage_after_a_restart(backup_dir: Path, capture: TelemetryCapture) -> None:
    """A fresh manager over existing backups reports their last success and count, damaged ones apart."""
    BackupManager(backup_dir).create_backup({"n": 1}, backup_type="daily")
    broken = BackupManager(backup_dir).create_backup({"n": 2}, backup_type="daily")
    entry_file(backup_dir, broken, "n").unlink()
    manager = _manager(backup_dir, capture)  # held: managers are observed while alive
    assert capture.value("otelres.backup.count", **{"backup.type": "daily", "backup.status": "valid"}) == 1
    assert capture.value("otelres.backup.count", **{"backup.type": "daily", "backup.status": "damaged"}) == 1
    assert capture.value("otelres.backup.last_success", **{"backup.type": "daily"}) is not None
    assert manager.location == str(backup_dir)


def test_gauges_outlive_a_throw_away_manager(backup_dir: Path, capture: TelemetryCapture) -> None:
    """The seed's `BackupManager().create_backup(...)` leaves last_success published after the
    manager is garbage collected, so a staleness alert keeps seeing it."""
    import gc

    created = _manager(backup_dir, capture).create_backup({"n": 1}, backup_type="daily")
    gc.collect()
    when = BackupManager(backup_dir).get_backup(created).timestamp.timestamp()
    assert capture.value("otelres.backup.last_success", **{"backup.type": "daily"}) == when


def test_failure_metrics_and_span(backup_dir: Path, capture: TelemetryCapture) -> None:
    """A backup refused for bad input counts as a failure, with error.type on its duration and an ERROR span."""
    manager = _manager(backup_dir, capture)
    with pytest.raises(BackupError):
        manager.create_backup(files=[backup_dir / "missing.txt"], backup_type="scheduled")
    failure = {"backup.type": "scheduled", "backup.outcome": "failure"}
    assert capture.value("otelres.backup.created", **failure) == 1
    (point,) = capture.points("otelres.backup.duration", **failure)
    assert point.attributes["error.type"] == "BackupError"
    (span,) = capture.spans("otelres.backup.create")
    assert not span.status.is_ok
    assert span.attributes["error.type"] == "BackupError"  # type: ignore[index]
    capture.clear()
    manager.create_backup({"a": 1})
    (span,) = capture.spans("otelres.backup.create")
    assert span.attributes["backup.type"] == "manual"  # type: ignore[index]
    assert span.status.is_ok


def test_write_failure_is_counted(backup_dir: Path, capture: TelemetryCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O failure while writing counts as outcome=failure with error.type and an ERROR span."""
    manager = _manager(backup_dir, capture)

    def broken(*args: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manager, "_write_entry", broken)
    with pytest.raises(BackupError, match="No space left"):
        manager.create_backup({"a": 1})
    failure = {"backup.type": "manual", "backup.outcome": "failure"}
    assert capture.value("otelres.backup.created", **failure) == 1
    (point,) = capture.points("otelres.backup.duration", **failure)
    assert point.attributes["error.type"] == "BackupError"
    (span,) = capture.spans("otelres.backup.create")
    assert not span.status.is_ok
    assert manager.list_backups() == []


def test_verify_restore_and_prune_have_spans(backup_dir: Path, capture: TelemetryCapture, tmp_path: Path) -> None:
    """verify, restore and prune each produce one span; span mode "off" produces none."""
    from otelres.backup import RecoveryManager

    manager = _manager(backup_dir, capture)
    backup_id = manager.create_backup({"a": 1})
    flip_byte(entry_file(backup_dir, manager.create_backup({"b": 1}), "b"), 12)
    RecoveryManager(manager).verify(backup_id)
    RecoveryManager(manager).restore(backup_id, tmp_path / "out")
    manager.prune(dry_run=True)
    names = [s.name for s in capture.spans()]
    for name in ("otelres.backup.verify", "otelres.backup.restore", "otelres.backup.prune"):
        assert names.count(name) == 1, names
    capture.clear()
    _otel.set_span_mode("off")
    manager.create_backup({"a": 2})
    assert capture.spans() == []


def test_gauges_follow_backups_written_by_other_processes(
    backup_dir: Path, capture: TelemetryCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the figures are older than STATS_MAX_AGE, the gauges list storage again and show another writer's newer backup."""
    moments = iter([datetime(2026, 5, 1, tzinfo=timezone.utc)])
    watched = _manager(backup_dir, capture, clock=lambda: next(moments))
    watched.create_backup({"n": 1}, backup_type="daily")
    attrs = {"backup.type": "daily"}
    assert capture.value("otelres.backup.count", **attrs, **{"backup.status": "valid"}) == 1
    other = BackupManager(backup_dir)  # e.g. `make backup` from cron, or a second bot
    newer = other.get_backup(other.create_backup({"n": 2}, backup_type="daily"))
    monkeypatch.setattr(BackupManager, "STATS_MAX_AGE", 0.0)
    assert capture.value("otelres.backup.count", **attrs, **{"backup.status": "valid"}) == 2
    assert capture.value("otelres.backup.last_success", **attrs) == newer.timestamp.timestamp()
