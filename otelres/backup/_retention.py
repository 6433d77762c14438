"""Which backups to keep: ``retention_days`` plus restic-style keep rules.

The rules, all combined with OR (a backup any rule keeps is kept):

* ``retention_days``: every backup younger than this many days (the seed's rule);
* ``keep_last``: the *n* newest backups;
* ``keep_daily`` / ``keep_weekly`` / ``keep_monthly``: for the *n* most recent calendar
  days / ISO weeks / months that have backups, the newest backup of each (UTC calendar);
* always: the newest valid backup.

As in restic, buckets are counted only where backups exist (``keep_daily = 7`` keeps
the newest backup of each of the last seven days *that have one*), and a policy with
no rule at all is refused rather than read as "delete everything".

Rules apply per ``backup_type`` (each type has its own newest backup and buckets), and
only to valid backups: a damaged backup never fills a slot that a valid one needs, and
it is never deleted by retention (it is evidence; delete it explicitly).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from otelres.backup._errors import RetentionPolicyError

if TYPE_CHECKING:
    from otelres.backup._manifest import BackupInfo
    from otelres.config import BackupSettings

__all__ = ["RetentionPlan", "RetentionPolicy", "plan_retention"]


@dataclass(frozen=True)
class RetentionPolicy:
    """The keep rules; zero turns a rule off. Build one from settings with :meth:`from_settings`.

    Keep a week of daily backups, a quarter of weeklies, a year of monthlies, and whatever is
    younger than two days::

        RetentionPolicy(retention_days=2, keep_daily=7, keep_weekly=13, keep_monthly=12)

    Pass it as ``BackupManager(retention=...)`` or set the same names under ``[backup]``.
    """

    retention_days: int = 0
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    def __post_init__(self) -> None:
        for name in ("retention_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RetentionPolicyError(f"backup.{name}: expected an integer >= 0, got {value!r}")

    @classmethod
    def from_settings(cls, settings: BackupSettings) -> RetentionPolicy:
        """The policy of a ``[backup]`` section."""
        return cls(
            retention_days=settings.retention_days,
            keep_last=settings.keep_last,
            keep_daily=settings.keep_daily,
            keep_weekly=settings.keep_weekly,
            keep_monthly=settings.keep_monthly,
        )

    @property
    def is_empty(self) -> bool:
        """True when no rule is on."""
        return not (
            self.retention_days or self.keep_last or self.keep_daily
            or self.keep_weekly or self.keep_monthly
        )

    def describe(self) -> str:
        """The rules that are on, for messages: ``"retention_days=30, keep_last=3"``."""
        parts = [
            f"{name}={getattr(self, name)}"
            for name in ("retention_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly")
            if getattr(self, name)
        ]
        return ", ".join(parts) or "no rules"


@dataclass(frozen=True)
class RetentionPlan:
    """What a prune keeps (with the rules that keep each backup) and what it removes."""

    keep: tuple[tuple[BackupInfo, tuple[str, ...]], ...]
    remove: tuple[BackupInfo, ...]
    untouched: tuple[BackupInfo, ...]
    """Backups that are not valid: neither kept by a rule nor removed."""


def _buckets() -> list[tuple[str, Callable[[datetime], Hashable]]]:
    """The calendar bucket of each rule: UTC day, ISO week, month (whatever the timestamp's
    own timezone, so a backup made at 01:00 +02:00 falls on the previous UTC day)."""
    def utc(moment: datetime) -> datetime:
        return moment.astimezone(timezone.utc)

    return [
        ("daily", lambda t: utc(t).date()),
        ("weekly", lambda t: utc(t).isocalendar()[:2]),
        ("monthly", lambda t: utc(t).timetuple()[:2]),
    ]


def plan_retention(
    backups: Sequence[BackupInfo], policy: RetentionPolicy, now: datetime
) -> RetentionPlan:
    """Decide which of *backups* the *policy* keeps at time *now* (nothing is deleted here).

    Raises :class:`RetentionPolicyError` for an empty policy and :class:`ValueError` for a
    naive *now* (it would be read in no particular timezone).
    """
    if now.tzinfo is None:
        raise ValueError(f"now: expected a timezone-aware datetime, got {now!r}")
    if policy.is_empty:
        raise RetentionPolicyError(
            "refusing to prune with an empty retention policy (it would keep only the newest "
            "backup); set backup.retention_days or one of backup.keep_last / keep_daily / "
            "keep_weekly / keep_monthly"
        )
    valid = [b for b in backups if b.valid]
    untouched = tuple(b for b in backups if not b.valid)
    reasons: dict[str, list[str]] = {b.backup_id: [] for b in valid}
    groups: dict[str, list[BackupInfo]] = {}
    for backup in valid:
        groups.setdefault(backup.backup_type, []).append(backup)
    counts = {
        "daily": policy.keep_daily,
        "weekly": policy.keep_weekly,
        "monthly": policy.keep_monthly,
    }
    horizon = now - timedelta(days=policy.retention_days)
    for group in groups.values():
        group.sort(key=lambda b: (b.timestamp, b.backup_id), reverse=True)
        reasons[group[0].backup_id].append("newest")
        for backup in group[: policy.keep_last]:
            reasons[backup.backup_id].append("last")
        for rule, bucket_of in _buckets():
            wanted = counts[rule]
            seen: Hashable = None
            kept = 0
            for backup in group:
                if kept >= wanted:
                    break
                bucket = bucket_of(backup.timestamp)
                if bucket != seen:
                    reasons[backup.backup_id].append(rule)
                    seen = bucket
                    kept += 1
        if policy.retention_days:
            for backup in group:
                if backup.timestamp >= horizon:
                    reasons[backup.backup_id].append(f"within {policy.retention_days} days")
    ordered = sorted(valid, key=lambda b: (b.timestamp, b.backup_id), reverse=True)
    keep = tuple((b, tuple(reasons[b.backup_id])) for b in ordered if reasons[b.backup_id])
    remove = tuple(b for b in ordered if not reasons[b.backup_id])
    return RetentionPlan(keep=keep, remove=remove, untouched=untouched)
