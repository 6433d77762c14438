"""Retention: restic's keep rules, the seed's retention_days, and prune."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from itertools import groupby
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelres.backup import (
    BackupInfo,
    BackupManager,
    RetentionPolicy,
    RetentionPolicyError,
    plan_retention,
)

from ._damage import entry_file, flip_byte

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def info(moment: datetime, backup_type: str = "scheduled", status: str = "valid") -> BackupInfo:
    return BackupInfo(
        backup_id=f"{moment:%Y%m%dT%H%M%S.%fZ}_{backup_type}_0000",
        timestamp=moment,
        backup_type=backup_type,
        size_bytes=1,
        compressed=True,
        files=("x",),
        status=status,  # type: ignore[arg-type]
    )


def kept_ids(plan: object) -> set[str]:
    return {b.backup_id for b, _ in plan.keep}  # type: ignore[attr-defined]


def test_empty_policy_is_refused() -> None:
    """A policy with no rule is refused instead of deleting everything but one backup."""
    with pytest.raises(RetentionPolicyError, match="empty retention policy"):
        plan_retention([info(NOW)], RetentionPolicy(), NOW)


def test_negative_rule_is_refused() -> None:
    """A negative count is refused naming the setting."""
    with pytest.raises(RetentionPolicyError, match="keep_daily"):
        RetentionPolicy(keep_daily=-1)


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    """keep_daily=2 keeps the newest backup of each of the two most recent days that have backups."""
    backups = [info(NOW - timedelta(hours=h)) for h in (1, 3, 13, 15, 40, 60)]
    # Days: 06-15 (1h, 3h), 06-14 (13h, 15h), 06-13 (40h), 06-12 (60h)
    plan = plan_retention(backups, RetentionPolicy(keep_daily=2), NOW)
    assert kept_ids(plan) == {backups[0].backup_id, backups[2].backup_id}
    assert dict((b.backup_id, r) for b, r in plan.keep)[backups[0].backup_id] == ("newest", "daily")


def test_rules_combine_with_or() -> None:
    """A backup any rule keeps is kept: last, weekly, monthly and retention_days together."""
    backups = [info(NOW - timedelta(days=d)) for d in (0, 1, 2, 9, 20, 40, 75, 200)]
    policy = RetentionPolicy(keep_last=2, keep_weekly=3, keep_monthly=3, retention_days=1)
    plan = plan_retention(backups, policy, NOW)
    reasons = {b.backup_id: r for b, r in plan.keep}
    assert "last" in reasons[backups[1].backup_id]
    assert "weekly" in reasons[backups[3].backup_id]
    assert "monthly" in reasons[backups[6].backup_id]
    assert backups[7].backup_id not in reasons
    assert {b.backup_id for b in plan.remove} == {b.backup_id for b in backups} - set(reasons)


def test_damaged_backups_take_no_slot_and_are_not_removed() -> None:
    """A damaged newest backup of a day neither fills the daily slot nor gets deleted."""
    damaged = info(NOW - timedelta(hours=1), status="damaged")
    good_same_day = info(NOW - timedelta(hours=2))
    older = info(NOW - timedelta(days=3))
    plan = plan_retention([damaged, good_same_day, older], RetentionPolicy(keep_daily=1), NOW)
    assert kept_ids(plan) == {good_same_day.backup_id}
    assert plan.untouched == (damaged,)
    assert plan.remove == (older,)


def test_each_type_keeps_its_own_newest() -> None:
    """Retention applies per backup type: each type's newest backup survives keep_last=1."""
    backups = [info(NOW - timedelta(days=d), t) for d, t in ((0, "scheduled"), (1, "scheduled"), (50, "manual"))]
    plan = plan_retention(backups, RetentionPolicy(keep_last=1), NOW)
    assert kept_ids(plan) == {backups[0].backup_id, backups[2].backup_id}


