"""RecoveryManager: verification, signing, and atomic, safe restores."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from otelres.backup import (
    BackupCorruptError,
    BackupError,
    BackupManager,
    BackupNotFoundError,
    RecoveryManager,
    RestoreRefusedError,
)

from ._damage import entry_file, flip_byte, rewrite_manifest

STATE = {
    "portfolio": {"cash": 1000, "positions": {"BTC": 0.5}},
    "orders": [{"id": "o1", "px": 100.5}] * 50,
    "risk": {"max_drawdown": 0.2},
}


@pytest.fixture(name="recovery")
def _recovery(manager: BackupManager) -> RecoveryManager:
    return RecoveryManager(manager)


@pytest.fixture(name="full_backup")
def _full_backup(manager: BackupManager, tmp_path: Path) -> str:
    blob = tmp_path / "model.bin"
    blob.write_bytes(os.urandom(3000))
    return manager.create_backup(STATE, files=[blob])


def test_verify_passes_an_intact_backup(recovery: RecoveryManager, full_backup: str) -> None:
    """verify() of an untouched backup is ok and checked every entry."""
    report = recovery.verify(full_backup)
    assert report.ok
    assert report.entries_checked == 4
    assert report.problems == ()


@pytest.mark.parametrize("name", ["portfolio", "orders", "risk", "model.bin"])
@pytest.mark.parametrize("where", [0, 9, -5, -1])
def test_flipping_one_byte_fails_verify_naming_that_entry(
    recovery: RecoveryManager, full_backup: str, backup_dir: Path, name: str, where: int
) -> None:
    """One flipped byte anywhere in an entry (header, data, CRC, size) fails verify naming only that entry."""
    path = entry_file(backup_dir, full_backup, name)
    flip_byte(path, where if where >= 0 else path.stat().st_size + where)
    report = recovery.verify(full_backup)
    assert not report.ok
    assert report.bad_entries == (name,)
    assert name in str(report)


def test_verify_names_each_bad_entry(
    recovery: RecoveryManager, full_backup: str, backup_dir: Path
) -> None:
    """With two entries damaged, verify names both and only them."""
    flip_byte(entry_file(backup_dir, full_backup, "orders"), 15)
    entry_file(backup_dir, full_backup, "risk").unlink()
    report = recovery.verify(full_backup)
    assert sorted(report.bad_entries) == ["orders", "risk"]


def test_a_damaged_manifest_fails_verify(
    recovery: RecoveryManager, full_backup: str, backup_dir: Path
) -> None:
    """A changed digit in the manifest breaks its checksum and fails verify as a manifest problem."""
    path = backup_dir / full_backup / "manifest.json"
    path.write_text(path.read_text().replace('"format_version": 1', '"format_version": 1 '))
    assert recovery.verify(full_backup).ok  # whitespace does not change the content
    text = path.read_text()
    path.write_text(text.replace('"stored_size": ', '"stored_size": 1', 1))
    report = recovery.verify(full_backup)
    assert not report.ok
    assert report.problems[0][0] is None
    assert "checksum" in report.problems[0][1]


def test_verify_unknown_id_raises(recovery: RecoveryManager) -> None:
    """verify() of an id that does not exist raises BackupNotFoundError."""
    with pytest.raises(BackupNotFoundError):
        recovery.verify("20260101T000000.000000Z_manual_0000")


def test_verify_all_reports_every_backup(
    recovery: RecoveryManager, manager: BackupManager, backup_dir: Path
) -> None:
    """verify_all() returns one report per backup, newest first, with the damaged one failing."""
    older = manager.create_backup({"n": 1})
    newer = manager.create_backup({"n": 2})
    flip_byte(entry_file(backup_dir, older, "n"), 3)
    reports = recovery.verify_all()
    assert [(r.backup_id, r.ok) for r in reports] == [(newer, True), (older, False)]


# ----------------------------------------------------------------------------- signing
KEY_ENV = "OTELRES_TEST_BACKUP_KEY"


@pytest.fixture(name="signed")
def _signed(backup_dir: Path, monkeypatch: pytest.MonkeyPatch) -> BackupManager:
    monkeypatch.setenv(KEY_ENV, "correct horse battery staple")
    return BackupManager(backup_dir, hmac_key_env=KEY_ENV)


def test_signed_backups_verify_and_say_so(signed: BackupManager) -> None:
    """With a key in the environment, backups are signed and verify with it."""
    backup_id = signed.create_backup(STATE)
    report = signed.verify_backup(backup_id)
    assert report.ok
    assert report.signed
    assert signed.list_backups()[0].signed


def test_hmac_detects_tampering_that_recomputes_checksums(
    signed: BackupManager, backup_dir: Path
) -> None:
    """An attacker who rewrites an entry and recomputes every SHA-256 is still caught by the HMAC."""
    backup_id = signed.create_backup(STATE)
    path = entry_file(backup_dir, backup_id, "risk")
    evil = json.dumps({"max_drawdown": 1.0}).encode()
    stored = gzip.compress(evil, mtime=0)
    path.write_bytes(stored)

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        for entry in body["entries"]:
            if entry["name"] == "risk":
                entry.update(
                    size=len(evil),
                    stored_size=len(stored),
                    sha256=hashlib.sha256(stored).hexdigest(),
                    content_sha256=hashlib.sha256(evil).hexdigest(),
                )

    rewrite_manifest(backup_dir, backup_id, edit)
    report = signed.verify_backup(backup_id)
    assert not report.ok
    assert "not signed" in report.problems[0][1]
    rewrite_manifest(backup_dir, backup_id, edit, key=b"a guess at the key")
    report = signed.verify_backup(backup_id)
    assert not report.ok
    assert "HMAC does not match" in report.problems[0][1]
    assert not signed.list_backups()[0].valid
    # Without signing, the same forgery would pass: that is what the HMAC is for.
    assert BackupManager(backup_dir, hmac_key_env="").verify_backup(backup_id).ok


def test_signing_key_never_appears_in_listings(signed: BackupManager) -> None:
    """The key and the signature are absent from BackupInfo.to_dict() and its repr."""
    signed.create_backup(STATE)
    info = signed.list_backups()[0]
    shown = json.dumps(info.to_dict()) + repr(info)
    assert "correct horse" not in shown
    assert "hmac-sha256" not in shown
    assert "max_drawdown" not in shown  # entry content is never listed


def test_missing_key_variable_refuses_to_write_unsigned(
    backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With hmac_key_env set but the variable missing, create refuses naming the variable."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    manager = BackupManager(backup_dir, hmac_key_env=KEY_ENV)
    with pytest.raises(BackupError, match=KEY_ENV):
        manager.create_backup(STATE)
    assert manager.list_backups() == []


# ----------------------------------------------------------------------------- restore
def test_restore_writes_every_entry(
    recovery: RecoveryManager, full_backup: str, tmp_path: Path
) -> None:
    """restore() writes JSON entries as <name>.json and files under their names."""
    target = tmp_path / "restored"
    result = recovery.restore(full_backup, target)
    assert result.backup_id == full_backup
    assert sorted(p.name for p in target.iterdir()) == [
        "model.bin", "orders.json", "portfolio.json", "risk.json",
    ]
    for name, value in STATE.items():
        assert json.loads((target / f"{name}.json").read_text()) == value
    assert (target / "model.bin").read_bytes() == (tmp_path / "model.bin").read_bytes()


def test_restore_latest_skips_damaged_backups_with_a_warning(
    recovery: RecoveryManager, manager: BackupManager, backup_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """restore('latest') restores the newest valid backup, skipping damaged newer ones with a warning."""
    good = manager.create_backup({"n": 1})
    bad = manager.create_backup({"n": 2})
    flip_byte(entry_file(backup_dir, bad, "n"), 11)
    with caplog.at_level(logging.WARNING, logger="otelres.backup"):
        result = recovery.restore("latest", tmp_path / "out")
    assert result.backup_id == good
    assert result.skipped == (bad,)
    assert json.loads((tmp_path / "out" / "n.json").read_text()) == 1
    assert any(bad in record.getMessage() for record in caplog.records)


def test_restore_latest_with_nothing_valid_raises(
    recovery: RecoveryManager, manager: BackupManager, backup_dir: Path, tmp_path: Path
) -> None:
    """restore('latest') with only damaged backups raises BackupNotFoundError and writes nothing."""
    bad = manager.create_backup({"n": 2})
    flip_byte(entry_file(backup_dir, bad, "n"), 11)
    with pytest.raises(BackupNotFoundError, match="1 damaged"):
        recovery.restore("latest", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_restore_of_a_named_damaged_backup_raises_naming_the_entry(
    recovery: RecoveryManager, full_backup: str, backup_dir: Path, tmp_path: Path
) -> None:
    """Restoring a damaged backup by id raises BackupCorruptError naming the entry; the target is not created."""
    flip_byte(entry_file(backup_dir, full_backup, "orders"), 30)
    with pytest.raises(BackupCorruptError) as caught:
        recovery.restore(full_backup, tmp_path / "out")
    assert caught.value.bad_entries == ("orders",)
    assert not (tmp_path / "out").exists()


def test_dry_run_checks_everything_and_writes_nothing(
    recovery: RecoveryManager, full_backup: str, backup_dir: Path, tmp_path: Path
) -> None:
    """A dry run reports what would be restored and creates nothing; on damage it fails like a restore."""
    result = recovery.restore(full_backup, tmp_path / "out", dry_run=True)
    assert result.dry_run
    assert {e.path for e in result.entries} == {
        "portfolio.json", "orders.json", "risk.json", "model.bin",
    }
    assert not (tmp_path / "out").exists()
    flip_byte(entry_file(backup_dir, full_backup, "risk"), 10)
    with pytest.raises(BackupCorruptError):
        recovery.restore(full_backup, tmp_path / "out", dry_run=True)


def test_restore_is_atomic_when_an_entry_fails_midway(
    recovery: RecoveryManager, manager: BackupManager, full_backup: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If reading the third entry fails during the restore, the existing target is left exactly as it was."""
    target = tmp_path / "live"
    target.mkdir()
    (target / "portfolio.json").write_text('{"cash": "previous"}')
    original = manager.read_entry
    calls = []

    def failing(backup_id, record):  # type: ignore[no-untyped-def]
        calls.append(record.name)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return original(backup_id, record)

    monkeypatch.setattr(manager, "read_entry", failing)
    with pytest.raises(BackupError, match="the target was not changed"):
        recovery.restore(full_backup, target, overwrite=True)
    assert sorted(os.listdir(target)) == ["portfolio.json"]
    assert (target / "portfolio.json").read_text() == '{"cash": "previous"}'
    assert sorted(os.listdir(tmp_path)) == ["backups", "live", "model.bin"]


