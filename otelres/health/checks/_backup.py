"""Built-in checks: backup freshness, and free disk space where backups go."""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from otelres.health._check import HealthCheck
from otelres.health._model import HealthResult, HealthStatus

__all__ = ["BackupFreshnessCheck", "BackupSource", "DiskSpaceCheck"]


class BackupSource(Protocol):
    """What :class:`BackupFreshnessCheck` needs from a backup manager.

    :class:`otelres.backup.BackupManager` provides it; so can anything with
    ``list_backups()`` returning backups newest first, each with a ``timestamp``
    (a ``datetime``, Unix seconds, or an ISO 8601 string) and a ``backup_id``.
    ``latest_valid()`` is preferred when present: it skips corrupt backups.
    """

    def list_backups(self) -> Iterable[Any]: ...


class BackupFreshnessCheck(HealthCheck):
    """YELLOW when the newest backup is older than *interval_hours*, RED past twice that or with none.

    *manager* is a :class:`BackupSource` (default: ``otelres.backup.BackupManager()``
    built from the current configuration, created on first use); *interval_hours*
    defaults to ``[backup] interval_hours``. *backup_type* watches one type only, e.g.
    ``"scheduled"`` so that a manual backup cannot hide a stalled scheduler (None, the
    default, takes the newest backup of any type). ``details`` holds the newest backup's id
    and age in hours.
    """

    def __init__(
        self,
        manager: BackupSource | None = None,
        *,
        interval_hours: float | None = None,
        backup_type: str | None = None,
        name: str = "backup",
        tags: Iterable[str] = ("backup",),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_hours is not None and interval_hours <= 0:
            raise ValueError(f"interval_hours must be > 0, got {interval_hours!r}")
        self.manager = manager
        self.interval_hours = interval_hours
        self.backup_type = backup_type
        self.name = name
        self.tags = frozenset(tags)
        self._clock = clock

    def check(self) -> HealthResult:
        """Age of the newest valid backup against the interval."""
        interval = self.interval_hours
        if interval is None:
            from otelres.config import current

            interval = current().backup.interval_hours
        manager = self._manager()
        latest = _latest(manager, self.backup_type)
        details: dict[str, Any] = {"interval_hours": interval}
        if self.backup_type is not None:
            details["backup_type"] = self.backup_type
        if latest is None:
            why = _why_none(manager, self.backup_type, details)
            return HealthResult(self.name, HealthStatus.RED, why, details)
        age_hours = max(0.0, (self._clock() - _unix_time(latest.timestamp)) / 3600.0)
        details["backup_id"] = str(getattr(latest, "backup_id", ""))
        details["age"] = {"value": round(age_hours, 3), "unit": "h"}
        text = f"newest backup is {_hours(age_hours)} old"
        if age_hours > 2 * interval:
            status, text = HealthStatus.RED, f"{text} (limit {_hours(2 * interval)})"
        elif age_hours > interval:
            status, text = HealthStatus.YELLOW, f"{text} (interval {_hours(interval)})"
        else:
            status = HealthStatus.GREEN
        return HealthResult(self.name, status, text, details)

    def _manager(self) -> BackupSource:
        """The backup source, a ``BackupManager`` for the current configuration by default."""
        if self.manager is None:
            # Looked up at run time: the backup package is optional for this check.
            backup = importlib.import_module("otelres.backup")
            self.manager = backup.BackupManager()
        return self.manager


class DiskSpaceCheck(HealthCheck):
    """YELLOW when the file system holding *path* has less than *min_free_bytes* free, RED
    below *critical_free_bytes* (default: half of *min_free_bytes*).

    *path* defaults to ``[backup] backup_path`` and *min_free_bytes* to
    ``[backup] min_free_disk_bytes``. A path that does not exist yet is measured at its
    nearest existing parent. ``details["free"]`` is the free space in bytes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        min_free_bytes: int | None = None,
        critical_free_bytes: int | None = None,
        name: str = "disk_space",
        tags: Iterable[str] = ("backup",),
    ) -> None:
        if min_free_bytes is not None and min_free_bytes < 0:
            raise ValueError(f"min_free_bytes must be >= 0, got {min_free_bytes!r}")
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.critical_free_bytes = critical_free_bytes
        self.name = name
        self.tags = frozenset(tags)

    def check(self) -> HealthResult:
        """Free space on the file system of the backup path against the two thresholds."""
        path, minimum = self.path, self.min_free_bytes
        if path is None or minimum is None:
            from otelres.config import current

            backup = current().backup
            path = backup.backup_path if path is None else path
            minimum = backup.min_free_disk_bytes if minimum is None else minimum
        where = _existing(Path(path))
        usage = shutil.disk_usage(where)
        critical = minimum // 2 if self.critical_free_bytes is None else self.critical_free_bytes
        details = {
            "path": str(path),
            "free": {"value": usage.free, "unit": "By"},
            "total": {"value": usage.total, "unit": "By"},
            "min_free": {"value": minimum, "unit": "By"},
            "critical_free": {"value": critical, "unit": "By"},
        }
        text = f"{_bytes(usage.free)} free at {path}"
        if usage.free < critical:
            status, text = HealthStatus.RED, f"{text} (critical below {_bytes(critical)})"
        elif usage.free < minimum:
            status, text = HealthStatus.YELLOW, f"{text} (minimum {_bytes(minimum)})"
        else:
            status = HealthStatus.GREEN
        return HealthResult(self.name, status, text, details)


def _latest(manager: Any, backup_type: str | None) -> Any:
    """The newest valid backup (of *backup_type* when given): ``latest_valid()`` when
    offered, else the first listed."""
    latest_valid = getattr(manager, "latest_valid", None)
    if callable(latest_valid):
        return latest_valid() if backup_type is None else latest_valid(backup_type)
    for backup in _listed(manager, backup_type):
        return backup
    return None


def _listed(manager: Any, backup_type: str | None) -> Iterable[Any]:
    if backup_type is None:
        return manager.list_backups()  # type: ignore[no-any-return]
    return [b for b in manager.list_backups() if getattr(b, "backup_type", None) == backup_type]


def _why_none(manager: Any, backup_type: str | None, details: dict[str, Any]) -> str:
    """Why there is no usable backup: none at all, or only damaged or incomplete ones
    (named in *details*, so "no backup" never hides a backup that needs attention)."""
    unusable = [b for b in _listed(manager, backup_type) if getattr(b, "valid", True) is False]
    if not unusable:
        return "no backup found" if backup_type is None else f"no {backup_type} backup found"
    newest = unusable[0]
    details["unusable"] = [
        {"backup_id": str(b.backup_id), "status": str(getattr(b, "status", "")),
         "problem": getattr(b, "problem", None)}
        for b in unusable[:10]
    ]
    problem = getattr(newest, "problem", None) or getattr(newest, "status", "not valid")
    count = len(unusable)
    return (
        f"no valid backup: {count} unusable backup{'s' if count != 1 else ''}, "
        f"newest {newest.backup_id}: {problem}"
    )


def _unix_time(stamp: Any) -> float:
    """A backup timestamp (datetime, ISO 8601 text or Unix seconds) as Unix seconds."""
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return float(stamp)


def _existing(path: Path) -> Path:
    """*path*, or its nearest existing parent (a backup directory may not exist yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _hours(hours: float) -> str:
    """An age as people read it: minutes below an hour, else hours."""
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def _bytes(count: float) -> str:
    """A byte count in binary units (KiB, MiB, GiB, TiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
