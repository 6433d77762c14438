"""BackupManager: creating, listing, loading and deleting backups."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import stat
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from otelres import config
from otelres.backup import (
    BackupCorruptError,
    BackupError,
    BackupManager,
    BackupNotFoundError,
    CompressionUnavailableError,
)
from otelres.config import BackupSettings

from ._damage import entry_file, flip_byte

STATE = {"cash": 1250.5, "positions": [{"symbol": "BTC/USD", "amount": 0.25}], "note": "ü✓"}


def test_seed_usage_returns_an_id_that_loads_back(manager: BackupManager) -> None:
    """The seed's create_backup call returns an id whose backup loads back the same state."""
    backup_id = manager.create_backup({"portfolio": STATE}, backup_type="manual")
    assert manager.load_backup(backup_id) == {"portfolio": STATE}


def test_default_manager_reads_backup_path_from_current_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BackupManager() with no arguments writes under [backup] backup_path of the current config."""
    target = tmp_path / "from-config"
    config.set_current(config.Config(backup=BackupSettings(backup_path=str(target))))
    backup_id = BackupManager().create_backup({"portfolio": STATE}, backup_type="manual")
    assert (target / backup_id / "manifest.json").is_file()


def test_list_is_newest_first_with_seed_fields(manager: BackupManager) -> None:
    """list_backups() returns BackupInfo newest first with the seed's fields filled in."""
    first = manager.create_backup({"a": 1}, backup_type="manual")
    second = manager.create_backup({"b": 2, "c": 3}, backup_type="daily")
    listed = manager.list_backups()
    assert [b.backup_id for b in listed] == [second, first]
    newest = listed[0]
    assert newest.backup_type == "daily"
    assert newest.files == ("b", "c")
    assert newest.compressed is True
    assert newest.size_bytes > 0
    assert newest.timestamp.tzinfo is not None
    assert newest.valid
    assert newest.status == "valid"


def test_list_filters_by_type(manager: BackupManager) -> None:
    """list_backups(backup_type) returns only backups of that type."""
    manager.create_backup({"a": 1}, backup_type="manual")
    daily = manager.create_backup({"a": 2}, backup_type="daily")
    assert [b.backup_id for b in manager.list_backups("daily")] == [daily]


def test_ids_sort_in_creation_order_and_are_unique(manager: BackupManager) -> None:
    """Ids made in quick succession (same second) are distinct and sort in creation order."""
    ids = [manager.create_backup({"n": n}) for n in range(20)]
    assert len(set(ids)) == 20
    assert sorted(ids) == ids
    stamps = [datetime.strptime(i[:23], "%Y%m%dT%H%M%S.%fZ") for i in ids]
    assert stamps == sorted(stamps)


def test_ids_from_a_frozen_clock_are_still_unique(backup_dir: Path) -> None:
    """Two backups with the very same timestamp get different ids and both stay valid."""
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    manager = BackupManager(backup_dir, clock=lambda: moment)
    ids = {manager.create_backup({"n": n}) for n in range(10)}
    assert len(ids) == 10
    assert all(b.valid for b in manager.list_backups())
    assert all(i.startswith("20260102T030405.000000Z_manual_") for i in ids)


