"""The exceptions :mod:`otelres.backup` raises; all derive from :class:`BackupError`."""

from __future__ import annotations

__all__ = [
    "BackupCorruptError",
    "BackupError",
    "BackupNotFoundError",
    "CompressionUnavailableError",
    "RestoreRefusedError",
    "RetentionPolicyError",
]


class BackupError(Exception):
    """Something about a backup went wrong; the message says what and where.

    Messages name backups, entries, files and settings, never the content of an entry or
    a signing key.
    """


class BackupNotFoundError(BackupError, LookupError):
    """No backup with the requested id (or no valid backup at all, for ``"latest"``)."""

    def __init__(self, backup_id: str, location: str, detail: str = "") -> None:
        self.backup_id = backup_id
        self.location = location
        text = detail or f"no backup {backup_id!r} in {location}"
        super().__init__(text)

    def __str__(self) -> str:
        return str(self.args[0])


class BackupCorruptError(BackupError):
    """A backup failed its checks; ``problems`` lists each bad entry (or the manifest).

    ``bad_entries`` holds the names of the entries at fault, so a caller can tell exactly
    which part of the backup cannot be trusted.
    """

    def __init__(self, backup_id: str, problems: list[tuple[str | None, str]]) -> None:
        self.backup_id = backup_id
        self.problems = tuple(problems)
        lines = [f"{'entry ' + repr(name) if name else 'manifest'}: {msg}" for name, msg in problems]
        super().__init__(f"backup {backup_id!r} is damaged: " + "; ".join(lines))

    @property
    def bad_entries(self) -> tuple[str, ...]:
        """Names of the entries that failed (the manifest's own problems are not entries)."""
        return tuple(name for name, _ in self.problems if name is not None)


class RestoreRefusedError(BackupError):
    """A restore was refused before anything was written: an unsafe entry or target."""


class RetentionPolicyError(BackupError, ValueError):
    """The retention policy is unusable, e.g. empty (it would delete every backup)."""


class CompressionUnavailableError(BackupError):
    """The configured compression needs a package that is not installed."""