def test_restore_refuses_a_non_empty_target_unless_overwrite(
    recovery: RecoveryManager, full_backup: str, tmp_path: Path
) -> None:
    """A non-empty target is refused; with overwrite=True it is replaced whole."""
    target = tmp_path / "live"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with pytest.raises(RestoreRefusedError, match="not empty"):
        recovery.restore(full_backup, target)
    recovery.restore(full_backup, target, overwrite=True)
    assert not (target / "stale.txt").exists()
    assert (target / "risk.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["backups", "live", "model.bin"]  # nothing left aside


@pytest.mark.parametrize(
    "evil_name", ["../escaped", "/tmp/otelres-absolute-escape", "a/../../escaped", "sub/./x"]
)
def test_restore_refuses_path_traversal(
    manager: BackupManager, backup_dir: Path, tmp_path: Path, evil_name: str
) -> None:
    """An entry whose (re-sealed) manifest name is absolute or climbs out with '..' is refused; nothing is written."""
    backup_id = manager.create_backup({"innocent": 1})

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        body["entries"][0]["name"] = evil_name

    rewrite_manifest(backup_dir, backup_id, edit)
    recovery = RecoveryManager(manager)
    assert not recovery.verify(backup_id).ok
    with pytest.raises((RestoreRefusedError, BackupCorruptError), match=r"refused|unsafe"):
        recovery.restore(backup_id, tmp_path / "out" / "deep")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escaped.json").exists()
    assert not Path("/tmp/otelres-absolute-escape.json").exists()


def test_restore_refuses_a_stored_path_outside_the_backup(
    manager: BackupManager, backup_dir: Path, tmp_path: Path
) -> None:
    """A manifest whose stored path points outside the backup directory is refused."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    backup_id = manager.create_backup({"innocent": 1})

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        body["entries"][0]["path"] = "../../secret.txt"

    rewrite_manifest(backup_dir, backup_id, edit)
    report = RecoveryManager(manager).verify(backup_id)
    assert report.bad_entries == ("innocent",)
    assert "not a plain entry name" in report.problems[0][1]


def test_restore_refuses_symlinked_entries(
    manager: BackupManager, backup_dir: Path, tmp_path: Path
) -> None:
    """A stored entry replaced by a symbolic link (to a file elsewhere) is refused, not followed."""
    backup_id = manager.create_backup({"innocent": 1})
    outside = tmp_path / "outside.gz"
    outside.write_bytes(gzip.compress(b"1", mtime=0))
    stored = entry_file(backup_dir, backup_id, "innocent")
    stored.unlink()
    stored.symlink_to(outside)
    recovery = RecoveryManager(manager)
    report = recovery.verify(backup_id)
    assert report.bad_entries == ("innocent",)
    assert "symbolic link" in report.problems[0][1]
    with pytest.raises(BackupCorruptError, match="symbolic link"):
        recovery.restore(backup_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_restore_refuses_a_symlinked_target(
    recovery: RecoveryManager, full_backup: str, tmp_path: Path
) -> None:
    """A restore target that is a symbolic link is refused."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(RestoreRefusedError, match="symbolic link"):
        recovery.restore(full_backup, link)
    assert list(real.iterdir()) == []


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_restore_refuses_entries_that_decompress_past_the_limit(
    backup_dir: Path, tmp_path: Path, compression: str
) -> None:
    """A small stored entry that expands past max_restore_bytes (a zip bomb) is refused before it is written."""
    import zstandard

    writer = BackupManager(backup_dir, compression=compression, compression_level=9)
    backup_id = writer.create_backup({"bomb": "x"})
    bomb = b"[" + b" " * (20 << 20) + b"]"
    if compression == "gzip":
        stored = gzip.compress(bomb, compresslevel=9, mtime=0)
    else:
        stored = zstandard.ZstdCompressor(level=19).compress(bomb)
    assert len(stored) < 100_000
    entry_file(backup_dir, backup_id, "bomb").write_bytes(stored)

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        # The forger claims a small size; the real expansion must still be stopped.
        body["entries"][0].update(
            stored_size=len(stored),
            sha256=hashlib.sha256(stored).hexdigest(),
            content_sha256=hashlib.sha256(bomb).hexdigest(),
            size=10,
        )

    rewrite_manifest(backup_dir, backup_id, edit)
    reader = BackupManager(backup_dir, max_restore_bytes=1 << 20)
    with pytest.raises(BackupCorruptError, match="decompresses past"):
        RecoveryManager(reader).restore(backup_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    report = reader.verify_backup(backup_id)
    assert report.bad_entries == ("bomb",)


def test_recovery_manager_takes_manager_arguments(backup_dir: Path, tmp_path: Path) -> None:
    """RecoveryManager(backup_path) builds its own BackupManager over that directory."""
    backup_id = BackupManager(backup_dir).create_backup({"n": 5})
    recovery = RecoveryManager(backup_path=backup_dir)
    assert recovery.load() == {"n": 5}
    assert recovery.latest_valid().backup_id == backup_id  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        RecoveryManager(BackupManager(backup_dir), backup_path=backup_dir)


def test_reading_zstd_without_the_package_says_what_to_install(
    backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zstd backup read where zstandard is missing raises CompressionUnavailableError, not 'damaged'."""
    from otelres.backup import CompressionUnavailableError

    backup_id = BackupManager(backup_dir, compression="zstd").create_backup({"n": 1})
    monkeypatch.setitem(sys.modules, "zstandard", None)
    reader = BackupManager(backup_dir)  # gzip configured: reading zstd needs the package
    with pytest.raises(CompressionUnavailableError, match=r"otelres\[zstd\]"):
        reader.verify_backup(backup_id)
    assert reader.list_backups()[0].valid


# ------------------------------------------------- acceptance review: what a user tried
@pytest.mark.parametrize("where", ["inside", "root", "parent"])
def test_restore_never_replaces_the_backups_themselves(
    manager: BackupManager, backup_dir: Path, where: str
) -> None:
    """A forced restore into the backup directory, a backup in it, or a directory holding it is refused; every backup survives."""
    backup_id = manager.create_backup(STATE)
    target = {"inside": backup_dir / backup_id, "root": backup_dir, "parent": backup_dir.parent}[where]
    for dry_run in (True, False):
        with pytest.raises(RestoreRefusedError, match="overlaps the backup directory"):
            RecoveryManager(manager).restore(backup_id, target, overwrite=True, dry_run=dry_run)
    assert manager.verify_backup(backup_id).ok


def test_restore_never_replaces_the_current_directory(
    manager: BackupManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forced restore into the working directory or one of its parents is refused, leaving it as it was."""
    backup_id = manager.create_backup(STATE)
    work = tmp_path / "bot" / "run"
    work.mkdir(parents=True)
    (work / "orders.db").write_text("live")
    monkeypatch.chdir(work)
    for target in (Path("."), Path(".."), work.parent):
        with pytest.raises(RestoreRefusedError, match="contains the current directory"):
            RecoveryManager(manager).restore(backup_id, target, overwrite=True)
    assert (work / "orders.db").read_text() == "live"


def test_a_lying_recorded_size_stops_decompression_early(
    manager: BackupManager, backup_dir: Path, tmp_path: Path
) -> None:
    """An entry whose manifest claims 10 bytes is refused once it inflates past 10 bytes, even under the default 1 GiB limit."""
    backup_id = manager.create_backup({"bomb": "x"})
    bomb = b" " * (64 << 20)
    stored = gzip.compress(bomb, compresslevel=9, mtime=0)
    entry_file(backup_dir, backup_id, "bomb").write_bytes(stored)

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        body["entries"][0].update(
            stored_size=len(stored), sha256=hashlib.sha256(stored).hexdigest(), size=10
        )

    rewrite_manifest(backup_dir, backup_id, edit)
    report = manager.verify_backup(backup_id)
    assert report.problems == (("bomb", "decompresses past its recorded size of 10 bytes"),)
    with pytest.raises(BackupCorruptError, match="recorded size"):
        RecoveryManager(manager).restore(backup_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_entry_that_cannot_be_read_is_named_not_raised(
    manager: BackupManager, backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error while reading an entry back makes verify report that entry (and restore refuse), instead of crashing."""
    import errno
    import io

    from otelres.backup import LocalDirectoryStorage

    backup_id = manager.create_backup(STATE)
    original = LocalDirectoryStorage.open_entry
    bad_path = entry_file(backup_dir, backup_id, "orders").name

    class FailingDisk(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise OSError(errno.EIO, "Input/output error")

    def open_entry(self: LocalDirectoryStorage, bid: str, path: str) -> object:
        handle = original(self, bid, path)
        if path == bad_path:
            handle.close()
            return io.BufferedReader(FailingDisk())
        return handle

    monkeypatch.setattr(LocalDirectoryStorage, "open_entry", open_entry)
    report = manager.verify_backup(backup_id)
    assert report.bad_entries == ("orders",)
    assert "cannot be read: Input/output error" in report.problems[0][1]
    with pytest.raises(BackupCorruptError, match="orders"):
        manager.load_backup(backup_id)


def test_load_backup_refuses_what_restore_refuses(manager: BackupManager, backup_dir: Path) -> None:
    """load_backup of a hand-crafted manifest naming '../../etc/passwd' raises BackupCorruptError naming it."""
    backup_id = manager.create_backup({"portfolio": {"cash": 1}})

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        body["entries"][0]["name"] = "../../etc/passwd"

    rewrite_manifest(backup_dir, backup_id, edit)
    with pytest.raises(BackupCorruptError) as caught:
        manager.load_backup(backup_id)
    assert caught.value.bad_entries == ("../../etc/passwd",)


def test_load_latest_skips_a_backup_whose_file_entry_is_damaged(
    manager: BackupManager, backup_dir: Path, tmp_path: Path
) -> None:
    """load_backup("latest") passes over a backup with a bit-rotten file entry, exactly as restore("latest") does."""
    blob = tmp_path / "model.bin"
    blob.write_bytes(os.urandom(3000))
    good = manager.create_backup({"n": 1})
    bad = manager.create_backup({"n": 2}, files=[blob])
    flip_byte(entry_file(backup_dir, bad, "model.bin"), 100)
    assert manager.load_backup("latest") == {"n": 1}
    assert RecoveryManager(manager).restore("latest", tmp_path / "out").backup_id == good


@pytest.mark.parametrize("value", ["", b""])
def test_an_empty_signing_key_is_refused(backup_dir: Path, value: str | bytes) -> None:
    """hmac_key="" would sign with nothing; it is refused up front."""
    with pytest.raises(BackupError, match="hmac_key is empty"):
        BackupManager(backup_dir, hmac_key=value)


def test_an_empty_key_variable_is_named_as_empty(
    backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key variable that is set but empty refuses to write, saying it is empty."""
    monkeypatch.setenv("OTELRES_TEST_EMPTY_KEY", "")
    manager = BackupManager(backup_dir, hmac_key_env="OTELRES_TEST_EMPTY_KEY")
    with pytest.raises(BackupError, match=r"\$OTELRES_TEST_EMPTY_KEY, which is empty"):
        manager.create_backup({"n": 1})
    assert not backup_dir.exists() or os.listdir(backup_dir) == []


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda b: b["entries"][0].update(size=float("inf")), "size is not a byte count"),
        (lambda b: b["entries"][0].update(size=-1), "size is not a byte count"),
        (lambda b: b["entries"][0].update(name=5), "name is not a string"),
        (lambda b: b["entries"][0].update(compression="lz4"), "unknown compression 'lz4'"),
        (lambda b: b.update(entries={"n": 1}), "entries is not a list"),
        (lambda b: b.update(backup_type="daily"), "contradicts"),
        (lambda b: b.update(created="2020-01-01T00:00:00.000000Z"), "contradicts"),
        (lambda b: b.update(format_version=True), "format version True"),
    ],
)
def test_a_hand_edited_manifest_is_listed_as_damaged_saying_why(
    manager: BackupManager, backup_dir: Path, edit: object, said: str
) -> None:
    """A resealed manifest with odd field values is damaged in the listing (which never crashes), and verify says why."""
    good = manager.create_backup({"n": 1})
    edited = manager.create_backup({"n": 2})
    rewrite_manifest(backup_dir, edited, edit)
    listed = {b.backup_id: b for b in manager.list_backups()}
    assert listed[good].valid
    assert listed[edited].status == "damaged"
    assert said in (listed[edited].problem or "")
    assert not manager.verify_backup(edited).ok


def test_a_manifest_nested_too_deeply_is_damaged_not_a_crash(
    manager: BackupManager, backup_dir: Path
) -> None:
    """A manifest.json of 100000 nested brackets lists as damaged instead of raising RecursionError."""
    backup_id = manager.create_backup({"n": 1})
    (backup_dir / backup_id / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    (info,) = manager.list_backups()
    assert info.status == "damaged"
    assert "nested too deeply" in (info.problem or "")


def test_restore_and_load_read_each_entry_once(
    manager: BackupManager, full_backup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore checks each entry while writing it and load_backup while decoding it: one read of each stored entry, not two."""
    from collections import Counter

    from otelres.backup import LocalDirectoryStorage

    opened: Counter[str] = Counter()
    original = LocalDirectoryStorage.open_entry

    def counting(self: LocalDirectoryStorage, backup_id: str, path: str) -> object:
        opened[path] += 1
        return original(self, backup_id, path)

    monkeypatch.setattr(LocalDirectoryStorage, "open_entry", counting)
    entries = manager.get_backup(full_backup).entries
    RecoveryManager(manager).restore(full_backup, tmp_path / "out")
    assert {opened[e.path] for e in entries} == {1}
    opened.clear()
    manager.load_backup(full_backup)
    assert {opened[e.path] for e in entries} == {1}


def test_a_restore_cleans_up_after_one_that_was_killed(
    manager: BackupManager, tmp_path: Path
) -> None:
    """Staging left beside the target by a restore whose process died is removed by the next restore there; a live one's is left alone."""
    backup_id = manager.create_backup(STATE)
    dead = tmp_path / ".out.restore-999999999-abcd1234"
    live = tmp_path / f".out.restore-{os.getpid()}-abcd1234"
    for leftover in (dead, live):
        leftover.mkdir()
        (leftover / "portfolio.json").write_text("{half")
    RecoveryManager(manager).restore(backup_id, tmp_path / "out")
    assert not dead.exists()
    assert live.exists()
    assert sorted(os.listdir(tmp_path / "out")) == ["orders.json", "portfolio.json", "risk.json"]
