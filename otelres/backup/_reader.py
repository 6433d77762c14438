"""Reading entries back, with every check: stored checksum, decompression, content checksum.

Shared by :meth:`BackupManager.load_backup` and :class:`RecoveryManager`, so whatever
path data takes out of a backup, it is checked the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from otelres.backup._codec import HashingReader, PlainTooLarge, iter_plain
from otelres.backup._errors import BackupError, CompressionUnavailableError
from otelres.backup._manifest import restore_path
from otelres.backup._storage import UnsafeEntryError

if TYPE_CHECKING:
    from otelres.backup._manifest import EntryRecord, Manifest
    from otelres.backup._storage import BackupStorage

__all__ = ["EntryDamaged", "check_entries", "iter_entry"]


class EntryDamaged(BackupError):
    """One entry failed a check; ``entry`` names it and ``reason`` says how."""

    def __init__(self, entry: str, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(f"entry {entry!r}: {reason}")


def iter_entry(
    storage: BackupStorage, backup_id: str, record: EntryRecord, limit: int
) -> Iterator[bytes]:
    """Yield the original bytes of *record*; raise :class:`EntryDamaged` if any check fails.

    The checks finish after the last chunk, so a consumer must not trust (publish) the
    bytes until the iterator is exhausted without an error.
    """
    if record.size > limit:
        raise EntryDamaged(
            record.name, f"is {record.size} bytes, past the restore limit of {limit} bytes"
        )
    try:
        raw = storage.open_entry(backup_id, record.path)
    except FileNotFoundError:
        raise EntryDamaged(record.name, f"stored file {record.path} is missing") from None
    except UnsafeEntryError as exc:
        raise EntryDamaged(record.name, str(exc)) from None
    except OSError as exc:
        raise EntryDamaged(record.name, _unreadable(record, exc)) from None
    plain = hashlib.sha256()
    size = 0
    # Stop at the recorded size (+1 byte, to notice the excess): a manifest that lies about
    # a small entry makes a bomb cost nothing, not up to the restore limit.
    cap = record.size + 1
    with raw:
        source = HashingReader(raw)
        try:
            for chunk in iter_plain(record.compression, source, cap):
                plain.update(chunk)
                size += len(chunk)
                yield chunk
            source.drain()
        except PlainTooLarge:
            raise EntryDamaged(
                record.name, f"decompresses past its recorded size of {record.size} bytes"
            ) from None
        except CompressionUnavailableError:
            raise  # a missing package is not damage: say what to install
        except OSError as exc:
            raise EntryDamaged(record.name, _unreadable(record, exc)) from None
        except BackupError as exc:
            stored_ok = _stored_digest(source) == record.sha256
            why = str(exc) if stored_ok else "stored bytes do not match their SHA-256"
            raise EntryDamaged(record.name, why) from None
    if source.digest.hexdigest() != record.sha256 or source.count != record.stored_size:
        raise EntryDamaged(record.name, "stored bytes do not match their SHA-256")
    if size != record.size or plain.hexdigest() != record.content_sha256:
        raise EntryDamaged(record.name, "content does not match its SHA-256")


def _unreadable(record: EntryRecord, exc: OSError) -> str:
    """Why stored entry *record* cannot be read (permissions, an I/O error), for messages."""
    return f"stored file {record.path} cannot be read: {exc.strerror or exc}"


def _stored_digest(source: HashingReader) -> str:
    """SHA-256 of everything *source* delivered, reading the rest; empty on a read error."""
    try:
        source.drain()
    except OSError:
        return ""
    return source.digest.hexdigest()


def check_entries(
    storage: BackupStorage,
    manifest: Manifest,
    limit: int,
    *,
    deep: bool,
    consume: Callable[[EntryRecord, Iterator[bytes]], None] | None = None,
) -> list[tuple[str | None, str]]:
    """Every problem of the entries of *manifest*, as ``(entry name, what is wrong)``.

    Shallow checks (always): a safe name, a stored file that exists, is not a link and
    has the recorded size. Deep checks (``deep=True``): every byte read back, both
    SHA-256 sums and the decompressed size compared with the manifest. *consume*, when
    given, receives each entry's chunks instead of them being discarded (it must exhaust
    them and may raise :class:`EntryDamaged`), so a caller reads each entry only once.
    """
    problems: list[tuple[str | None, str]] = []
    seen: dict[str, str] = {}
    for record in manifest.entries:
        try:
            where = str(restore_path(record.name, record.kind))
        except BackupError as exc:
            problems.append((record.name, f"unsafe name, refused: {exc}"))
            continue
        if where in seen:
            problems.append((record.name, f"restores to the same path as {seen[where]!r}"))
            continue
        seen[where] = record.name
        try:
            stored = storage.entry_size(manifest.backup_id, record.path)
        except UnsafeEntryError as exc:
            problems.append((record.name, f"refused: {exc}"))
            continue
        if stored is None:
            problems.append((record.name, f"stored file {record.path} is missing"))
            continue
        if stored != record.stored_size:
            problems.append(
                (record.name, f"stored size is {stored} bytes, the manifest says {record.stored_size}")
            )
            continue
        if deep:
            try:
                chunks = iter_entry(storage, manifest.backup_id, record, limit)
                if consume is None:
                    for _ in chunks:
                        pass
                else:
                    consume(record, chunks)
            except EntryDamaged as exc:
                problems.append((record.name, exc.reason))
    return problems

