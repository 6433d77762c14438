"""Where backups live: the :class:`BackupStorage` interface and the local directory backend.

The manager talks to storage only through :class:`BackupStorage`, so object storage can
be added later without touching it. The contract every backend keeps:

* a backup is written through a :class:`StagedBackup`: entries first, then the
  manifest in :meth:`StagedBackup.commit`, which makes the backup appear whole or not
  at all (a crash at any moment leaves no partial backup under a backup's name);
* a name that already exists is never overwritten (:class:`BackupExistsError`);
* stored entries are read back as plain files: a backend refuses links and any path
  that is not a plain entry name.

:class:`LocalDirectoryStorage` keeps each backup in its own directory (mode 0700,
files 0600) under a root directory. It stages into ``.tmp-<id>-<pid>`` in the same root,
fsyncs every file, writes the manifest last, fsyncs the directory, renames it to
``<id>`` and fsyncs the root.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from otelres.backup._errors import BackupError
from otelres.backup._manifest import MANIFEST_NAME, parse_backup_id, stored_path_ok

__all__ = [
    "BackupExistsError",
    "BackupStorage",
    "LocalDirectoryStorage",
    "PendingWrite",
    "StagedBackup",
    "UnsafeEntryError",
    "fsync_dir",
    "pid_alive",
    "write_new_file",
]

_log = logging.getLogger("otelres.backup")
_TMP_PREFIX = ".tmp-"
_DEL_PREFIX = ".del-"


class BackupExistsError(BackupError):
    """A backup with this id already exists; the writer picks another id."""


class UnsafeEntryError(BackupError):
    """A stored entry is a link, or its path is not a plain entry name."""


@dataclass(frozen=True)
class PendingWrite:
    """A backup being written, or left behind by a writer that died before committing."""

    name: str
    """The staging name (``.tmp-<id>-<pid>`` for the local backend)."""
    backup_id: str
    age_seconds: float
    writer_alive: bool
    """Whether the writing process still runs (False: crash leftover, safe to remove)."""


class StagedBackup(Protocol):
    """A backup being written; nothing of it is visible as a backup until :meth:`commit`."""

    def write_entry(self, path: str, chunks: Iterable[bytes]) -> int:
        """Store *chunks* durably as entry *path*; return the bytes written."""
        ...

    def commit(self, manifest: bytes) -> None:
        """Write the manifest and publish the backup atomically and durably."""
        ...

    def abort(self) -> None:
        """Throw away everything written so far (safe to call twice)."""
        ...


@runtime_checkable
class BackupStorage(Protocol):
    """What the backup manager needs from a place that holds backups.

    A backend for object storage would stage entries under a temporary prefix (or upload
    them under their final keys without the manifest), upload ``manifest.json`` last as the
    commit point with a conditional put that fails when the key exists, and report uploads
    without a manifest through :meth:`pending`. Pass it as ``BackupManager(storage=...)``.
    """

    location: str
    """Human-readable location for messages (a directory, a bucket URL)."""

    def begin(self, backup_id: str) -> StagedBackup:
        """Start writing backup *backup_id*."""
        ...

    def backup_ids(self) -> list[str]:
        """Ids of committed backups, in no particular order."""
        ...

    def pending(self) -> list[PendingWrite]:
        """Writes in progress or abandoned."""
        ...

    def read_manifest(self, backup_id: str) -> bytes | None:
        """The manifest of *backup_id*; None when it has none."""
        ...

    def open_entry(self, backup_id: str, path: str) -> BinaryIO:
        """Open stored entry *path* of *backup_id* for reading; refuse links and odd paths."""
        ...

    def entry_size(self, backup_id: str, path: str) -> int | None:
        """Stored size of the entry, None when it is missing; refuse links."""
        ...

    def stored_size(self, backup_id: str) -> int:
        """Bytes backup *backup_id* occupies."""
        ...

    def exists(self, backup_id: str) -> bool:
        """Whether a committed backup (possibly damaged) has this id."""
        ...

    def delete(self, backup_id: str) -> None:
        """Remove backup *backup_id*; it disappears at once, never half-deleted."""
        ...

    def remove_pending(self, name: str) -> None:
        """Remove an abandoned write."""
        ...


# fdatasync flushes the data and the metadata needed to read it back (the size), which
# is all a backup needs; timestamps are not worth a second journal write.
_sync_data = getattr(os, "fdatasync", os.fsync)


def fsync_dir(path: Path) -> None:
    """fsync a directory, making the names created or renamed in it durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, chunks: Iterable[bytes]) -> int:
    """Write *chunks* to a new 0600 file (never an existing one, never through a link),
    flush it to disk, and return the bytes written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    written = 0
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            for chunk in chunks:
                if chunk:
                    out.write(chunk)
                    written += len(chunk)
        _sync_data(fd)
    finally:
        os.close(fd)
    return written


def pid_alive(pid: int) -> bool:
    """Whether process *pid* exists on this host (a writer that may still commit)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _LocalStaged:
    """A backup being written into ``.tmp-<id>-<pid>`` under the root."""

    __slots__ = ("_done", "_final", "_root", "_tmp")

    def __init__(self, root: Path, backup_id: str) -> None:
        self._root = root
        self._final = root / backup_id
        self._tmp = root / f"{_TMP_PREFIX}{backup_id}-{os.getpid()}"
        os.mkdir(self._tmp, 0o700)
        os.chmod(self._tmp, 0o700)
        self._done = False

    def write_entry(self, path: str, chunks: Iterable[bytes]) -> int:
        """Write *chunks* to a new 0600 file (never an existing one or through a link) and fdatasync it."""
        if not stored_path_ok(path) and path != MANIFEST_NAME:
            raise UnsafeEntryError(f"not an entry name: {path!r}")
        return write_new_file(self._tmp / path, chunks)

    def commit(self, manifest: bytes) -> None:
        """Write the manifest, fsync the staging directory, rename it to the id, fsync the root."""
        self.write_entry(MANIFEST_NAME, [manifest])
        fsync_dir(self._tmp)
        if self._final.exists() or self._final.is_symlink():
            raise BackupExistsError(f"backup {self._final.name!r} already exists")
        try:
            os.rename(self._tmp, self._final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise BackupExistsError(f"backup {self._final.name!r} already exists") from None
            raise
        self._done = True
        try:
            fsync_dir(self._root)
        except OSError as exc:
            # The backup is complete and visible; only the durability of its name across a
            # power cut is in doubt. Failing here would report a backup that exists as lost.
            _log.warning("backup %s committed, but %s could not be synced: %s",
                         self._final.name, self._root, exc.strerror)

    def abort(self) -> None:
        """Remove the staging directory and everything in it."""
        if not self._done:
            self._done = True
            shutil.rmtree(self._tmp, ignore_errors=True)


class LocalDirectoryStorage:
    """Backups as directories under *root* (created with mode 0700 when missing)."""

    __slots__ = ("location", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def __repr__(self) -> str:
        return f"LocalDirectoryStorage({self.location!r})"

    def _ensure_root(self) -> None:
        """Create the root directory (0700) on first write; a clear error if impossible."""
        if not self.root.is_dir():
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise BackupError(
                    f"cannot create backup directory {self.location}: {exc.strerror}"
                ) from None

    def begin(self, backup_id: str) -> StagedBackup:
        """Create the staging directory ``.tmp-<id>-<pid>`` (0700) for a new backup."""
        self._ensure_root()
        self._sweep_deleted()
        return _LocalStaged(self.root, backup_id)

    def _names(self) -> list[str]:
        """Names in the root; none when it does not exist yet."""
        try:
            return os.listdir(self.root)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise BackupError(f"backup path {self.location} is not a directory") from None
        except OSError as exc:
            raise BackupError(f"cannot read backup directory {self.location}: {exc.strerror}") from None

    def backup_ids(self) -> list[str]:
        """Names in the root that are backup ids (staging and deletion leftovers are not)."""
        return [name for name in self._names() if parse_backup_id(name) is not None]

    def pending(self) -> list[PendingWrite]:
        """Staging directories, with whether their writer still runs (reads only)."""
        found = []
        now = time.time()
        for name in self._names():
            if not name.startswith(_TMP_PREFIX):
                continue
            backup_id, _, pid_text = name[len(_TMP_PREFIX) :].rpartition("-")
            try:
                mtime = os.lstat(self.root / name).st_mtime
            except FileNotFoundError:
                continue  # committed or aborted meanwhile
            pid = int(pid_text) if pid_text.isdigit() else -1
            found.append(PendingWrite(name, backup_id, now - mtime, pid_alive(pid)))
        return found

    def _sweep_deleted(self) -> None:
        """Finish deletions whose process died half-way (called by writes, never by reads).

        A deletion renames the backup to ``.del-<id>-<pid>`` first; if that process died
        during the removal, the rest of the already-deleted backup is garbage. Listing and
        dry runs leave it alone: they write nothing.
        """
        for name in self._names():
            if not name.startswith(_DEL_PREFIX):
                continue
            _, _, pid_text = name.rpartition("-")
            if not (pid_text.isdigit() and pid_alive(int(pid_text))):
                shutil.rmtree(self.root / name, ignore_errors=True)

    def _backup_dir(self, backup_id: str) -> Path:
        """The directory of *backup_id*; refuses anything that is not an id (no traversal)."""
        if parse_backup_id(backup_id) is None:
            raise UnsafeEntryError(f"not a backup id: {backup_id!r}")
        return self.root / backup_id

    def _entry(self, backup_id: str, path: str) -> Path:
        """The path of stored entry *path* of *backup_id*; refuses odd names and linked backups."""
        if not stored_path_ok(path) and path != MANIFEST_NAME:
            raise UnsafeEntryError(f"stored path {path!r} is not a plain entry name")
        folder = self._backup_dir(backup_id)
        if folder.is_symlink():
            raise UnsafeEntryError(f"backup directory {folder} is a symbolic link")
        return folder / path

    def read_manifest(self, backup_id: str) -> bytes | None:
        """``manifest.json`` of *backup_id*, or None when it has none (never committed)."""
        try:
            with self.open_entry(backup_id, MANIFEST_NAME) as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def open_entry(self, backup_id: str, path: str) -> BinaryIO:
        """Open a stored entry without following links; refuses anything but a regular file."""
        target = self._entry(backup_id, path)
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeEntryError(f"stored entry {path!r} is a symbolic link") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafeEntryError(f"stored entry {path!r} is not a regular file")
        return os.fdopen(fd, "rb")

    def entry_size(self, backup_id: str, path: str) -> int | None:
        """Size of a stored entry from ``lstat``; None when missing; refuses links."""
        target = self._entry(backup_id, path)
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise UnsafeEntryError(f"stored entry {path!r} is a symbolic link")
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeEntryError(f"stored entry {path!r} is not a regular file")
        return info.st_size

    def stored_size(self, backup_id: str) -> int:
        """Total size of the regular files in the backup's directory."""
        folder = self._backup_dir(backup_id)
        total = 0
        try:
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
        except (FileNotFoundError, NotADirectoryError):
            return 0
        return total

    def exists(self, backup_id: str) -> bool:
        """Whether the backup's directory (or a link in its place) exists."""
        folder = self._backup_dir(backup_id)
        return folder.exists() or folder.is_symlink()

    def delete(self, backup_id: str) -> None:
        """Rename the backup to ``.del-<id>-<pid>`` (it vanishes at once), then remove it."""
        folder = self._backup_dir(backup_id)
        if folder.is_symlink() or not folder.is_dir():
            folder.unlink()
            fsync_dir(self.root)
            return
        # Renaming first makes the backup vanish in one step; a crash during the
        # removal then leaves a dot-directory that is not listed as a backup.
        doomed = self.root / f"{_DEL_PREFIX}{backup_id}-{os.getpid()}"
        os.rename(folder, doomed)
        fsync_dir(self.root)
        shutil.rmtree(doomed, ignore_errors=True)
        self._sweep_deleted()

    def remove_pending(self, name: str) -> None:
        """Remove one abandoned staging directory."""
        if not name.startswith(_TMP_PREFIX) or "/" in name:
            raise UnsafeEntryError(f"not a staging name: {name!r}")
        shutil.rmtree(self.root / name, ignore_errors=True)
