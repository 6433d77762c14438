"""BackupScheduler: periodic backups in a background thread that starts and stops cleanly."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from otelres.backup import BackupManager, BackupScheduler, RetentionPolicy
from otelres.config import BackupSettings


def test_scheduler_backs_up_every_interval_and_stops_promptly(backup_dir: Path) -> None:
    """With a 0.05 s interval the scheduler writes several backups of fresh state, and stop() returns at once."""
    manager = BackupManager(backup_dir)
    counter = iter(range(1000))
    scheduler = BackupScheduler(
        lambda: {"tick": next(counter)}, manager=manager, interval_hours=0.05 / 3600
    )
    assert scheduler.start()
    deadline = time.monotonic() + 20
    while len(manager.list_backups("scheduled")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - started < 5
    assert not scheduler.running
    backups = manager.list_backups("scheduled")
    assert len(backups) >= 3
    ticks = [manager.load_backup(b.backup_id)["tick"] for b in reversed(backups)]
    assert ticks == sorted(ticks)
    assert len(set(ticks)) == len(ticks)


def test_stop_interrupts_a_long_wait(backup_dir: Path) -> None:
    """A scheduler waiting hours for its next run stops within a second."""
    scheduler = BackupScheduler(lambda: {"n": 1}, manager=BackupManager(backup_dir), interval_hours=5)
    with scheduler:
        deadline = time.monotonic() + 10
        while scheduler.last_backup_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    assert not scheduler.running


def test_catch_up_waits_when_a_recent_backup_exists(backup_dir: Path) -> None:
    """After a restart, the first backup is due one interval after the newest existing one, not at once."""
    recent = datetime.now(timezone.utc) - timedelta(hours=1)
    BackupManager(backup_dir, clock=lambda: recent).create_backup({"n": 0}, backup_type="scheduled")
    scheduler = BackupScheduler(lambda: {"n": 1}, manager=BackupManager(backup_dir), interval_hours=24)
    assert scheduler.first_delay() == pytest.approx(23 * 3600, abs=60)
    stale = BackupScheduler(lambda: {"n": 1}, manager=BackupManager(backup_dir), interval_hours=0.5)
    assert stale.first_delay() == 0.0


def test_a_failing_state_callable_is_logged_and_retried(backup_dir: Path) -> None:
    """An exception from the state callable never reaches the app; the scheduler keeps going and recovers."""
    calls = []
    recovered = threading.Event()

    def state() -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("exchange down")
        recovered.set()
        return {"n": len(calls)}

    scheduler = BackupScheduler(
        state, manager=BackupManager(backup_dir), interval_hours=1, retry_seconds=0.02
    )
    with scheduler:
        assert recovered.wait(10)
        deadline = time.monotonic() + 10
        while scheduler.last_backup_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert scheduler.failures == 2
    assert scheduler.last_error is None
    assert scheduler.last_backup_id is not None


def test_scheduler_prunes_after_each_backup(backup_dir: Path) -> None:
    """run_once() applies the retention policy after a successful backup."""
    manager = BackupManager(backup_dir, retention=RetentionPolicy(keep_last=2))
    scheduler = BackupScheduler(lambda: {"n": 1}, manager=manager, interval_hours=1)
    for _ in range(4):
        assert scheduler.run_once() is not None
    assert len(manager.list_backups()) == 2


def test_disabled_backups_do_not_start(backup_dir: Path) -> None:
    """With backup.enabled = false, start() returns False and no thread runs (force=True overrides)."""
    manager = BackupManager(backup_dir, settings=BackupSettings(enabled=False))
    scheduler = BackupScheduler(lambda: {"n": 1}, manager=manager)
    assert scheduler.start() is False
    assert not scheduler.running
    assert scheduler.start(force=True)
    scheduler.stop()


def test_interval_defaults_to_config(backup_dir: Path) -> None:
    """interval_hours comes from [backup] interval_hours when not given; <= 0 is refused."""
    manager = BackupManager(backup_dir, settings=BackupSettings(interval_hours=6))
    assert BackupScheduler(dict, manager=manager).interval == 6 * 3600
    with pytest.raises(ValueError, match="interval_hours"):
        BackupScheduler(dict, manager=manager, interval_hours=0)


async def test_run_async_backs_up_until_cancelled(backup_dir: Path) -> None:
    """run_async() as an asyncio task writes backups without blocking the loop and stops on cancel."""
    import asyncio

    manager = BackupManager(backup_dir)
    scheduler = BackupScheduler(lambda: {"n": 1}, manager=manager, interval_hours=0.05 / 3600)
    task = asyncio.create_task(scheduler.run_async())
    ticks = 0
    deadline = time.monotonic() + 20
    while scheduler.runs < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        ticks += 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(manager.list_backups("scheduled")) >= 3
    assert ticks > 3  # the loop kept running while backups were written


def test_a_failing_state_function_shows_in_the_metrics(backup_dir: Path) -> None:
    """Runs whose state function raised count as failed backups (with error.type), and last_success stays at the last good one."""
    from otelres.testing import capture_telemetry

    capture = capture_telemetry(install_global=False)
    manager = BackupManager(backup_dir, meter_provider=capture.meter_provider)
    calls = []

    def state() -> dict[str, int]:
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("exchange down")
        return {"n": 1}

    scheduler = BackupScheduler(
        state, manager=manager, interval_hours=1e-6, retry_seconds=0.01, prune=False
    )
    with scheduler:
        deadline = time.monotonic() + 10
        while scheduler.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not scheduler.running
    first = manager.list_backups()[0]
    assert len(manager.list_backups()) == 1
    failed = {"backup.type": "scheduled", "backup.outcome": "failure"}
    assert capture.value("otelres.backup.created", **failed) == scheduler.failures >= 3
    durations = capture.points("otelres.backup.duration")
    assert any(p.attributes.get("error.type") == "ConnectionError" for p in durations)
    last = capture.value("otelres.backup.last_success", **{"backup.type": "scheduled"})
    assert last == first.timestamp.timestamp()
