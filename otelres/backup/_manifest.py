"""Backup ids, the manifest format, and the records :mod:`otelres.backup` hands out.

A backup is a set of entries plus ``manifest.json``, written last as the commit point.
The manifest is readable JSON::

    {
      "format": "otelres-backup",
      "format_version": 1,
      "backup_id": "20261128T224607.123456Z_manual_3f9a",
      "created": "2026-11-28T22:46:07.123456Z",
      "backup_type": "manual",
      "otelres_version": "0.1.0",
      "compression": "gzip",
      "entries": [
        {"name": "portfolio", "kind": "json", "path": "e0000.json.gz", "size": 1234,
         "stored_size": 456, "compression": "gzip",
         "sha256": "<of the stored bytes>", "content_sha256": "<of the original bytes>"}
      ],
      "metadata": {},
      "checksum": "sha256:<of the canonical manifest without checksum and hmac>",
      "hmac": "hmac-sha256:<same bytes, keyed>"          (only when signing is on)
    }

``checksum`` catches a damaged manifest; ``hmac`` (keyed with a secret from the
environment) catches a tampered one, since whoever edits an entry can recompute plain
checksums but not the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Literal

from otelres.backup._codec import COMPRESSIONS
from otelres.backup._errors import BackupError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BackupInfo",
    "BackupStatus",
    "EntryKind",
    "EntryRecord",
    "ManifestError",
    "check_entry_name",
    "check_type",
    "decode_manifest",
    "encode_manifest",
    "format_time",
    "new_backup_id",
    "parse_backup_id",
    "restore_path",
]

FORMAT = "otelres-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

EntryKind = Literal["json", "file", "sqlite"]
ENTRY_KINDS: tuple[str, ...] = ("json", "file", "sqlite")
BackupStatus = Literal["valid", "incomplete", "damaged"]

_ID = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)_([A-Za-z0-9][A-Za-z0-9_-]{0,63})_([0-9a-f]{4})$")
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_STORED = re.compile(r"^e\d{4,}\.(json|file|sqlite)(\.gz|\.zst)?$")
_ID_TIME = "%Y%m%dT%H%M%S.%fZ"


class ManifestError(BackupError):
    """A manifest that cannot be trusted: unreadable, inconsistent or badly signed."""


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: ``2026-11-28T22:46:07.123456Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def check_type(backup_type: str) -> str:
    """Return *backup_type* if it is a usable type name, else raise naming the rule."""
    if not isinstance(backup_type, str) or not _TYPE.match(backup_type):
        raise BackupError(
            f"backup_type {backup_type!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return backup_type


def new_backup_id(moment: datetime, backup_type: str) -> str:
    """A fresh id: UTC time to the microsecond, the type, and 16 random bits.

    Ids sort in creation order (the time comes first, fixed width), and two backups made
    in the same microsecond still differ in their random suffix; the storage refuses a
    name that exists, so a clash is retried, never overwritten.
    """
    stamp = moment.astimezone(timezone.utc).strftime(_ID_TIME)
    return f"{stamp}_{check_type(backup_type)}_{secrets.token_hex(2)}"


def parse_backup_id(backup_id: str) -> tuple[datetime, str] | None:
    """``(created, backup_type)`` encoded in *backup_id*, or None for a foreign name."""
    match = _ID.match(backup_id)
    if match is None:
        return None
    try:
        moment = datetime.strptime(match.group(1), _ID_TIME).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return moment, match.group(2)


def check_entry_name(name: object) -> str:
    """Return *name* if it is a safe relative path, else raise naming what is wrong.

    Entry names become paths under a restore target, so they may not be empty, absolute,
    contain ``..`` or ``.`` parts, backslashes, NUL or control characters.
    """
    if not isinstance(name, str) or not name:
        raise BackupError(f"entry name {name!r}: expected a non-empty string")
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise BackupError(f"entry name {name!r}: absolute paths are not allowed")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name):
        raise BackupError(f"entry name {name!r}: control characters are not allowed")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BackupError(f"entry name {name!r}: '..', '.' and empty path parts are not allowed")
    if len(name) > 1024 or any(len(part.encode("utf-8")) > 200 for part in parts):
        raise BackupError(f"entry name {name!r}: too long")
    return name


def restore_path(name: str, kind: str) -> PurePosixPath:
    """Where an entry goes under a restore target: ``<name>.json`` for JSON, else ``<name>``."""
    check_entry_name(name)
    return PurePosixPath(f"{name}.json" if kind == "json" else name)


@dataclass(frozen=True)
class EntryRecord:
    """One entry of a backup as the manifest describes it."""

    name: str
    """The entry's name: a key of the backed-up state, or a file's name."""
    kind: EntryKind
    """``json`` (a value of the state), ``file`` (copied as it was) or ``sqlite``."""
    path: str
    """Where the entry is stored inside the backup (``e0000.json.gz``)."""
    size: int
    """Original (uncompressed) size in bytes."""
    stored_size: int
    """Size as stored, after compression."""
    compression: str
    sha256: str
    """SHA-256 of the stored bytes."""
    content_sha256: str
    """SHA-256 of the original bytes."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "size": self.size,
            "stored_size": self.stored_size,
            "compression": self.compression,
            "sha256": self.sha256,
            "content_sha256": self.content_sha256,
        }


