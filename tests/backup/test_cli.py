"""`otelres backup ...`: every subcommand, its output and its exit status."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otelres._cli import main
from otelres.backup import BackupManager, RecoveryManager

from ._damage import entry_file, flip_byte

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["backup", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _own_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in an empty directory: no ./config.toml of the checkout leaks in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OTELRES_CONFIG", raising=False)


@pytest.fixture(name="state_file")
def _state_file(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"portfolio": {"api_secret": "s3cr3t-value", "cash": 5}, "risk": [1]}))
    return path


def test_create_from_json_prints_the_id(
    capsys: pytest.CaptureFixture[str], backup_dir: Path, state_file: Path, tmp_path: Path
) -> None:
    """create --from FILE.json --file PATH prints the new id; its keys and the file become entries."""
    extra = tmp_path / "notes.txt"
    extra.write_text("hello")
    code, out, err = run(
        capsys, "create", "--path", str(backup_dir), "--from", str(state_file),
        "--file", str(extra), "--type", "daily",
    )
    assert code == 0, err
    backup_id = out.strip()
    info = BackupManager(backup_dir).get_backup(backup_id)
    assert info.backup_type == "daily"
    assert info.files == ("portfolio", "risk", "notes.txt")


def test_create_from_stdin(
    capsys: pytest.CaptureFixture[str], backup_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create --from - reads the JSON state from standard input."""
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"portfolio": {"cash": 7}}'))
    code, out, _ = run(capsys, "--path", str(backup_dir), "create", "--from", "-")
    assert code == 0
    assert BackupManager(backup_dir).load_backup(out.strip()) == {"portfolio": {"cash": 7}}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), (None, "No such file")],
)
def test_create_rejects_bad_input(
    capsys: pytest.CaptureFixture[str], backup_dir: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    """Bad --from input fails with exit 1 and an error naming the file; nothing is written."""
    source = tmp_path / "input.json"
    if content is not None:
        source.write_text(content)
    code, _, err = run(capsys, "create", "--path", str(backup_dir), "--from", str(source))
    assert code == 1
    assert message in err
    assert "input.json" in err
    assert BackupManager(backup_dir).list_backups() == []


def test_create_with_nothing_to_back_up_fails(capsys: pytest.CaptureFixture[str], backup_dir: Path) -> None:
    """create without inputs and without backup.files / backup.sqlite configured fails clearly."""
    code, _, err = run(capsys, "create", "--path", str(backup_dir))
    assert code == 1
    assert "nothing to back up" in err


def test_create_uses_configured_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With --config naming backup.files and backup_path, create with no inputs backs those files up there."""
    data = tmp_path / "bot.db.json"
    data.write_text("{}")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[backup]\nbackup_path = "{tmp_path / "cfg-backups"}"\nfiles = ["{data}"]\n')
    code, out, err = run(capsys, "create", "--config", str(cfg))
    assert code == 0, err
    assert BackupManager(tmp_path / "cfg-backups").get_backup(out.strip()).files == ("bot.db.json",)


def test_bad_config_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An invalid [backup] value exits 2 naming the key."""
    cfg = tmp_path / "config.toml"
    cfg.write_text("[backup]\nretention_days = -3\n")
    code, _, err = run(capsys, "list", "--config", str(cfg))
    assert code == 2
    assert "backup.retention_days" in err


def test_list_table_and_json_never_show_content(
    capsys: pytest.CaptureFixture[str], backup_dir: Path, state_file: Path
) -> None:
    """list shows ids, types, sizes, status and entry names; never entry content, in text or JSON."""
    run(capsys, "create", "--path", str(backup_dir), "--from", str(state_file))
    code, out, _ = run(capsys, "list", "--path", str(backup_dir))
    assert code == 0
    assert "valid" in out
    assert "portfolio, risk" in out
    assert "s3cr3t" not in out
    code, out, _ = run(capsys, "list", "--json", "--path", str(backup_dir))
    (listed,) = json.loads(out)
    assert listed["status"] == "valid"
    assert [e["name"] for e in listed["entries"]] == ["portfolio", "risk"]
    assert "s3cr3t" not in out


def test_list_marks_damaged_backups(
    capsys: pytest.CaptureFixture[str], backup_dir: Path
) -> None:
    """list --verify shows a bit-flipped backup as damaged with the entry named."""
    backup_id = BackupManager(backup_dir).create_backup({"portfolio": {"cash": 1}})
    flip_byte(entry_file(backup_dir, backup_id, "portfolio"), 12)
    code, out, _ = run(capsys, "list", "--verify", "--path", str(backup_dir))
    assert code == 0
    assert "damaged" in out
    assert "'portfolio'" in out


def test_show_prints_the_manifest_summary(capsys: pytest.CaptureFixture[str], backup_dir: Path) -> None:
    """show ID prints type, status, compression and each entry's kind and sizes."""
    backup_id = BackupManager(backup_dir).create_backup({"portfolio": {"cash": 1}})
    code, out, _ = run(capsys, "show", backup_id, "--path", str(backup_dir))
    assert code == 0
    assert backup_id in out
    assert "gzip" in out
    assert "portfolio" in out
    code, out, _ = run(capsys, "show", backup_id, "--json", "--path", str(backup_dir))
    assert json.loads(out)["backup_id"] == backup_id


@pytest.mark.parametrize("command", ["show", "verify", "restore", "delete"])
def test_unknown_id_exits_1(capsys: pytest.CaptureFixture[str], backup_dir: Path, command: str) -> None:
    """show / verify / restore / delete of an unknown id fail with exit 1 naming the id."""
    BackupManager(backup_dir).create_backup({"n": 1})
    code, _, err = run(capsys, command, "nope-id", "--path", str(backup_dir))
    assert code == 1
    assert "no backup 'nope-id'" in err


def test_verify_exit_status_follows_the_result(capsys: pytest.CaptureFixture[str], backup_dir: Path) -> None:
    """verify exits 0 for a good backup and 1 naming the entry for a damaged one; --all checks each."""
    manager = BackupManager(backup_dir)
    good = manager.create_backup({"a": 1})
    bad = manager.create_backup({"b": 1})
    code, out, _ = run(capsys, "verify", good, "--path", str(backup_dir))
    assert code == 0
    assert "ok" in out
    flip_byte(entry_file(backup_dir, bad, "b"), 12)
    code, out, _ = run(capsys, "verify", "--path", str(backup_dir))
    assert code == 1
    assert "entry 'b'" in out
    code, out, err = run(capsys, "verify", "--all", "--path", str(backup_dir))
    assert code == 1
    assert "1 of 2" in err


def test_restore_latest_and_dry_run(capsys: pytest.CaptureFixture[str], backup_dir: Path, tmp_path: Path) -> None:
    """restore --dry-run writes nothing; restore latest --to DIR writes the entries."""
    BackupManager(backup_dir).create_backup({"portfolio": {"cash": 9}})
    target = tmp_path / "out"
    code, out, _ = run(capsys, "restore", "--to", str(target), "--dry-run", "--path", str(backup_dir))
    assert code == 0
    assert "would restore" in out
    assert not target.exists()
    code, out, _ = run(capsys, "restore", "latest", "--to", str(target), "--path", str(backup_dir))
    assert code == 0
    assert json.loads((target / "portfolio.json").read_text()) == {"cash": 9}
    code, _, err = run(capsys, "restore", "--to", str(target), "--path", str(backup_dir))
    assert code == 1
    assert "not empty" in err
    code, _, _ = run(capsys, "restore", "--to", str(target), "--force", "--path", str(backup_dir))
    assert code == 0


def test_prune_and_delete(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """prune --dry-run lists what would go; prune deletes it; delete removes one backup."""
    cfg = tmp_path / "config.toml"
    cfg.write_text("[backup]\nretention_days = 0\nkeep_last = 1\n")
    backup_dir = tmp_path / "b"
    manager = BackupManager(backup_dir)
    first, second, third = (manager.create_backup({"n": n}) for n in range(3))
    common = ["--config", str(cfg), "--path", str(backup_dir)]
    code, out, _ = run(capsys, "prune", "--dry-run", *common)
    assert code == 0
    assert f"would delete {first}" in out
    assert len(manager.list_backups()) == 3
    code, out, _ = run(capsys, "prune", *common)
    assert code == 0
    assert [b.backup_id for b in manager.list_backups()] == [third]
    code, out, _ = run(capsys, "delete", third, *common)
    assert code == 0
    assert manager.list_backups() == []
    assert second not in out


def test_prune_with_empty_policy_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """prune with no retention rule exits 1 explaining the empty policy."""
    cfg = tmp_path / "config.toml"
    cfg.write_text("[backup]\nretention_days = 0\n")
    code, _, err = run(capsys, "prune", "--config", str(cfg), "--path", str(tmp_path / "b"))
    assert code == 1
    assert "empty retention policy" in err


def test_module_entry_point_runs_as_a_subprocess(tmp_path: Path, state_file: Path) -> None:
    """`python -m otelres backup create` then `list --json` work as separate processes."""
    env = {**os.environ, "OTELRES_CONFIG": ""}
    base = [sys.executable, "-m", "otelres", "backup", "--path", str(tmp_path / "b")]
    created = subprocess.run(
        [*base, "create", "--from", str(state_file)], capture_output=True, text=True, env=env,
        cwd=tmp_path, check=False, timeout=60,
    )
    assert created.returncode == 0, created.stderr
    listed = subprocess.run(
        [*base, "list", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path,
        check=False, timeout=60,
    )
    assert json.loads(listed.stdout)[0]["backup_id"] == created.stdout.strip()
    bad = subprocess.run(
        [*base, "restore", "missing"], capture_output=True, text=True, env=env, cwd=tmp_path,
        check=False, timeout=60,
    )
    assert bad.returncode == 1
    assert "no backup 'missing'" in bad.stderr


def test_listing_escapes_control_characters_from_a_tampered_manifest(
    capsys: pytest.CaptureFixture[str], backup_dir: Path
) -> None:
    """An entry name with a terminal escape sequence (forged manifest) is shown escaped, not sent raw."""
    from ._damage import rewrite_manifest

    backup_id = BackupManager(backup_dir).create_backup({"n": 1})

    def edit(body: dict) -> None:  # type: ignore[type-arg]
        body["entries"][0]["name"] = "\x1b[2Jevil"

    rewrite_manifest(backup_dir, backup_id, edit)
    code, out, _ = run(capsys, "list", "--path", str(backup_dir))
    assert code == 0
    assert "\x1b" not in out
    assert "\\x1b[2Jevil" in out
    assert "damaged" in out


# ------------------------------------------------- acceptance review: what a user tried
def test_make_backup_and_restore_with_the_shipped_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With the repository's config.toml, `create` (make backup) copies config.toml and `restore` (make restore) brings it back; a second restore refuses to clobber it."""
    shipped = (ROOT / "config.toml").read_bytes()
    (tmp_path / "config.toml").write_bytes(shipped)
    code, out, err = run(capsys, "create", "--type", "manual")
    assert code == 0, err
    backup_id = out.strip()
    assert BackupManager(tmp_path / "backups").get_backup(backup_id).files == ("config.toml",)
    code, _, err = run(capsys, "restore", "latest")
    assert code == 0, err
    restored = tmp_path / "restored" / backup_id / "config.toml"
    assert restored.read_bytes() == shipped
    restored.write_text("edited after the restore")
    code, _, err = run(capsys, "restore", backup_id)
    assert code == 1
    assert "exists and is not empty" in err
    assert restored.read_text() == "edited after the restore"


def test_create_refuses_an_unreadable_file_naming_it(tmp_path: Path) -> None:
    """An unreadable --file or --from exits 1 naming it and writes nothing (run without root's file-permission override)."""
    secret = tmp_path / "keys.json"
    secret.write_text('{"api_key": "k"}')
    secret.chmod(0)
    cmd = [sys.executable, "-m", "otelres", "backup", "--path", str(tmp_path / "b"), "create"]
    for args, named in ((["--file", str(secret)], "keys.json"), (["--from", str(secret)], "keys.json")):
        done = _unprivileged([*cmd, *args], tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Permission denied" in done.stderr
        assert named in done.stderr
    assert not (tmp_path / "b").exists() or os.listdir(tmp_path / "b") == []


def test_verify_names_an_unreadable_entry(tmp_path: Path) -> None:
    """verify of a backup with an entry the user cannot read exits 1 naming the entry, without a traceback."""
    backup_dir = tmp_path / "b"
    backup_id = BackupManager(backup_dir).create_backup({"portfolio": {"cash": 1}, "risk": [1]})
    entry_file(backup_dir, backup_id, "risk").chmod(0)
    done = _unprivileged(
        [sys.executable, "-m", "otelres", "backup", "--path", str(backup_dir), "verify", backup_id],
        tmp_path,
    )
    assert done.returncode == 1
    assert "entry 'risk'" in done.stdout
    assert "cannot be read: Permission denied" in done.stdout
    assert "Traceback" not in done.stderr


def _unprivileged(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run *argv*; as root, without the capabilities that let root read any file."""
    if os.geteuid() == 0:
        from tests.conftest import require_binary

        argv = [require_binary("setpriv"), "--bounding-set=-dac_override,-dac_read_search", *argv]
    env = {**os.environ, "OTELRES_CONFIG": ""}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=60)


def test_create_copies_a_wal_database_from_a_read_only_directory(tmp_path: Path) -> None:
    """A WAL-mode SQLite database whose directory the backup user cannot write (no -shm possible) is still backed up whole."""
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "orders.db")
    db.execute("pragma journal_mode=wal")
    db.execute("create table orders (id integer primary key, px real)")
    db.executemany("insert into orders (px) values (?)", [(100.0 + n,) for n in range(50)])
    db.commit()
    db.close()
    data.chmod(0o555)
    try:
        done = _unprivileged(
            [sys.executable, "-m", "otelres", "backup", "--path", str(tmp_path / "b"),
             "create", "--sqlite", str(data / "orders.db")],
            tmp_path,
        )
    finally:
        data.chmod(0o755)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    RecoveryManager(BackupManager(tmp_path / "b")).restore(done.stdout.strip(), out)
    copy = sqlite3.connect(out / "orders.db")
    assert copy.execute("select count(*) from orders").fetchone() == (50,)
    copy.close()