def test_manifest_records_format_type_version_and_checksums(
    manager: BackupManager, backup_dir: Path
) -> None:
    """The manifest holds format version, created time, type, otelres version and per-entry size and SHA-256."""
    import hashlib

    from otelres import __version__

    backup_id = manager.create_backup({"portfolio": STATE}, backup_type="manual")
    manifest = json.loads((backup_dir / backup_id / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["backup_type"] == "manual"
    assert manifest["otelres_version"] == __version__
    assert manifest["created"].endswith("Z")
    (entry,) = manifest["entries"]
    stored = (backup_dir / backup_id / entry["path"]).read_bytes()
    plain = gzip.decompress(stored)
    assert entry["compression"] == "gzip"
    assert entry["sha256"] == hashlib.sha256(stored).hexdigest()
    assert entry["content_sha256"] == hashlib.sha256(plain).hexdigest()
    assert entry["size"] == len(plain)
    assert entry["stored_size"] == len(stored)
    assert json.loads(plain) == STATE


def test_gzip_entries_are_reproducible(backup_dir: Path) -> None:
    """The same state compresses to the same bytes (gzip header mtime 0, no file name)."""
    manager = BackupManager(backup_dir)
    one = manager.create_backup({"portfolio": STATE})
    two = manager.create_backup({"portfolio": STATE})
    first = entry_file(backup_dir, one, "portfolio").read_bytes()
    assert first == entry_file(backup_dir, two, "portfolio").read_bytes()
    assert first[4:8] == b"\0\0\0\0"  # gzip MTIME field


def test_zstd_compression_round_trips(backup_dir: Path) -> None:
    """With compression = 'zstd' entries are zstd frames and load back unchanged."""
    manager = BackupManager(backup_dir, compression="zstd", compression_level=10)
    backup_id = manager.create_backup({"portfolio": STATE})
    assert entry_file(backup_dir, backup_id, "portfolio").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert manager.load_backup(backup_id) == {"portfolio": STATE}
    assert manager.verify_backup(backup_id).ok


def test_zstd_without_the_package_is_a_clear_error(
    backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking for zstd without zstandard installed names the extra to install."""
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(CompressionUnavailableError, match=r"otelres\[zstd\]"):
        BackupManager(backup_dir, compression="zstd")


def test_uncompressed_backups_store_plain_bytes(backup_dir: Path) -> None:
    """compress = false stores entries as they are, and says so in the listing."""
    manager = BackupManager(backup_dir, compress=False)
    backup_id = manager.create_backup({"portfolio": STATE})
    assert json.loads(entry_file(backup_dir, backup_id, "portfolio").read_bytes()) == STATE
    assert manager.list_backups()[0].compressed is False


def test_gzip_level_out_of_range_is_refused(backup_dir: Path) -> None:
    """A gzip level outside 1..9 is refused naming the setting."""
    with pytest.raises(BackupError, match=r"backup\.compression_level"):
        BackupManager(backup_dir, compression_level=15)


def test_backups_are_private_to_the_owner(manager: BackupManager, backup_dir: Path) -> None:
    """Backup directories are 0700 and their files 0600."""
    backup_id = manager.create_backup({"portfolio": STATE})
    folder = backup_dir / backup_id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_files_are_copied_as_they_are(manager: BackupManager, tmp_path: Path) -> None:
    """A file entry is restored byte for byte, under its file name or a given name."""
    blob = tmp_path / "keys.bin"
    blob.write_bytes(os.urandom(5000) + b"\0\xff")
    backup_id = manager.create_backup(files=[blob], sqlite=None)
    other = manager.create_backup(files={"config/app.bin": blob})
    from otelres.backup import RecoveryManager

    out = tmp_path / "out"
    RecoveryManager(manager).restore(backup_id, out)
    assert (out / "keys.bin").read_bytes() == blob.read_bytes()
    RecoveryManager(manager).restore(other, tmp_path / "out2")
    assert (tmp_path / "out2" / "config" / "app.bin").read_bytes() == blob.read_bytes()


def test_sqlite_is_copied_consistently_while_being_written(
    manager: BackupManager, tmp_path: Path
) -> None:
    """An SQLite database that another connection keeps writing backs up as a consistent snapshot."""
    db = tmp_path / "trades.db"
    conn = sqlite3.connect(db)
    conn.execute("create table trades (id integer primary key, a integer, b integer)")
    conn.commit()
    stop = threading.Event()

    def writer() -> None:
        own = sqlite3.connect(db, timeout=30)
        n = 0
        while not stop.is_set():
            # Each transaction writes two rows whose sums must match: a torn copy would not.
            own.execute("insert into trades (a, b) values (?, ?)", (n, -n))
            own.execute("insert into trades (a, b) values (?, ?)", (-n, n))
            own.commit()
            n += 1
        own.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        ids = [manager.create_backup(sqlite=[db]) for _ in range(5)]
    finally:
        stop.set()
        thread.join()
        conn.close()
    from otelres.backup import RecoveryManager

    for number, backup_id in enumerate(ids):
        out = tmp_path / f"restored-{number}"
        RecoveryManager(manager).restore(backup_id, out)
        copy = sqlite3.connect(out / "trades.db")
        assert copy.execute("pragma integrity_check").fetchone() == ("ok",)
        count, total = copy.execute("select count(*), coalesce(sum(a + b), 0) from trades").fetchone()
        assert count % 2 == 0
        assert total == 0
        copy.close()


def test_not_an_sqlite_database_is_refused(manager: BackupManager, tmp_path: Path) -> None:
    """A file passed as SQLite that is not a database is refused naming the file."""
    fake = tmp_path / "fake.db"
    fake.write_text("hello, not sqlite")
    with pytest.raises(BackupError, match=r"fake\.db.*not an SQLite database"):
        manager.create_backup(sqlite=[fake])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": ["not", "a", "mapping"]}, "expected a mapping"),
        ({"data": {"../escape": 1}}, "'..'"),
        ({"data": {"/abs": 1}}, "absolute"),
        ({"data": {"": 1}}, "non-empty"),
        ({"data": {"when": datetime(2026, 1, 1)}}, "entry 'when': not JSON-serializable"),
        ({"data": {}}, "nothing to back up"),
        ({"files": ["/no/such/file.txt"]}, "file.txt.*no such file"),
        ({"data": {"a": 1}, "backup_type": "bad type!"}, "backup_type"),
        ({"data": {"a.json": 1}, "files": {"a.json.json": "/etc/hostname"}}, "same path"),
    ],
)
def test_bad_input_is_refused_naming_the_fault_and_writes_nothing(
    manager: BackupManager, backup_dir: Path, kwargs: dict[str, object], message: str
) -> None:
    """Bad input raises BackupError naming what is wrong, and leaves no backup behind."""
    with pytest.raises(BackupError, match=message):
        manager.create_backup(**kwargs)  # type: ignore[arg-type]
    assert manager.list_backups() == []
    assert not backup_dir.exists() or not any(backup_dir.iterdir())


def test_json_default_serializes_other_types(manager: BackupManager) -> None:
    """json_default turns values JSON does not know (datetime, Decimal) into JSON ones."""
    from decimal import Decimal

    backup_id = manager.create_backup(
        {"fills": {"price": Decimal("0.1"), "at": datetime(2026, 1, 1)}}, json_default=str
    )
    assert manager.load_backup(backup_id) == {"fills": {"price": "0.1", "at": "2026-01-01 00:00:00"}}


def test_large_state_is_written_in_slices_and_loads_back_equal(manager: BackupManager) -> None:
    """A big state (sliced serialization, pipelined compression) loads back equal."""
    state = {
        "trades": [{"id": n, "px": n * 0.5, "side": "buy" if n % 2 else "sell"} for n in range(30000)],
        "book": {f"k{n}": [n, str(n)] for n in range(5000)},
        "meta": {"small": True, 7: "int key"},
    }
    backup_id = manager.create_backup({"state": state})
    loaded = manager.load_backup(backup_id)["state"]
    expected = json.loads(json.dumps(state))
    assert loaded == expected
    assert manager.verify_backup(backup_id).ok


def test_load_backup_latest_and_unknown_ids(manager: BackupManager) -> None:
    """load_backup('latest') loads the newest; an unknown id raises BackupNotFoundError."""
    manager.create_backup({"n": 1})
    manager.create_backup({"n": 2})
    assert manager.load_backup("latest") == {"n": 2}
    with pytest.raises(BackupNotFoundError, match="no backup 'nope'"):
        manager.load_backup("nope")
    with pytest.raises(BackupNotFoundError):
        manager.load_backup("20260101T000000.000000Z_manual_abcd")


def test_load_backup_refuses_damaged_entries(manager: BackupManager, backup_dir: Path) -> None:
    """Loading a backup with a flipped byte raises BackupCorruptError naming the entry."""
    backup_id = manager.create_backup({"portfolio": STATE, "risk": {"max": 3}})
    flip_byte(entry_file(backup_dir, backup_id, "risk"), 12)
    with pytest.raises(BackupCorruptError) as caught:
        manager.load_backup(backup_id)
    assert caught.value.bad_entries == ("risk",)


def test_delete_backup_removes_it(manager: BackupManager, backup_dir: Path) -> None:
    """delete_backup removes the backup; deleting it again raises BackupNotFoundError."""
    keep = manager.create_backup({"n": 1})
    gone = manager.create_backup({"n": 2})
    manager.delete_backup(gone)
    assert [b.backup_id for b in manager.list_backups()] == [keep]
    assert sorted(os.listdir(backup_dir)) == [keep]
    with pytest.raises(BackupNotFoundError):
        manager.delete_backup(gone)


def test_damaged_and_incomplete_backups_are_listed_as_such(
    manager: BackupManager, backup_dir: Path
) -> None:
    """A backup with a missing entry, a truncated entry or no manifest is never listed as valid."""
    good = manager.create_backup({"n": 0})
    missing = manager.create_backup({"n": 1})
    truncated = manager.create_backup({"n": 2, "m": 3})
    no_manifest = manager.create_backup({"n": 4})
    entry_file(backup_dir, missing, "n").unlink()
    path = entry_file(backup_dir, truncated, "m")
    path.write_bytes(path.read_bytes()[:-3])
    (backup_dir / no_manifest / "manifest.json").unlink()
    (backup_dir / ".tmp-20260101T000000.000000Z_manual_abcd-999999999").mkdir()
    status = {b.backup_id: (b.status, b.problem or "") for b in manager.list_backups()}
    assert status[good] == ("valid", "")
    assert status[missing][0] == "damaged"
    assert "'n'" in status[missing][1]
    assert status[truncated][0] == "damaged"
    assert "'m'" in status[truncated][1]
    assert status[no_manifest][0] == "damaged"
    assert "manifest.json is missing" in status[no_manifest][1]
    assert status["20260101T000000.000000Z_manual_abcd"][0] == "incomplete"
    assert manager.latest_valid() is not None
    assert manager.latest_valid().backup_id == good  # type: ignore[union-attr]


def test_a_flipped_byte_shows_in_a_verified_listing(manager: BackupManager, backup_dir: Path) -> None:
    """list_backups(verify=True) reads every byte and lists a bit-flipped backup as damaged."""
    backup_id = manager.create_backup({"portfolio": STATE})
    flip_byte(entry_file(backup_dir, backup_id, "portfolio"), 20)
    (info,) = manager.list_backups(verify=True)
    assert info.status == "damaged"
    assert info.verified
    assert "portfolio" in (info.problem or "")


def test_latest_valid_is_the_freshness_probe(backup_dir: Path) -> None:
    """latest_valid() returns the newest valid backup of a type, with its age."""
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    times = iter([now - timedelta(hours=30), now - timedelta(hours=2)])
    manager = BackupManager(backup_dir, clock=lambda: next(times))
    manager.create_backup({"n": 1}, backup_type="scheduled")
    manager.create_backup({"n": 2}, backup_type="manual")
    latest = manager.latest_valid("scheduled")
    assert latest is not None
    assert latest.age_seconds(now) == pytest.approx(30 * 3600)
    assert manager.latest_valid().backup_type == "manual"  # type: ignore[union-attr]
    assert manager.latest_valid("weekly") is None


def test_a_failed_write_leaves_nothing(manager: BackupManager, backup_dir: Path) -> None:
    """An error part-way through (an unreadable second file) leaves no backup and no staging."""
    good = backup_dir.parent / "good.txt"
    good.write_text("ok")
    unreadable = backup_dir.parent / "locked.txt"
    unreadable.write_text("secret")

    class Boom(Exception):
        pass

    original = manager._write_entry

    def failing(staged, path, name, kind, source):  # type: ignore[no-untyped-def]
        if name == "locked.txt":
            raise Boom("disk on fire")
        return original(staged, path, name, kind, source)

    manager._write_entry = failing  # type: ignore[method-assign]
    with pytest.raises(Boom):
        manager.create_backup(files=[good, unreadable])
    assert manager.list_backups() == []
    assert os.listdir(backup_dir) == []


def test_a_deletion_interrupted_by_a_crash_is_finished_later(
    manager: BackupManager, backup_dir: Path
) -> None:
    """A backup renamed away for deletion by a process that died is not listed, and the next write removes it."""
    backup_id = manager.create_backup({"n": 1})
    keep = manager.create_backup({"n": 2})
    leftover = f".del-{backup_id}-999999999"
    (backup_dir / backup_id).rename(backup_dir / leftover)
    assert [b.backup_id for b in manager.list_backups()] == [keep]
    assert leftover in os.listdir(backup_dir)  # reading never writes
    newer = manager.create_backup({"n": 3})
    assert sorted(os.listdir(backup_dir)) == sorted([keep, newer])