@dataclass(frozen=True)
class BackupInfo:
    """A backup as :meth:`BackupManager.list_backups` shows it (no entry content, no keys).

    The seed's fields (``backup_id``, ``timestamp``, ``backup_type``, ``size_bytes``,
    ``compressed``, ``files``) are here, plus the backup's ``status``: ``"valid"``,
    ``"incomplete"`` (a write that never committed: crashed or still running) or
    ``"damaged"`` (``problem`` says why). Only ``valid`` backups are restored or counted
    by retention.
    """

    backup_id: str
    timestamp: datetime
    """When the backup was made (UTC, timezone-aware)."""
    backup_type: str
    size_bytes: int
    """Bytes the backup takes in storage (entries as stored plus the manifest)."""
    compressed: bool
    files: tuple[str, ...]
    """Entry names, in the order they were written."""
    status: BackupStatus = "valid"
    problem: str | None = None
    """Why the backup is not valid; None when it is."""
    compression: str = "none"
    signed: bool = False
    """Whether the manifest carries an HMAC signature."""
    otelres_version: str = ""
    entries: tuple[EntryRecord, ...] = field(default=(), repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    verified: bool = False
    """True when every checksum was checked (``list_backups(verify=True)``, ``verify``);
    False when only the manifest and entry sizes were checked."""

    @property
    def valid(self) -> bool:
        """True when the backup can be restored (status ``"valid"``)."""
        return self.status == "valid"

    @property
    def original_size(self) -> int:
        """Sum of the entries' original (uncompressed) sizes."""
        return sum(entry.size for entry in self.entries)

    def age_seconds(self, now: datetime | None = None) -> float:
        """Seconds since the backup was made (negative if its clock was ahead)."""
        moment = now or datetime.now(timezone.utc)
        return (moment - self.timestamp).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``otelres backup list --json``: names and sizes, never content."""
        return {
            "backup_id": self.backup_id,
            "timestamp": format_time(self.timestamp),
            "backup_type": self.backup_type,
            "status": self.status,
            "problem": self.problem,
            "size_bytes": self.size_bytes,
            "original_size": self.original_size,
            "compressed": self.compressed,
            "compression": self.compression,
            "signed": self.signed,
            "verified": self.verified,
            "otelres_version": self.otelres_version,
            "files": list(self.files),
            "entries": [
                {"name": e.name, "kind": e.kind, "size": e.size, "stored_size": e.stored_size}
                for e in self.entries
            ],
            "metadata": dict(self.metadata),
        }


# --------------------------------------------------------------------------- encoding
def _canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes checksums and HMACs are computed over: sorted keys, no whitespace."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode_manifest(
    *,
    backup_id: str,
    created: datetime,
    backup_type: str,
    otelres_version: str,
    compression: str,
    entries: list[EntryRecord],
    metadata: Mapping[str, str],
    hmac_key: bytes | None,
) -> bytes:
    """The manifest file's bytes, with its checksum and, given a key, its HMAC."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backup_id": backup_id,
        "created": format_time(created),
        "backup_type": backup_type,
        "otelres_version": otelres_version,
        "compression": compression,
        "entries": [entry.to_dict() for entry in entries],
        "metadata": dict(metadata),
    }
    canonical = _canonical(body)
    body["checksum"] = "sha256:" + hashlib.sha256(canonical).hexdigest()
    if hmac_key is not None:
        body["hmac"] = "hmac-sha256:" + hmac.new(hmac_key, canonical, hashlib.sha256).hexdigest()
    return (json.dumps(body, indent=1) + "\n").encode()


@dataclass(frozen=True)
class Manifest:
    """A decoded, self-consistent manifest."""

    backup_id: str
    created: datetime
    backup_type: str
    otelres_version: str
    compression: str
    entries: tuple[EntryRecord, ...]
    metadata: Mapping[str, str]
    signed: bool


