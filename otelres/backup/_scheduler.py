"""Scheduled backups: a small background thread that backs up every ``interval_hours``.

    from otelres.backup import BackupScheduler

    scheduler = BackupScheduler(lambda: {"portfolio": portfolio.snapshot()})
    scheduler.start()          # first backup now if the last one is older than the interval
    ...
    scheduler.stop()           # returns promptly, even in the middle of a long wait

The *state* callable produces the data to back up each time (it runs in the
scheduler's thread). In an asyncio application,
``asyncio.create_task(scheduler.run_async())`` runs the same schedule as a task instead.
A failing backup is logged and counted, never raised into the application, and retried
after ``retry_seconds``; after each success the retention policy is applied
(``prune=True``, when a policy is set).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from otelres.backup._manager import BackupManager

if TYPE_CHECKING:
    import os

__all__ = ["BackupScheduler"]

_log = logging.getLogger("otelres.backup")


class BackupScheduler:
    """Runs ``manager.create_backup(state(), backup_type)`` every *interval_hours*.

    *interval_hours* defaults to ``backup.interval_hours``. With *catch_up* (default)
    the first backup is made at :meth:`start` when the newest valid backup of this type
    is older than the interval (or missing), else when it becomes due, so restarting an
    application does not multiply backups. The scheduler does not start when
    ``backup.enabled`` is false (unless *force*).
    """

    def __init__(
        self,
        state: Callable[[], Mapping[str, Any] | None] | None = None,
        *,
        manager: BackupManager | None = None,
        interval_hours: float | None = None,
        backup_type: str = "scheduled",
        files: Mapping[str, str | os.PathLike[str]] | Iterable[str | os.PathLike[str]] | None = None,
        sqlite: Mapping[str, str | os.PathLike[str]] | Iterable[str | os.PathLike[str]] | None = None,
        prune: bool = True,
        catch_up: bool = True,
        retry_seconds: float | None = None,
    ) -> None:
        self.manager = manager or BackupManager()
        hours = self.manager.settings.interval_hours if interval_hours is None else interval_hours
        if hours <= 0:
            raise ValueError(f"interval_hours must be > 0, got {hours}")
        self.interval = hours * 3600.0
        self.retry_seconds = min(self.interval, 300.0) if retry_seconds is None else retry_seconds
        self.backup_type = backup_type
        self._state = state
        self._files = files
        self._sqlite = sqlite
        self._prune = prune
        self._catch_up = catch_up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_backup_id: str | None = None
        """Id of the last backup this scheduler wrote."""
        self.last_error: BaseException | None = None
        """The exception of the last failed run; None after a success."""
        self.runs = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, force: bool = False) -> bool:
        """Start the background thread; return False when ``backup.enabled`` is off."""
        if not (force or self.manager.settings.enabled):
            _log.info("scheduled backups are off (backup.enabled = false)")
            return False
        with self._lock:
            if self.running:
                return True
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="otelres-backup-scheduler", daemon=True
            )
            self._thread.start()
        return True

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread and wait up to *timeout* seconds for a running backup to finish."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> BackupScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def first_delay(self) -> float:
        """Seconds until the first backup after :meth:`start`."""
        if not self._catch_up:
            return self.interval
        try:
            latest = self.manager.latest_valid(self.backup_type)
        except Exception:
            _log.exception("scheduled backup: could not read the existing backups")
            return 0.0
        if latest is None:
            return 0.0
        return max(0.0, self.interval - latest.age_seconds())

    def run_once(self) -> str | None:
        """Make one backup now (and prune); return its id, or None when it failed."""
        self.runs += 1
        started = time.perf_counter()
        try:
            data = self._state() if self._state is not None else None
        except Exception as exc:
            # create_backup counts its own failures; this one never reached it.
            self.manager._record_failure(self.backup_type, exc, time.perf_counter() - started)
            self._failed(exc, "the state function raised")
            return None
        try:
            backup_id = self.manager.create_backup(
                data, self.backup_type, files=self._files, sqlite=self._sqlite
            )
        except Exception as exc:
            self._failed(exc, "writing it failed")
            return None
        self.last_backup_id = backup_id
        self.last_error = None
        if self._prune and not self.manager.retention.is_empty:
            try:
                self.manager.prune()
            except Exception as exc:
                _log.error("pruning after backup %s failed: %s", backup_id, exc)
        return backup_id

    def _failed(self, exc: Exception, why: str) -> None:
        """Note a failed run (logged, counted, kept in ``last_error``); the schedule goes on."""
        self.failures += 1
        self.last_error = exc
        _log.error(
            "scheduled backup failed (%s): %s: %s; retrying in %.0f s",
            why, type(exc).__name__, exc, self.retry_seconds,
        )

    async def run_async(self) -> None:
        """Run the schedule in an asyncio application, until the task is cancelled::

            task = asyncio.create_task(scheduler.run_async())
            ...
            task.cancel()

        Each backup (and the state callable) runs in a worker thread through
        :func:`asyncio.to_thread`, so the event loop never blocks on compression or
        fsync. Like :meth:`start`, it does nothing when ``backup.enabled`` is false.
        """
        import asyncio

        if not self.manager.settings.enabled:
            _log.info("scheduled backups are off (backup.enabled = false)")
            return
        delay = await asyncio.to_thread(self.first_delay)
        while True:
            await asyncio.sleep(delay)
            started = time.monotonic()
            ok = await asyncio.to_thread(self.run_once) is not None
            spent = time.monotonic() - started
            delay = max(0.0, (self.interval if ok else self.retry_seconds) - spent)

    def _loop(self) -> None:
        """The thread: wait until due (or stopped), back up, repeat."""
        delay = self.first_delay()
        while not self._stop.wait(delay):
            started = time.monotonic()
            ok = self.run_once() is not None
            spent = time.monotonic() - started
            delay = max(0.0, (self.interval if ok else self.retry_seconds) - spent)
