"""The backup manager: create, list, load, verify, delete and prune backups.

    from otelres.backup import BackupManager

    manager = BackupManager()                       # [backup] of the current config
    backup_id = manager.create_backup({"portfolio": state}, backup_type="manual")
    manager.list_backups()                          # newest first, with status
    manager.load_backup(backup_id)                  # {"portfolio": state}, checked
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from otelres.backup import _telemetry
from otelres.backup._codec import CHUNK, check_level, compressor, suffix
from otelres.backup._errors import BackupCorruptError, BackupError, BackupNotFoundError
from otelres.backup._manifest import (
    BackupInfo,
    EntryRecord,
    Manifest,
    ManifestError,
    check_type,
    decode_manifest,
    encode_manifest,
    new_backup_id,
    parse_backup_id,
)
from otelres.backup._pipeline import json_pieces, pipelined
from otelres.backup._reader import EntryDamaged, check_entries, iter_entry
from otelres.backup._retention import RetentionPlan, RetentionPolicy, plan_retention
from otelres.backup._sources import (
    LargeJson,
    PathLike,
    PlannedEntry,
    Source,
    plan_entries,
    read_chunks,
    sqlite_snapshot,
)
from otelres.backup._storage import (
    BackupExistsError,
    BackupStorage,
    LocalDirectoryStorage,
    PendingWrite,
    StagedBackup,
    UnsafeEntryError,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from otelres.config import BackupSettings

__all__ = ["BackupManager", "PruneResult", "VerifyReport"]

_log = logging.getLogger("otelres.backup")
_T = TypeVar("_T")
_ID_ATTEMPTS = 8
_PIPELINE_FILE_BYTES = 8 << 20

_issue_lock = threading.Lock()
_last_issued: list[datetime] = []


def _utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :meth:`BackupManager.verify_backup`: ``ok``, or each problem found.

    ``problems`` holds ``(entry name, what is wrong)``; the entry name is None for a
    problem of the backup as a whole (its manifest). ``bad_entries`` lists the names.
    """

    backup_id: str
    ok: bool
    problems: tuple[tuple[str | None, str], ...]
    entries_checked: int
    signed: bool

    @property
    def bad_entries(self) -> tuple[str, ...]:
        """Names of the entries that failed."""
        return tuple(name for name, _ in self.problems if name is not None)

    def __str__(self) -> str:
        if self.ok:
            signed = ", signature ok" if self.signed else ""
            entries = "entry" if self.entries_checked == 1 else "entries"
            return f"{self.backup_id}: ok ({self.entries_checked} {entries}{signed})"
        lines = [f"{self.backup_id}: DAMAGED"]
        for name, message in self.problems:
            lines.append(f"  {'entry ' + repr(name) if name else 'manifest'}: {message}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PruneResult:
    """What :meth:`BackupManager.prune` kept and removed (or would, with ``dry_run``)."""

    kept: tuple[tuple[BackupInfo, tuple[str, ...]], ...]
    """Each kept backup with the rules that keep it (``"newest"``, ``"daily"``, ...)."""
    removed: tuple[BackupInfo, ...]
    untouched: tuple[BackupInfo, ...]
    """Damaged or incomplete backups, which retention never deletes."""
    abandoned: tuple[str, ...]
    """Staging leftovers of writers that died before committing (removed)."""
    dry_run: bool


class BackupManager:
    """Creates and manages backups in one storage location.

    Every argument defaults to the ``[backup]`` section of
    :func:`otelres.config.current` (*settings* replaces that section); explicit
    arguments win over both. *backup_path* is the directory of the local backend;
    *storage* replaces the backend altogether (any :class:`BackupStorage`).

    *hmac_key* (bytes or str) or ``backup.hmac_key_env`` (the name of an environment
    variable holding the key) turns signing on: new backups are signed, and reading
    refuses a backup whose signature is missing or wrong.

    *clock* returns the current UTC time (for tests); *meter_provider* and
    *tracer_provider* default to the global OpenTelemetry providers.
    """

    STATS_MAX_AGE = 30.0
    """Seconds the storage statistics behind the gauges are reused before storage is listed again."""

    def __init__(
        self,
        backup_path: PathLike | None = None,
        *,
        storage: BackupStorage | None = None,
        compress: bool | None = None,
        compression: str | None = None,
        compression_level: int | None = None,
        retention: RetentionPolicy | None = None,
        hmac_key: bytes | str | None = None,
        hmac_key_env: str | None = None,
        max_restore_bytes: int | None = None,
        settings: BackupSettings | None = None,
        clock: Callable[[], datetime] | None = None,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if settings is None:
            from otelres.config import current

            settings = current().backup
        self.settings = settings
        self.storage: BackupStorage = storage or LocalDirectoryStorage(
            backup_path if backup_path is not None else settings.backup_path
        )
        use_compression = settings.compress if compress is None else compress
        self.compression = (compression or settings.compression) if use_compression else "none"
        self.compression_level = (
            settings.compression_level if compression_level is None else compression_level
        )
        if self.compression != "none":
            check_level(self.compression, self.compression_level)
        self.retention = retention or RetentionPolicy.from_settings(settings)
        self._hmac_key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        if self._hmac_key is not None and not self._hmac_key:
            raise BackupError("hmac_key is empty: an empty key signs nothing; pass a long secret")
        self._hmac_env = settings.hmac_key_env if hmac_key_env is None else hmac_key_env
        self.max_restore_bytes = (
            settings.max_restore_bytes if max_restore_bytes is None else max_restore_bytes
        )
        self._clock = clock
        self._meter_provider = meter_provider
        self._tracer_provider = tracer_provider
        self._stats_lock = threading.Lock()
        self._stats: dict[str, dict[str, float]] | None = None
        self._stats_at = 0.0
        self._created: dict[tuple[str, str], int] = {}
        _telemetry.publish(self, meter_provider)

    def __repr__(self) -> str:
        return f"BackupManager({self.storage.location!r}, compression={self.compression!r})"

    @property
    def location(self) -> str:
        """Where the backups are (the backend's description, e.g. a directory)."""
        return self.storage.location

    # ------------------------------------------------------------------ signing key
    @property
    def signing(self) -> bool:
        """Whether signing is configured (a key given, or ``hmac_key_env`` named)."""
        return self._hmac_key is not None or bool(self._hmac_env)

    def _key(self, *, required: bool) -> bytes | None:
        """The HMAC key, or None when signing is off; *required* raises when it is on but unset."""
        if self._hmac_key is not None:
            return self._hmac_key
        if not self._hmac_env:
            return None
        value = os.environ.get(self._hmac_env)
        if value:
            return value.encode()
        if required:
            state = "empty" if value == "" else "not set"
            raise BackupError(
                f"backup.hmac_key_env names ${self._hmac_env}, which is {state}; "
                "set it (signing is on) or clear backup.hmac_key_env"
            )
        return None

    def _key_source(self) -> str:
        return f"${self._hmac_env}" if self._hmac_key is None else "hmac_key"

    # ------------------------------------------------------------------ create
    def create_backup(
        self,
        data: Mapping[str, Any] | None = None,
        backup_type: str = "manual",
        *,
        files: Mapping[str, PathLike] | Iterable[PathLike] | None = None,
        sqlite: Mapping[str, PathLike] | Iterable[PathLike] | None = None,
        metadata: Mapping[str, str] | None = None,
        json_default: Callable[[Any], Any] | None = None,
    ) -> str:
        """Write a backup and return its id; nothing is listed as valid unless it all worked.

        *data* maps entry names to JSON-serializable values (each becomes one entry;
        *json_default* is passed to :func:`json.dumps` for other types). *files* and
        *sqlite* name files copied as they are and SQLite databases copied with SQLite's
        online backup API (consistent even while another connection writes); give a
        mapping ``{entry name: path}`` or paths (the entry name is the file name).
        Entry names must be safe relative paths and unique.

        Raises :class:`BackupError` naming the entry, file or setting at fault; a failure
        part-way (disk full, a crash) leaves no backup behind under the id.
        """
        check_type(backup_type)
        started = time.perf_counter()
        attributes = {"backup.type": backup_type}
        try:
            with _telemetry.backup_span(
                self._tracer_provider, "otelres.backup.create", attributes
            ) as span:
                plan = plan_entries(data, files, sqlite, json_default)
                key = self._key(required=True)
                meta = {str(k): str(v) for k, v in (metadata or {}).items()}
                backup_id, size = self._write(plan, backup_type, meta, key)
                if span is not None:
                    span.set_attribute("backup.id", backup_id)
                    span.set_attribute("backup.size", size)
        except BaseException as exc:
            self._record_failure(backup_type, exc, time.perf_counter() - started)
            raise
        elapsed = time.perf_counter() - started
        _telemetry.record_duration(
            self._meter_provider, elapsed, {**attributes, "backup.outcome": "success"}
        )
        self._count(backup_type, "success")
        self._note_created(backup_id, backup_type, size)
        _log.info(
            "backup %s written to %s (%d bytes, %d entries, %.3f s)",
            backup_id, self.location, size, len(plan), elapsed,
        )
        return backup_id

    def _new_id(self, backup_type: str) -> tuple[str, datetime]:
        """A fresh id and its timestamp (from the injected clock, else strictly increasing now)."""
        if self._clock is not None:
            moment = self._clock().astimezone(timezone.utc)
            return new_backup_id(moment, backup_type), moment
        with _issue_lock:
            moment = _utc_now()
            # Keep ids of one process strictly increasing even when the clock stalls.
            if _last_issued and moment <= _last_issued[0]:
                moment = _last_issued[0] + timedelta(microseconds=1)
            _last_issued[:] = [moment]
        return new_backup_id(moment, backup_type), moment

    def _write(
        self,
        plan: list[PlannedEntry],
        backup_type: str,
        metadata: Mapping[str, str],
        key: bytes | None,
    ) -> tuple[str, int]:
        """Stage every entry, commit with the manifest, and return ``(id, stored size)``.

        An id that turns out to exist (another process, same microsecond and suffix) is
        retried with a new one; any failure aborts the staging, so nothing is left behind.
        """
        from otelres._version import __version__

        for _ in range(_ID_ATTEMPTS):
            backup_id, created = self._new_id(backup_type)
            try:
                staged = self.storage.begin(backup_id)
            except FileExistsError:
                continue
            except OSError as exc:
                raise BackupError(f"cannot write to {self.location}: {exc.strerror}") from None
            try:
                records = []
                for index, (name, kind, source) in enumerate(plan):
                    path = f"e{index:04d}.{kind}{suffix(self.compression)}"
                    records.append(self._write_entry(staged, path, name, kind, source))
                manifest = encode_manifest(
                    backup_id=backup_id,
                    created=created,
                    backup_type=backup_type,
                    otelres_version=__version__,
                    compression=self.compression,
                    entries=records,
                    metadata=metadata,
                    hmac_key=key,
                )
                staged.commit(manifest)
            except BackupExistsError:
                staged.abort()
                continue
            except OSError as exc:
                staged.abort()
                where = f" ({exc.filename})" if exc.filename else ""
                raise BackupError(
                    f"writing backup {backup_id} to {self.location} failed: "
                    f"{exc.strerror or exc}{where}; nothing was kept"
                ) from None
            except BaseException:
                staged.abort()
                raise
            size = sum(r.stored_size for r in records) + len(manifest)
            return backup_id, size
        raise BackupError(f"could not find a free backup id in {self.location}")

    def _write_entry(
        self, staged: StagedBackup, path: str, name: str, kind: str, source: Source
    ) -> EntryRecord:
        """Stream one entry through the compressor into storage, hashing both sides.

        Big JSON values and big files go through :func:`pipelined`: this thread
        serializes or reads and hashes the original bytes while a worker compresses,
        hashes the stored bytes and writes (hashlib and zlib release the GIL, so on two
        cores the hashing of the original costs no wall time).
        """
        plain = hashlib.sha256()
        stored = hashlib.sha256()
        sizes = [0, 0]
        engine = compressor(self.compression, self.compression_level)

        def original(chunks: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
            for chunk in chunks:
                plain.update(chunk)
                sizes[0] += len(chunk)
                yield chunk

        def compressed(chunks: Iterable[bytes | memoryview]) -> Iterator[bytes]:
            for chunk in chunks:
                out = engine.compress(chunk)  # type: ignore[arg-type]
                if out:
                    stored.update(out)
                    sizes[1] += len(out)
                    yield out
            out = engine.flush()
            if out:
                stored.update(out)
                sizes[1] += len(out)
                yield out

        def sink(chunks: Iterator[bytes | memoryview]) -> int:
            return staged.write_entry(path, compressed(chunks))

        if isinstance(source, bytes):
            view = memoryview(source)
            sink(original(view[i : i + CHUNK] for i in range(0, len(view), CHUNK)))
        elif isinstance(source, LargeJson):
            try:
                pipelined(original(json_pieces(source.value, source.default)), sink)
            except (TypeError, ValueError) as exc:
                raise BackupError(f"entry {name!r}: not JSON-serializable: {exc}") from None
            except RecursionError:
                raise BackupError(f"entry {name!r}: nested too deeply to serialize") from None
        elif kind == "sqlite":
            with sqlite_snapshot(name, source) as snapshot:
                pipelined(original(read_chunks(snapshot)), sink)
        elif source.stat().st_size > _PIPELINE_FILE_BYTES:
            pipelined(original(read_chunks(source)), sink)
        else:
            sink(original(read_chunks(source)))
        return EntryRecord(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            path=path,
            size=sizes[0],
            stored_size=sizes[1],
            compression=self.compression,
            sha256=stored.hexdigest(),
            content_sha256=plain.hexdigest(),
        )

    # ------------------------------------------------------------------ listing
    def list_backups(
        self, backup_type: str | None = None, *, verify: bool = False
    ) -> list[BackupInfo]:
        """Every backup, newest first; only *backup_type* when given.

        Each backup's manifest (checksum, and signature when signing is on) and the
        presence and size of each entry are checked; with *verify* every byte is read
        back and checked too. Incomplete and damaged backups are listed with their
        status and ``problem``, never as valid.
        """
        key = self._key(required=False)
        found = []
        for backup_id in self.storage.backup_ids():
            info = self._inspect(backup_id, key, deep=verify)
            # A backup another process deleted while we read it is gone, not damaged.
            if info.valid or self.storage.exists(backup_id):
                found.append(info)
        found.extend(_pending_info(p) for p in self.storage.pending())
        found.sort(key=lambda b: (b.timestamp, b.backup_id), reverse=True)
        if backup_type is None:
            self._refresh_stats(found)
            return found
        return [b for b in found if b.backup_type == backup_type]

    def get_backup(self, backup_id: str, *, verify: bool = False) -> BackupInfo:
        """The :class:`BackupInfo` of *backup_id*; :class:`BackupNotFoundError` if unknown."""
        self._require(backup_id)
        return self._inspect(backup_id, self._key(required=False), deep=verify)

    def latest_valid(
        self, backup_type: str | None = None, *, verify: bool = False
    ) -> BackupInfo | None:
        """The newest valid backup (of *backup_type*), or None when there is none.

        This is the freshness probe for health checks: ``age_seconds()`` of the result
        against ``interval_hours``. Without *verify* it reads only manifests and sizes
        (cheap); with it, damaged candidates are skipped until one passes every check.
        """
        for info in self.list_backups(backup_type):
            if not info.valid:
                continue
            if not verify:
                return info
            checked = self._inspect(info.backup_id, self._key(required=False), deep=True)
            if checked.valid:
                return checked
            _log.warning("backup %s is damaged, skipped: %s", info.backup_id, checked.problem)
        return None

    def _require(self, backup_id: str) -> None:
        """Raise :class:`BackupNotFoundError` unless *backup_id* names a stored backup."""
        if parse_backup_id(backup_id) is None or not self.storage.exists(backup_id):
            raise BackupNotFoundError(
                backup_id,
                self.location,
                f"no backup {backup_id!r} in {self.location} "
                "(see `otelres backup list` for the ids)",
            )

    def _manifest(self, backup_id: str, key: bytes | None) -> Manifest:
        """The decoded, checked manifest of *backup_id*, or :class:`ManifestError` saying why not."""
        try:
            data = self.storage.read_manifest(backup_id)
        except UnsafeEntryError as exc:
            raise ManifestError(str(exc)) from None
        except OSError as exc:
            raise ManifestError(f"manifest.json cannot be read: {exc.strerror}") from None
        if data is None:
            raise ManifestError("manifest.json is missing (the backup never committed)")
        return decode_manifest(data, backup_id, key, key_source=self._key_source())

    def _inspect(self, backup_id: str, key: bytes | None, *, deep: bool) -> BackupInfo:
        """The :class:`BackupInfo` of *backup_id*: manifest and entry sizes, every byte if *deep*."""
        parsed = parse_backup_id(backup_id)
        assert parsed is not None
        created, backup_type = parsed
        try:
            size = self.storage.stored_size(backup_id)
        except (OSError, BackupError):
            size = 0
        try:
            manifest = self._manifest(backup_id, key)
        except ManifestError as exc:
            return BackupInfo(
                backup_id=backup_id,
                timestamp=created,
                backup_type=backup_type,
                size_bytes=size,
                compressed=False,
                files=(),
                status="damaged",
                problem=str(exc),
            )
        try:
            problems = check_entries(self.storage, manifest, self.max_restore_bytes, deep=deep)
        except OSError as exc:
            problems = [(None, f"cannot read the backup: {exc.strerror}")]
        problem = "; ".join(
            f"{'entry ' + repr(name) if name else 'backup'}: {msg}" for name, msg in problems
        )
        return BackupInfo(
            backup_id=backup_id,
            timestamp=manifest.created,
            backup_type=manifest.backup_type,
            size_bytes=size,
            compressed=manifest.compression != "none",
            files=tuple(e.name for e in manifest.entries),
            status="damaged" if problems else "valid",
            problem=problem or None,
            compression=manifest.compression,
            signed=manifest.signed,
            otelres_version=manifest.otelres_version,
            entries=manifest.entries,
            metadata=manifest.metadata,
            verified=deep,
        )

    # ------------------------------------------------------------------ verify / load
    def verify_backup(self, backup_id: str) -> VerifyReport:
        """Check every checksum of *backup_id* (and its signature when signing is on).

        Returns a :class:`VerifyReport` naming each bad entry; raises
        :class:`BackupNotFoundError` for an unknown id.
        """
        self._require(backup_id)
        key = self._key(required=True)
        with _telemetry.backup_span(
            self._tracer_provider, "otelres.backup.verify", {"backup.id": backup_id}
        ) as span:
            try:
                manifest = self._manifest(backup_id, key)
            except ManifestError as exc:
                report = VerifyReport(backup_id, False, ((None, str(exc)),), 0, False)
            else:
                problems = check_entries(self.storage, manifest, self.max_restore_bytes, deep=True)
                report = VerifyReport(
                    backup_id, not problems, tuple(problems), len(manifest.entries), manifest.signed
                )
            if span is not None:
                span.set_attribute("backup.valid", report.ok)
        if not report.ok:
            _log.warning("backup %s failed verification: %s", backup_id, report)
        return report

    def _resolve(
        self, backup_id: str, use: Callable[[Manifest], _T]
    ) -> tuple[_T, tuple[str, ...]]:
        """``use(manifest)`` for *backup_id*, or for the newest backup it succeeds on for
        ``"latest"``; also the ids of damaged backups skipped on the way.

        Each candidate's manifest and cheap entry checks come first; *use* reads the
        entries (checking every byte as it goes) and raises :class:`BackupCorruptError`
        for damage, which for ``"latest"`` moves on to the next older backup. So every
        entry is read once, whether it is being verified, loaded or restored.

        Raises :class:`BackupNotFoundError` (unknown id, or no valid backup) and
        :class:`BackupCorruptError` (the named backup is damaged).
        """
        key = self._key(required=True)
        if backup_id != "latest":
            self._require(backup_id)
            candidates = [backup_id]
        else:
            candidates = [b.backup_id for b in self.list_backups() if b.status != "incomplete"]
        skipped: list[str] = []
        for candidate in candidates:
            try:
                try:
                    manifest = self._manifest(candidate, key)
                except ManifestError as exc:
                    raise BackupCorruptError(candidate, [(None, str(exc))]) from None
                problems = check_entries(self.storage, manifest, self.max_restore_bytes, deep=False)
                if problems:
                    raise BackupCorruptError(candidate, problems)
                return use(manifest), tuple(skipped)
            except BackupCorruptError as exc:
                if backup_id != "latest":
                    raise
                _log.warning("skipping damaged backup %s: %s", candidate, exc)
                skipped.append(candidate)
        raise BackupNotFoundError(
            "latest", self.location, f"no valid backup in {self.location}"
            + (f" ({len(skipped)} damaged backups skipped)" if skipped else "")
        )

    def _read_all(self, manifest: Manifest, *, load_json: bool = False) -> dict[str, Any]:
        """Read every entry of *manifest* back with every check (else
        :class:`BackupCorruptError`); with *load_json*, return the JSON entries decoded."""
        loaded: dict[str, Any] = {}

        def decode(record: EntryRecord, chunks: Iterator[bytes]) -> None:
            if record.kind != "json":
                for _ in chunks:
                    pass
                return
            raw = b"".join(chunks)  # every check has passed once this returns
            try:
                loaded[record.name] = json.loads(raw)
            except ValueError as exc:
                raise EntryDamaged(record.name, f"not valid JSON ({exc})") from None

        problems = check_entries(
            self.storage, manifest, self.max_restore_bytes, deep=True,
            consume=decode if load_json else None,
        )
        if problems:
            raise BackupCorruptError(manifest.backup_id, problems)
        return loaded

    def read_entry(self, backup_id: str, record: EntryRecord) -> Iterator[bytes]:
        """Stream the original bytes of one entry; raises :class:`EntryDamaged` at the end
        when a check fails (do not trust the bytes until the iterator is exhausted)."""
        return iter_entry(self.storage, backup_id, record, self.max_restore_bytes)

    def load_backup(self, backup_id: str = "latest") -> dict[str, Any]:
        """The JSON entries of *backup_id* (or of the newest valid backup) as a dict.

        The backup gets every check a restore gets (safe entry names, both checksums of
        every entry, the signature) before anything is returned; a damaged backup raises
        :class:`BackupCorruptError` naming each bad entry, and ``"latest"`` skips damaged
        backups exactly as :meth:`RecoveryManager.restore` does. Files and SQLite entries
        are checked but not loaded (restore them with :class:`RecoveryManager`).
        """
        loaded, _ = self._resolve(backup_id, lambda m: self._read_all(m, load_json=True))
        return loaded

    # ------------------------------------------------------------------ delete / prune
    def delete_backup(self, backup_id: str) -> None:
        """Delete *backup_id* (valid or not); :class:`BackupNotFoundError` if unknown."""
        self._require(backup_id)
        try:
            self.storage.delete(backup_id)
        except OSError as exc:
            raise BackupError(f"cannot delete backup {backup_id}: {exc.strerror}") from None
        self._invalidate_stats()
        _log.info("backup %s deleted from %s", backup_id, self.location)

    def plan_prune(self, *, now: datetime | None = None) -> RetentionPlan:
        """What :meth:`prune` would keep and remove, without removing anything.

        The newest valid backup of each type is read back in full first: if it is
        damaged, it does not count as the one backup that must survive.
        """
        moment = now or (self._clock() if self._clock else _utc_now())
        if moment.tzinfo is None:
            raise ValueError(f"now: expected a timezone-aware datetime, got {moment!r}")
        # Deleting on the word of unsigned manifests would let a forged "newest" backup
        # push real ones out: with signing on, pruning needs the key.
        key = self._key(required=True)
        infos = [b for b in self.list_backups() if b.status != "incomplete"]
        while True:
            plan = plan_retention(infos, self.retention, moment)
            newest = [b for b, reasons in plan.keep if "newest" in reasons and not b.verified]
            if not newest:
                return plan
            for info in newest:
                checked = self._inspect(info.backup_id, key, deep=True)
                infos = [checked if b.backup_id == info.backup_id else b for b in infos]

    def prune(self, *, dry_run: bool = False, now: datetime | None = None) -> PruneResult:
        """Delete the backups the retention policy does not keep (see :class:`RetentionPolicy`).

        With *dry_run* nothing is deleted and the result says what would be. Also removes
        the staging leftovers of writers that died before committing. Raises
        :class:`RetentionPolicyError` for an empty policy.
        """
        with _telemetry.backup_span(
            self._tracer_provider, "otelres.backup.prune", {"backup.dry_run": dry_run}
        ):
            plan = self.plan_prune(now=now)
            abandoned = [p for p in self.storage.pending() if not p.writer_alive]
            if not dry_run:
                for info in plan.remove:
                    try:
                        self.storage.delete(info.backup_id)
                    except FileNotFoundError:
                        continue  # another process (a second bot, cron) pruned it first
                    _log.info("pruned backup %s", info.backup_id)
                for pending in abandoned:
                    self.storage.remove_pending(pending.name)
                self._invalidate_stats()
        return PruneResult(
            kept=plan.keep,
            removed=plan.remove,
            untouched=tuple(b for b in plan.untouched if b.status != "incomplete"),
            abandoned=tuple(p.backup_id for p in abandoned),
            dry_run=dry_run,
        )

    # ------------------------------------------------------------------ telemetry
    def _record_failure(self, backup_type: str, exc: BaseException, seconds: float) -> None:
        """Count one failed backup attempt (``.created``, ``.duration`` with ``error.type``).

        Also used by :class:`BackupScheduler` when the state function fails before
        :meth:`create_backup` is reached: that too is a scheduled backup that did not happen.
        """
        attributes = {
            "backup.type": backup_type,
            "backup.outcome": "failure",
            "error.type": type(exc).__name__,
        }
        _telemetry.record_duration(self._meter_provider, seconds, attributes)
        self._count(backup_type, "failure")

    def _count(self, backup_type: str, outcome: str) -> None:
        """Count one attempted backup of *backup_type* with *outcome* (for ``.created``)."""
        with self._stats_lock:
            key = (backup_type, outcome)
            self._created[key] = self._created.get(key, 0) + 1

    def _note_created(self, backup_id: str, backup_type: str, size: int) -> None:
        """Fold a new backup into the cached storage statistics, if there are any."""
        parsed = parse_backup_id(backup_id)
        with self._stats_lock:
            if self._stats is None or parsed is None:
                return
            stats = self._stats.setdefault(backup_type, {})
            moment = parsed[0].timestamp()
            if moment >= stats.get("last_success", 0.0):
                stats["last_success"] = moment
                stats["size"] = float(size)
            stats["count.valid"] = stats.get("count.valid", 0.0) + 1

    def _refresh_stats(self, infos: list[BackupInfo]) -> None:
        """Recompute the per-type statistics the gauges report from a full listing."""
        stats: dict[str, dict[str, float]] = {}
        for info in infos:  # newest first
            entry = stats.setdefault(info.backup_type, {})
            key = f"count.{info.status}"
            entry[key] = entry.get(key, 0.0) + 1
            if info.valid and "last_success" not in entry:
                entry["last_success"] = info.timestamp.timestamp()
                entry["size"] = float(info.size_bytes)
        with self._stats_lock:
            self._stats = stats
            self._stats_at = time.monotonic()

    def _invalidate_stats(self) -> None:
        """Forget the statistics; the next collection lists storage again."""
        with self._stats_lock:
            self._stats = None

    def _telemetry_location(self) -> str:
        return self.storage.location

    def _telemetry_stats(self) -> Mapping[str, Mapping[str, float]]:
        # Other processes (cron's `make backup`, a second bot) write to the same storage:
        # storage is listed again once the figures are older than STATS_MAX_AGE.
        with self._stats_lock:
            stats = self._stats
            if time.monotonic() - self._stats_at > self.STATS_MAX_AGE:
                stats = None
        if stats is None:
            self.list_backups()
            with self._stats_lock:
                stats = self._stats or {}
        return {k: dict(v) for k, v in stats.items()}

    def _telemetry_created(self) -> Mapping[tuple[str, str], int]:
        with self._stats_lock:
            return dict(self._created)


# --------------------------------------------------------------------------- helpers
def _pending_info(pending: PendingWrite) -> BackupInfo:
    """A staging directory as an ``incomplete`` :class:`BackupInfo`."""
    parsed = parse_backup_id(pending.backup_id)
    moment, backup_type = parsed if parsed else (datetime.fromtimestamp(0, timezone.utc), "?")
    why = (
        "being written right now"
        if pending.writer_alive
        else "left by a writer that stopped before committing (removed by prune)"
    )
    return BackupInfo(
        backup_id=pending.backup_id,
        timestamp=moment,
        backup_type=backup_type,
        size_bytes=0,
        compressed=False,
        files=(),
        status="incomplete",
        problem=why,
    )

