"""Helpers that damage or tamper with stored backups, as disks and attackers do."""

from __future__ import annotations

import json
from pathlib import Path


def entry_file(backup_dir: Path, backup_id: str, name: str) -> Path:
    """The stored file of entry *name* in backup *backup_id*."""
    manifest = json.loads((backup_dir / backup_id / "manifest.json").read_text())
    for entry in manifest["entries"]:
        if entry["name"] == name:
            return backup_dir / backup_id / entry["path"]
    raise KeyError(name)


def flip_byte(path: Path, offset: int) -> None:
    """Invert every bit of the byte at *offset* of *path*."""
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_manifest(backup_dir: Path, backup_id: str, edit: object, key: bytes | None = None) -> None:
    """Apply *edit* (a function of the manifest dict) and re-seal the manifest's checksum
    (and HMAC with *key*), as an attacker who knows the format would."""
    import hashlib
    import hmac

    path = backup_dir / backup_id / "manifest.json"
    body = json.loads(path.read_text())
    body.pop("checksum", None)
    body.pop("hmac", None)
    edit(body)  # type: ignore[operator]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    body["checksum"] = "sha256:" + hashlib.sha256(canonical).hexdigest()
    if key is not None:
        body["hmac"] = "hmac-sha256:" + hmac.new(key, canonical, hashlib.sha256).hexdigest()
    path.write_text(json.dumps(body))
