"""Backups that never lose data, and recovery you can trust.

    from otelres.backup import BackupManager, RecoveryManager

    manager = BackupManager()                  # settings from [backup] in config.toml
    backup_id = manager.create_backup({"portfolio": state}, backup_type="manual")
    manager.list_backups()                     # newest first; damaged ones say so
    RecoveryManager(manager).restore("latest", "restored/")

Backups are written atomically (a crash leaves a complete backup or nothing listed as
valid), every entry carries a SHA-256 checksum, signing with an HMAC key from the
environment detects tampering, retention follows restic's keep rules, and restores are
atomic and refuse unsafe entries. See docs/BACKUP_RECOVERY.md.

Names are resolved on first access, so ``import otelres.backup`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelres._lazy import lazy_exports

if TYPE_CHECKING:
    from otelres.backup._errors import (
        BackupCorruptError,
        BackupError,
        BackupNotFoundError,
        CompressionUnavailableError,
        RestoreRefusedError,
        RetentionPolicyError,
    )
    from otelres.backup._manager import BackupManager, PruneResult, VerifyReport
    from otelres.backup._manifest import BackupInfo, EntryRecord
    from otelres.backup._recovery import RecoveryManager, RestoredEntry, RestoreResult
    from otelres.backup._retention import RetentionPlan, RetentionPolicy, plan_retention
    from otelres.backup._scheduler import BackupScheduler
    from otelres.backup._storage import (
        BackupStorage,
        LocalDirectoryStorage,
        PendingWrite,
        StagedBackup,
    )

__all__ = [
    "BackupCorruptError",
    "BackupError",
    "BackupInfo",
    "BackupManager",
    "BackupNotFoundError",
    "BackupScheduler",
    "BackupStorage",
    "CompressionUnavailableError",
    "EntryRecord",
    "LocalDirectoryStorage",
    "PendingWrite",
    "PruneResult",
    "RecoveryManager",
    "RestoreRefusedError",
    "RestoreResult",
    "RestoredEntry",
    "RetentionPlan",
    "RetentionPolicy",
    "RetentionPolicyError",
    "StagedBackup",
    "VerifyReport",
    "plan_retention",
]

_LAZY: dict[str, str] = {
    "BackupCorruptError": "_errors",
    "BackupError": "_errors",
    "BackupNotFoundError": "_errors",
    "CompressionUnavailableError": "_errors",
    "RestoreRefusedError": "_errors",
    "RetentionPolicyError": "_errors",
    "BackupManager": "_manager",
    "PruneResult": "_manager",
    "VerifyReport": "_manager",
    "BackupInfo": "_manifest",
    "EntryRecord": "_manifest",
    "RecoveryManager": "_recovery",
    "RestoreResult": "_recovery",
    "RestoredEntry": "_recovery",
    "RetentionPlan": "_retention",
    "RetentionPolicy": "_retention",
    "plan_retention": "_retention",
    "BackupScheduler": "_scheduler",
    "BackupStorage": "_storage",
    "LocalDirectoryStorage": "_storage",
    "PendingWrite": "_storage",
    "StagedBackup": "_storage",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