# ----------------------------------------------------------------------------- properties
moments = st.lists(
    st.integers(min_value=0, max_value=400 * 24 * 60).map(lambda m: NOW - timedelta(minutes=m)),
    min_size=1,
    max_size=40,
    unique=True,
)
policies = st.builds(
    RetentionPolicy,
    retention_days=st.integers(0, 40),
    keep_last=st.integers(0, 5),
    keep_daily=st.integers(0, 10),
    keep_weekly=st.integers(0, 6),
    keep_monthly=st.integers(0, 8),
).filter(lambda p: not p.is_empty)


def _expected_bucket_keeps(ordered: list[BackupInfo], count: int, key: object) -> set[str]:
    """Independent oracle: the newest backup of each of the *count* newest buckets."""
    buckets = [list(group) for _, group in groupby(ordered, key=lambda b: key(b.timestamp))]  # type: ignore[operator]
    return {group[0].backup_id for group in buckets[:count]}


@settings(max_examples=300, deadline=None)
@given(times=moments, policy=policies)
def test_retention_rules_hold(times: list[datetime], policy: RetentionPolicy) -> None:
    """For any backups and non-empty policy: the newest is kept, every rule's picks are kept, nothing else is."""
    backups = [info(moment) for moment in times]
    plan = plan_retention(backups, policy, NOW)
    ordered = sorted(backups, key=lambda b: b.timestamp, reverse=True)
    kept = kept_ids(plan)
    removed = {b.backup_id for b in plan.remove}
    assert kept | removed == {b.backup_id for b in backups}
    assert not kept & removed
    expected = {ordered[0].backup_id}
    expected |= {b.backup_id for b in ordered[: policy.keep_last]}
    expected |= _expected_bucket_keeps(ordered, policy.keep_daily, lambda t: t.date())
    expected |= _expected_bucket_keeps(ordered, policy.keep_weekly, lambda t: t.isocalendar()[:2])
    expected |= _expected_bucket_keeps(ordered, policy.keep_monthly, lambda t: (t.year, t.month))
    if policy.retention_days:
        horizon = NOW - timedelta(days=policy.retention_days)
        expected |= {b.backup_id for b in backups if b.timestamp >= horizon}
    assert kept == expected


@settings(max_examples=100, deadline=None)
@given(times=moments, policy=policies, damaged=st.sets(st.integers(0, 39)))
def test_newest_valid_backup_is_always_kept(
    times: list[datetime], policy: RetentionPolicy, damaged: set[int]
) -> None:
    """Whatever the policy and whichever backups are damaged, the newest valid backup is kept and no damaged one removed."""
    backups = [info(m, status="damaged" if i in damaged else "valid") for i, m in enumerate(times)]
    plan = plan_retention(backups, policy, NOW)
    valid = sorted((b for b in backups if b.valid), key=lambda b: b.timestamp)
    if valid:
        assert valid[-1].backup_id in kept_ids(plan)
    assert all(b.valid for b in plan.remove)


# ----------------------------------------------------------------------------- prune
def _manager_at(backup_dir: Path, times: list[datetime], **kwargs: object) -> BackupManager:
    moments = iter(times)
    return BackupManager(backup_dir, clock=lambda: next(moments), **kwargs)  # type: ignore[arg-type]


def test_prune_dry_run_deletes_nothing(backup_dir: Path) -> None:
    """prune(dry_run=True) reports what would go and leaves every backup in place."""
    times = [NOW - timedelta(days=d) for d in (10, 5, 1)]
    manager = _manager_at(backup_dir, times, retention=RetentionPolicy(keep_last=1))
    for n in range(3):
        manager.create_backup({"n": n})
    result = manager.prune(dry_run=True, now=NOW)
    assert result.dry_run
    assert len(result.removed) == 2
    assert len(manager.list_backups()) == 3


