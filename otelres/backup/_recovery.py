"""Recovery: verify backups and restore them atomically into a directory.

    from otelres.backup import RecoveryManager

    recovery = RecoveryManager()                  # same settings as BackupManager()
    recovery.verify(backup_id)                    # VerifyReport naming each bad entry
    recovery.restore("latest", "restored/")       # newest backup that passes every check

A restore never leaves a half-written target: entries are written into a private
staging directory beside the target, checked as they are written, and only when all
of them passed is the staging directory renamed to the target. An entry whose name is
absolute or contains ``..``, a stored entry that is a symbolic link, and an entry that
decompresses past ``backup.max_restore_bytes`` are refused before anything is published.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otelres.backup import _telemetry
from otelres.backup._errors import BackupCorruptError, BackupError, RestoreRefusedError
from otelres.backup._manager import BackupManager, VerifyReport
from otelres.backup._manifest import restore_path
from otelres.backup._reader import EntryDamaged
from otelres.backup._storage import (
    LocalDirectoryStorage,
    fsync_dir,
    pid_alive,
    write_new_file,
)

if TYPE_CHECKING:
    from otelres.backup._manifest import BackupInfo, Manifest

__all__ = ["RecoveryManager", "RestoreResult"]

_log = logging.getLogger("otelres.backup")


@dataclass(frozen=True)
class RestoredEntry:
    """One entry of a restore: its name, kind, path under the target, and size."""

    name: str
    kind: str
    path: str
    size: int


@dataclass(frozen=True)
class RestoreResult:
    """What :meth:`RecoveryManager.restore` restored (or would, with ``dry_run``)."""

    backup_id: str
    target: Path
    entries: tuple[RestoredEntry, ...]
    dry_run: bool
    skipped: tuple[str, ...]
    """Damaged backups passed over on the way to the newest valid one (for ``"latest"``)."""

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)


class RecoveryManager:
    """Verifies and restores the backups of a :class:`BackupManager`.

    Pass a *manager*, or the same keyword arguments :class:`BackupManager` takes
    (none: the ``[backup]`` section of the current configuration).
    """

    def __init__(self, manager: BackupManager | None = None, **manager_args: Any) -> None:
        if manager is not None and manager_args:
            raise TypeError("pass either a BackupManager or BackupManager arguments, not both")
        self.manager = manager or BackupManager(**manager_args)

    def __repr__(self) -> str:
        return f"RecoveryManager({self.manager!r})"

    def list_backups(self, backup_type: str | None = None) -> list[BackupInfo]:
        """Same as :meth:`BackupManager.list_backups`."""
        return self.manager.list_backups(backup_type)

    def latest_valid(self, backup_type: str | None = None) -> BackupInfo | None:
        """Same as :meth:`BackupManager.latest_valid` with every checksum checked."""
        return self.manager.latest_valid(backup_type, verify=True)

    def verify(self, backup_id: str) -> VerifyReport:
        """Check every checksum (and the signature) of *backup_id*; see :class:`VerifyReport`."""
        return self.manager.verify_backup(backup_id)

    def verify_all(self) -> list[VerifyReport]:
        """Verify every committed backup, newest first (incomplete writes are not backups)."""
        return [
            self.verify(info.backup_id)
            for info in self.manager.list_backups()
            if info.status != "incomplete"
        ]

    def load(self, backup_id: str = "latest") -> dict[str, Any]:
        """The JSON entries of a backup; see :meth:`BackupManager.load_backup`."""
        return self.manager.load_backup(backup_id)

    def restore(
        self,
        backup_id: str = "latest",
        target: str | os.PathLike[str] | None = None,
        *,
        dry_run: bool = False,
        overwrite: bool = False,
    ) -> RestoreResult:
        """Restore *backup_id* (or the newest valid backup) into directory *target*.

        JSON entries become ``<name>.json``, files and SQLite databases ``<name>``, all
        under *target* (default ``./restored/<backup id>``). With *dry_run* every check
        runs (the whole backup is read back) and nothing is written. A *target* that
        exists and is not empty is refused unless *overwrite*, which replaces it whole.

        For ``"latest"``, damaged backups are skipped with a warning (listed in
        ``skipped``). Raises :class:`BackupCorruptError` for a damaged backup named by
        id, :class:`RestoreRefusedError` for an unsafe entry or target, and
        :class:`BackupNotFoundError` for an unknown id or when no valid backup exists.
        """
        if target is not None:
            self._check_target(Path(target), overwrite)  # before reading anything

        def restore_one(manifest: Manifest) -> RestoreResult:
            planned = self._plan(manifest)
            chosen = Path(target) if target is not None else Path("restored") / manifest.backup_id
            if dry_run:
                self.manager._read_all(manifest)
                self._check_target(chosen, overwrite)
            else:
                # Every entry is checked while it is written into the staging directory,
                # which is published only when all passed: one read, never a partial target.
                self._restore(manifest, planned, chosen, overwrite)
            return RestoreResult(manifest.backup_id, chosen, planned, dry_run, ())

        with _telemetry.backup_span(
            self.manager._tracer_provider, "otelres.backup.restore", {"backup.dry_run": dry_run}
        ) as span:
            result, skipped = self.manager._resolve(backup_id, restore_one)
            if span is not None:
                span.set_attribute("backup.id", result.backup_id)
        if not dry_run:
            _log.info("backup %s restored to %s", result.backup_id, result.target)
        return dataclasses.replace(result, skipped=skipped)

    # ------------------------------------------------------------------ internals
    def _plan(self, manifest: Manifest) -> tuple[RestoredEntry, ...]:
        """What each entry becomes under the target; refuses unsafe names before any write."""
        planned = []
        for record in manifest.entries:
            try:
                where = restore_path(record.name, record.kind)
            except BackupError as exc:
                raise RestoreRefusedError(
                    f"backup {manifest.backup_id}: entry {record.name!r} refused: {exc}"
                ) from None
            planned.append(RestoredEntry(record.name, record.kind, where.as_posix(), record.size))
        return tuple(planned)

    def _check_target(self, target: Path, overwrite: bool) -> None:
        """Refuse a target that is a link, not a directory, or not empty without *overwrite*,
        and any target that would put the backups themselves (or the current directory) at
        risk: the backup directory, anything inside it, or anything that contains it."""
        if target.is_symlink():
            raise RestoreRefusedError(f"restore target {target} is a symbolic link; refused")
        where = target.resolve()
        storage = self.manager.storage
        if isinstance(storage, LocalDirectoryStorage):
            root = storage.root.resolve()
            if where == root or root in where.parents or where in root.parents:
                raise RestoreRefusedError(
                    f"restore target {target} overlaps the backup directory {storage.location}; "
                    "restoring there could destroy the backups themselves; choose another directory"
                )
        try:
            here = Path.cwd().resolve()
        except OSError:  # the working directory was deleted: nothing of it to protect
            here = None
        if here is not None and (where == here or where in here.parents):
            raise RestoreRefusedError(
                f"restore target {target} contains the current directory; "
                "choose a directory of its own (e.g. --to restored/latest)"
            )
        if target.exists():
            if not target.is_dir():
                raise RestoreRefusedError(f"restore target {target} exists and is not a directory")
            if any(target.iterdir()) and not overwrite:
                raise RestoreRefusedError(
                    f"restore target {target} exists and is not empty; choose another "
                    "directory or pass overwrite=True (CLI: --force) to replace it"
                )

    def _restore(
        self,
        manifest: Manifest,
        planned: tuple[RestoredEntry, ...],
        target: Path,
        overwrite: bool,
    ) -> None:
        """Write every entry into a staging directory beside *target*, then publish it whole."""
        self._check_target(target, overwrite)
        parent = target.parent
        _sweep_dead_staging(target)
        staging = parent / f".{target.name}.restore-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(staging, 0o700)
        except OSError as exc:
            raise BackupError(
                f"cannot restore into {target}: {exc.strerror or exc} in {parent}"
            ) from None
        try:
            for record, entry in zip(manifest.entries, planned, strict=True):
                self._restore_entry(manifest.backup_id, record, staging, entry.path)
            _fsync_tree(staging)
            _publish(staging, target)
        except EntryDamaged as exc:
            raise BackupCorruptError(manifest.backup_id, [(exc.entry, exc.reason)]) from None
        except OSError as exc:
            raise BackupError(
                f"restoring backup {manifest.backup_id} to {target} failed: "
                f"{exc.strerror or exc}; the target was not changed"
            ) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _restore_entry(self, backup_id: str, record: Any, staging: Path, relative: str) -> None:
        """Write one checked entry to *relative* under *staging* (0600, no links followed)."""
        destination = staging.joinpath(*relative.split("/"))
        # restore_path() already refused '..' and absolute names; this guards the join.
        if staging.resolve() not in destination.resolve().parents:
            raise RestoreRefusedError(f"entry {record.name!r} would leave the target; refused")
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_new_file(destination, self.manager.read_entry(backup_id, record))


def _sweep_dead_staging(target: Path) -> None:
    """Remove staging directories of earlier restores to *target* whose process died
    (``.<name>.restore-<pid>-<hex>``): a restore killed half-way leaves only those."""
    prefix = f".{target.name}.restore-"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        pid_text, _, _ = name[len(prefix) :].partition("-")
        if name.startswith(prefix) and pid_text.isdigit() and not pid_alive(int(pid_text)):
            shutil.rmtree(target.parent / name, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """fsync every directory under *root*, deepest first, so their entries are durable."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(Path(folder))


def _publish(staging: Path, target: Path) -> None:
    """Put the finished *staging* directory in place of *target* (see ``restore``).

    A missing or empty target is replaced by one rename. A non-empty one (``overwrite``)
    is swapped with the staging directory in one step where the system can (Linux
    ``renameat2(RENAME_EXCHANGE)``), so no moment exists without a complete target;
    elsewhere the old target is renamed aside first and put back if the second rename fails.
    """
    parent = target.parent
    if target.exists() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the previous target
    else:
        aside = parent / f".{target.name}.old-{secrets.token_hex(4)}"
        os.rename(target, aside)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(parent)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2``; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False  # a libc without renameat2 (glibc < 2.28, musl)
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # kernel or file system without RENAME_EXCHANGE
    raise OSError(code, os.strerror(code), str(second))
