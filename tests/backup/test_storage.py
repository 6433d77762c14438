"""The storage interface: the manager works over any BackupStorage, not just local directories."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pytest

from otelres.backup import (
    BackupError,
    BackupManager,
    BackupStorage,
    LocalDirectoryStorage,
    PendingWrite,
    RecoveryManager,
    RetentionPolicy,
)


class MemoryStorage:
    """A minimal in-memory backend, as an object-store backend would be shaped."""

    location = "memory://test"

    def __init__(self) -> None:
        self.committed: dict[str, dict[str, bytes]] = {}
        self.staging: dict[str, dict[str, bytes]] = {}

    def begin(self, backup_id: str) -> _Staged:
        self.staging[backup_id] = {}
        return _Staged(self, backup_id)

    def backup_ids(self) -> list[str]:
        return list(self.committed)

    def pending(self) -> list[PendingWrite]:
        return [PendingWrite(f"staging/{i}", i, 0.0, False) for i in self.staging]

    def read_manifest(self, backup_id: str) -> bytes | None:
        return self.committed[backup_id].get("manifest.json")

    def open_entry(self, backup_id: str, path: str) -> BinaryIO:
        try:
            return io.BytesIO(self.committed[backup_id][path])
        except KeyError:
            raise FileNotFoundError(path) from None

    def entry_size(self, backup_id: str, path: str) -> int | None:
        data = self.committed[backup_id].get(path)
        return None if data is None else len(data)

    def stored_size(self, backup_id: str) -> int:
        return sum(len(v) for v in self.committed.get(backup_id, {}).values())

    def exists(self, backup_id: str) -> bool:
        return backup_id in self.committed

    def delete(self, backup_id: str) -> None:
        del self.committed[backup_id]

    def remove_pending(self, name: str) -> None:
        self.staging.pop(name.removeprefix("staging/"), None)


class _Staged:
    def __init__(self, storage: MemoryStorage, backup_id: str) -> None:
        self.storage = storage
        self.backup_id = backup_id

    def write_entry(self, path: str, chunks: Iterable[bytes]) -> int:
        data = b"".join(chunks)
        self.storage.staging[self.backup_id][path] = data
        return len(data)

    def commit(self, manifest: bytes) -> None:
        files = self.storage.staging.pop(self.backup_id)
        files["manifest.json"] = manifest
        self.storage.committed[self.backup_id] = files

    def abort(self) -> None:
        self.storage.staging.pop(self.backup_id, None)


def test_both_backends_satisfy_the_protocol(tmp_path: Path) -> None:
    """LocalDirectoryStorage and a third-party backend are both BackupStorage."""
    assert isinstance(LocalDirectoryStorage(tmp_path), BackupStorage)
    assert isinstance(MemoryStorage(), BackupStorage)


def test_manager_works_over_another_backend(tmp_path: Path) -> None:
    """Create, list, load, verify, restore, prune and delete all work through a non-local backend."""
    storage = MemoryStorage()
    manager = BackupManager(storage=storage, retention=RetentionPolicy(keep_last=1))
    first = manager.create_backup({"portfolio": {"cash": 1}})
    second = manager.create_backup({"portfolio": {"cash": 2}}, files=[__file__])
    assert [b.backup_id for b in manager.list_backups()] == [second, first]
    assert manager.load_backup(first) == {"portfolio": {"cash": 1}}
    assert manager.verify_backup(second).ok
    result = RecoveryManager(manager).restore("latest", tmp_path / "out")
    assert result.backup_id == second
    assert (tmp_path / "out" / Path(__file__).name).read_bytes() == Path(__file__).read_bytes()
    pruned = manager.prune()
    assert [b.backup_id for b in pruned.removed] == [first]
    manager.delete_backup(second)
    assert manager.list_backups() == []
    assert manager.location == "memory://test"


def test_a_failed_write_aborts_the_staged_backup() -> None:
    """An error while writing entries (a big value that fails to serialize part-way) aborts the staging."""
    storage = MemoryStorage()
    manager = BackupManager(storage=storage)
    began = []
    original = storage.begin

    def spying_begin(backup_id: str) -> _Staged:
        began.append(backup_id)
        return original(backup_id)

    storage.begin = spying_begin  # type: ignore[method-assign]
    with pytest.raises(BackupError, match="entry 'bad': not JSON-serializable"):
        manager.create_backup({"ok": 1, "bad": [0] * 5000 + [{1, 2}]})
    assert len(began) == 1  # the write had started
    assert storage.committed == {}
    assert storage.staging == {}