def test_prune_deletes_what_the_policy_does_not_keep(backup_dir: Path) -> None:
    """prune() deletes exactly the backups outside the policy (retention_days=7 here)."""
    times = [NOW - timedelta(days=d) for d in (30, 20, 6, 1)]
    manager = _manager_at(backup_dir, times, retention=RetentionPolicy(retention_days=7))
    ids = [manager.create_backup({"n": n}) for n in range(4)]
    result = manager.prune(now=NOW)
    assert {b.backup_id for b in result.removed} == set(ids[:2])
    assert [b.backup_id for b in manager.list_backups()] == ids[:1:-1]


def test_prune_never_deletes_the_only_valid_backup_when_newer_ones_are_damaged(backup_dir: Path) -> None:
    """If every newer backup is bit-rotten, prune keeps the newest one that really verifies."""
    times = [NOW - timedelta(days=d) for d in (100, 50, 2, 1)]
    manager = _manager_at(backup_dir, times, retention=RetentionPolicy(keep_last=1))
    ids = [manager.create_backup({"n": n}) for n in range(4)]
    # The two newest pass the cheap listing (sizes intact) but fail full verification.
    for backup_id in ids[2:]:
        flip_byte(entry_file(backup_dir, backup_id, "n"), 12)
    result = manager.prune(now=NOW)
    remaining = {b.backup_id for b in manager.list_backups()}
    assert ids[1] in remaining
    assert manager.verify_backup(ids[1]).ok
    assert ids[0] not in remaining
    assert {b.backup_id for b in result.untouched} == set(ids[2:])


def test_prune_removes_writes_abandoned_by_dead_writers(manager: BackupManager, backup_dir: Path) -> None:
    """Staging directories of crashed writers are reported and removed; a live writer's is left alone."""
    manager.create_backup({"n": 1})
    dead = backup_dir / ".tmp-20260101T000000.000000Z_manual_abcd-999999999"
    dead.mkdir()
    live = backup_dir / f".tmp-20260101T000001.000000Z_manual_abce-{os.getpid()}"
    live.mkdir()
    result = manager.prune()
    assert result.abandoned == ("20260101T000000.000000Z_manual_abcd",)
    assert not dead.exists()
    assert live.exists()


def test_prune_with_an_empty_policy_is_refused(backup_dir: Path) -> None:
    """prune() with no retention rule at all raises and deletes nothing."""
    manager = BackupManager(backup_dir, retention=RetentionPolicy())
    manager.create_backup({"n": 1})
    manager.create_backup({"n": 2})
    with pytest.raises(RetentionPolicyError):
        manager.prune()
    assert len(manager.list_backups()) == 2


# ------------------------------------------------- acceptance review: what a user tried
def test_buckets_are_utc_calendar_days_whatever_the_timestamps_timezone() -> None:
    """Backups stamped in +14:00 on two local days but one UTC day fill one daily and one monthly slot."""
    plus14 = timezone(timedelta(hours=14))
    same_utc_day = [
        info(datetime(2026, 3, 1, 11, 0, tzinfo=plus14)),  # 2026-02-28 21:00 UTC
        info(datetime(2026, 3, 1, 9, 30, tzinfo=plus14)),  # 2026-02-28 19:30 UTC
        info(datetime(2026, 2, 28, 12, 0, tzinfo=timezone.utc)),
    ]
    now = datetime(2026, 3, 5, tzinfo=timezone.utc)
    for policy in (RetentionPolicy(keep_daily=5), RetentionPolicy(keep_monthly=5)):
        plan = plan_retention(same_utc_day, policy, now)
        assert kept_ids(plan) == {same_utc_day[0].backup_id}