def decode_manifest(
    data: bytes, expected_id: str, hmac_key: bytes | None, *, key_source: str = "the key"
) -> Manifest:
    """Parse and check manifest *data*; raise :class:`ManifestError` saying what is wrong.

    With *hmac_key*, an unsigned or wrongly signed manifest is refused: signing exists
    to stop an attacker who rewrites entries and their checksums, and stripping the
    signature must not be a way around it. A signed manifest read without a key is
    accepted on its checksum alone (``signed`` tells the caller).
    """
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ManifestError("manifest.json is not valid JSON") from None
    except RecursionError:
        raise ManifestError("manifest.json is not valid JSON (nested too deeply)") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ManifestError("manifest.json is not an otelres backup manifest")
    version = body.get("format_version")
    if not isinstance(version, int) or _not_count(version) or not 1 <= version <= FORMAT_VERSION:
        raise ManifestError(
            f"manifest format version {version!r} is not supported by this otelres "
            f"(it reads version {FORMAT_VERSION}); upgrade otelres"
        )
    checksum = body.pop("checksum", None)
    signature = body.pop("hmac", None)
    canonical = _canonical(body)
    if checksum != "sha256:" + hashlib.sha256(canonical).hexdigest():
        raise ManifestError("manifest checksum does not match its content")
    if hmac_key is not None:
        if not isinstance(signature, str):
            raise ManifestError(
                f"manifest is not signed, but signing is on ({key_source}); "
                "it was tampered with or written before signing was enabled"
            )
        expected = "hmac-sha256:" + hmac.new(hmac_key, canonical, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            raise ManifestError("manifest HMAC does not match: tampered with, or another key")
    try:
        manifest = _build_manifest(body, signature is not None)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ManifestError(f"manifest is inconsistent ({exc})") from None
    if manifest.backup_id != expected_id:
        raise ManifestError(
            f"manifest belongs to backup {manifest.backup_id!r}, not {expected_id!r}"
        )
    # The id repeats the time and type: a manifest edited to say otherwise is not trusted.
    if parse_backup_id(expected_id) != (manifest.created, manifest.backup_type):
        raise ManifestError(
            f"manifest says {manifest.backup_type!r} made {format_time(manifest.created)}, "
            f"which the backup id {expected_id!r} contradicts"
        )
    return manifest


def _not_count(value: object) -> bool:
    """True unless *value* is a non-negative int (``True`` is not a count)."""
    return isinstance(value, bool) or not isinstance(value, int) or value < 0


def _text(raw: Mapping[str, Any], key: str) -> str:
    """Field *key* of a manifest record, which must be a string."""
    value = raw[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string: {value!r}")
    return value


def _count(raw: Mapping[str, Any], key: str) -> int:
    """Field *key* of a manifest record, which must be an integer >= 0."""
    value = raw[key]
    if _not_count(value):
        raise ValueError(f"{key} is not a byte count: {value!r}")
    return int(value)


def _build_manifest(body: Mapping[str, Any], signed: bool) -> Manifest:
    """A :class:`Manifest` from a checked manifest *body*; raises on missing or odd fields."""
    entries: list[EntryRecord] = []
    raw_entries = body["entries"]
    if not isinstance(raw_entries, list):
        raise TypeError("entries is not a list")
    for raw in raw_entries:
        if not isinstance(raw, dict):
            raise TypeError(f"an entry is a {type(raw).__name__}, not a table")
        kind = raw["kind"]
        if kind not in ENTRY_KINDS:
            raise ValueError(f"unknown entry kind {kind!r}")
        compression = _text(raw, "compression")
        if compression not in COMPRESSIONS:
            raise ValueError(f"entry {raw['name']!r}: unknown compression {compression!r}")
        entries.append(
            EntryRecord(
                name=_text(raw, "name"),
                kind=kind,
                path=_text(raw, "path"),
                size=_count(raw, "size"),
                stored_size=_count(raw, "stored_size"),
                compression=compression,
                sha256=_text(raw, "sha256"),
                content_sha256=_text(raw, "content_sha256"),
            )
        )
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not a table")
    return Manifest(
        backup_id=str(body["backup_id"]),
        created=_parse_time(str(body["created"])),
        backup_type=str(body["backup_type"]),
        otelres_version=str(body["otelres_version"]),
        compression=str(body["compression"]),
        entries=tuple(entries),
        metadata={str(k): str(v) for k, v in metadata.items()},
        signed=signed,
    )


def stored_path_ok(path: str) -> bool:
    """Whether *path* is a name this package writes for an entry (a plain file name)."""
    return bool(_STORED.match(path))
