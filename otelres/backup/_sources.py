"""What goes into a backup: JSON values, files and SQLite databases, checked up front.

:func:`plan_entries` validates every input before anything is written (names, paths,
file types, that small JSON values serialize) and returns what to write for each entry;
:func:`read_chunks` streams a file; :class:`sqlite_snapshot` makes a consistent copy of a
live SQLite database with SQLite's online backup API.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelres.backup._codec import CHUNK
from otelres.backup._errors import BackupError
from otelres.backup._manifest import check_entry_name, restore_path
from otelres.backup._pipeline import is_large

__all__ = [
    "LargeJson",
    "PathLike",
    "PlannedEntry",
    "Source",
    "plan_entries",
    "read_chunks",
    "sqlite_snapshot",
]

_SQLITE_MAGIC = b"SQLite format 3\x00"

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class LargeJson:
    """A big JSON value, serialized in slices while it is written (see ``_pipeline``)."""

    value: Any
    default: Callable[[Any], Any] | None


Source = bytes | LargeJson | Path
"""What an entry is made from: serialized JSON, a big JSON value, or a file."""

PlannedEntry = tuple[str, str, Source]
"""(entry name, kind, source) of one entry to write."""


def _to_json(name: str, value: Any, default: Callable[[Any], Any] | None) -> bytes:
    """Compact ASCII JSON of a small value; errors name the entry."""
    try:
        return json.dumps(value, separators=(",", ":"), default=default).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise BackupError(f"entry {name!r}: not JSON-serializable: {exc}") from None
    except RecursionError:
        raise BackupError(f"entry {name!r}: nested too deeply to serialize") from None


def _named_paths(
    kind: str, given: Mapping[str, PathLike] | Iterable[PathLike] | None
) -> list[tuple[str, Path]]:
    """``(entry name, path)`` pairs from a mapping or a list of paths; names are checked."""
    if given is None:
        return []
    if isinstance(given, (str, os.PathLike)):
        given = [given]
    if isinstance(given, Mapping):
        pairs = [(name, Path(path)) for name, path in given.items()]
    else:
        pairs = [(Path(path).name, Path(path)) for path in given]
    for name, path in pairs:
        try:
            check_entry_name(name)
        except BackupError as exc:
            raise BackupError(f"{kind} {str(path)!r}: {exc}") from None
    return pairs


def _check_source(kind: str, name: str, path: Path) -> Path:
    """*path* if it is a readable regular file (and an SQLite database for *kind* sqlite)."""
    label = "SQLite database" if kind == "sqlite" else "file"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BackupError(f"{label} {str(path)!r} (entry {name!r}): no such file") from None
    except OSError as exc:
        raise BackupError(f"{label} {str(path)!r} (entry {name!r}): {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise BackupError(f"{label} {str(path)!r} (entry {name!r}): not a regular file")
    try:
        with path.open("rb") as fh:  # unreadable files are refused before anything is written
            head = fh.read(len(_SQLITE_MAGIC)) if kind == "sqlite" else b""
    except OSError as exc:
        raise BackupError(f"{label} {str(path)!r} (entry {name!r}): {exc.strerror}") from None
    if kind == "sqlite" and info.st_size and head != _SQLITE_MAGIC:
        raise BackupError(f"{str(path)!r} (entry {name!r}) is not an SQLite database")
    return path


def read_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of *path* in ``CHUNK``-sized pieces."""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                return
            yield chunk


class sqlite_snapshot:
    """A consistent copy of an SQLite database in a private temporary file."""

    def __init__(self, name: str, source: Path) -> None:
        self._name = name
        self._source = source
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        from urllib.parse import quote

        self._dir = tempfile.TemporaryDirectory(prefix="otelres-sqlite-")
        target = Path(self._dir.name) / "snapshot.db"
        uri = f"file:{quote(str(self._source.resolve()))}?mode=ro"
        try:
            try:
                _copy(uri, target)
            except sqlite3.OperationalError:
                # A WAL-mode database in a directory we may not write to (another user's,
                # a read-only mount) cannot get its -shm file. With no -wal file there is
                # no uncheckpointed write to miss, so the file alone is the database.
                if Path(f"{self._source}-wal").exists():
                    raise
                _copy(uri + "&immutable=1", target)
        except sqlite3.Error as exc:
            self._dir.cleanup()
            raise BackupError(
                f"SQLite database {str(self._source)!r} (entry {self._name!r}): {exc}"
            ) from None
        os.chmod(target, 0o600)
        return target

    def __exit__(self, *exc: object) -> None:
        if self._dir is not None:
            self._dir.cleanup()


def _copy(uri: str, target: Path) -> None:
    """Copy the database at *uri* into a new database file *target* (online backup API)."""
    src = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def plan_entries(
    data: Mapping[str, Any] | None,
    files: Mapping[str, PathLike] | Iterable[PathLike] | None,
    sqlite: Mapping[str, PathLike] | Iterable[PathLike] | None,
    json_default: Callable[[Any], Any] | None,
) -> list[PlannedEntry]:
    """Check every input and decide what each entry is; raise :class:`BackupError` naming
    the first one at fault. Small JSON values are serialized here (so their errors come
    before anything is written), big ones later, in slices (see ``_pipeline``).
    """
    plan: list[PlannedEntry] = []
    if data is not None:
        if not isinstance(data, Mapping):
            raise BackupError(
                "data: expected a mapping of entry names to JSON values, "
                f"got {type(data).__name__}"
            )
        for name, value in data.items():
            check_entry_name(name)
            if is_large(value):
                plan.append((name, "json", LargeJson(value, json_default)))
            else:
                plan.append((name, "json", _to_json(name, value, json_default)))
    for kind, given in (("file", files), ("sqlite", sqlite)):
        for name, path in _named_paths(kind, given):
            plan.append((name, kind, _check_source(kind, name, path)))
    if not plan:
        raise BackupError(
            "nothing to back up: pass data, files or sqlite databases "
            "(CLI: --from, --file, --sqlite, or backup.files / backup.sqlite in config)"
        )
    seen: dict[str, str] = {}
    for name, kind, _ in plan:
        where = str(restore_path(name, kind))
        if where in seen:
            raise BackupError(
                f"entries {seen[where]!r} and {name!r} would restore to the same path "
                f"{where!r}; give them distinct names"
            )
        seen[where] = name
    return plan