def test_week_buckets_turn_at_monday_midnight_utc_and_span_new_year() -> None:
    """Sunday 23:59 and Monday 00:01 UTC are two ISO weeks; 31 Dec 2026 and 1 Jan 2027 share ISO week 2026-W53."""
    sunday = info(datetime(2026, 6, 14, 23, 59, tzinfo=timezone.utc))
    monday = info(datetime(2026, 6, 15, 0, 1, tzinfo=timezone.utc))
    plan = plan_retention([monday, sunday], RetentionPolicy(keep_weekly=2), NOW)
    assert kept_ids(plan) == {sunday.backup_id, monday.backup_id}
    december = info(datetime(2026, 12, 31, 12, 0, tzinfo=timezone.utc))
    january = info(datetime(2027, 1, 1, 12, 0, tzinfo=timezone.utc))
    later = datetime(2027, 1, 2, tzinfo=timezone.utc)
    assert kept_ids(plan_retention([january, december], RetentionPolicy(keep_weekly=2), later)) == {
        january.backup_id
    }
    assert kept_ids(plan_retention([january, december], RetentionPolicy(keep_monthly=2), later)) == {
        january.backup_id,
        december.backup_id,
    }


def test_a_naive_now_is_refused_naming_it(backup_dir: Path) -> None:
    """plan_retention and prune refuse a timezone-less `now` instead of failing deep inside a comparison."""
    with pytest.raises(ValueError, match="now: expected a timezone-aware datetime"):
        plan_retention([info(NOW)], RetentionPolicy(retention_days=1), datetime(2026, 6, 15))
    manager = BackupManager(backup_dir, retention=RetentionPolicy(retention_days=1))
    manager.create_backup({"n": 1})
    with pytest.raises(ValueError, match="now: expected a timezone-aware datetime"):
        manager.prune(now=datetime(2026, 6, 15))


def test_prune_dry_run_writes_nothing_at_all(manager: BackupManager, backup_dir: Path) -> None:
    """prune(dry_run=True) leaves even crash leftovers (dead staging, half-finished deletions) exactly in place."""
    old = manager.create_backup({"n": 1})
    manager.create_backup({"n": 2})
    (backup_dir / ".tmp-20260101T000000.000000Z_manual_abcd-999999999").mkdir()
    (backup_dir / old).rename(backup_dir / f".del-{old}-999999999")

    def snapshot() -> list[tuple[str, float]]:
        return sorted((str(p), p.stat().st_mtime) for p in backup_dir.rglob("*"))

    before = snapshot()
    result = manager.prune(dry_run=True)
    assert result.abandoned == ("20260101T000000.000000Z_manual_abcd",)
    manager.list_backups()
    assert snapshot() == before


def test_prune_with_signing_on_and_the_key_missing_is_refused(
    backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the signing key, prune cannot tell forged backups from real ones, so it deletes nothing."""
    monkeypatch.setenv("OTELRES_TEST_KEY", "k" * 32)
    times = [NOW - timedelta(days=d) for d in (30, 20, 10)]
    manager = _manager_at(
        backup_dir, times, retention=RetentionPolicy(keep_last=1), hmac_key_env="OTELRES_TEST_KEY"
    )
    for n in range(3):
        manager.create_backup({"n": n})
    monkeypatch.delenv("OTELRES_TEST_KEY")
    from otelres.backup import BackupError

    with pytest.raises(BackupError, match=r"\$OTELRES_TEST_KEY, which is not set"):
        manager.prune(now=NOW)
    assert len(manager.list_backups()) == 3


def test_two_pruners_racing_do_not_fail(backup_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup another process prunes between this prune's plan and its deletion is skipped, and the prune completes."""
    times = [NOW - timedelta(days=d) for d in (30, 20, 10, 1)]
    manager = _manager_at(backup_dir, times, retention=RetentionPolicy(keep_last=1))
    ids = [manager.create_backup({"n": n}) for n in range(4)]
    planned = BackupManager.plan_prune

    def plan_then_race(self: BackupManager, *, now: datetime | None = None) -> object:
        plan = planned(self, now=now)
        BackupManager(backup_dir).delete_backup(ids[1])  # the other pruner wins this one
        return plan

    monkeypatch.setattr(BackupManager, "plan_prune", plan_then_race)
    result = manager.prune(now=NOW)
    assert {b.backup_id for b in result.removed} == set(ids[:3])
    assert [b.backup_id for b in manager.list_backups()] == [ids[3]]
