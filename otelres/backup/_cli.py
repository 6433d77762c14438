"""``otelres backup ...``: create, list, show, verify, restore, prune and delete backups.

Exit status: 0 on success, 1 when an operation fails (unknown id, damaged backup, bad
input, a refused restore), 2 for usage and configuration errors. Listings show entry
names and sizes, never entry content or signing keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otelres.backup._manager import BackupManager

__all__ = ["add_parser"]

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Failed(Exception):
    """An operation failed; the message is printed as ``error: ...``."""


def add_parser(subparsers: Any) -> None:
    """Add ``otelres backup`` and its subcommands."""
    from otelres._cli import Parser

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS,
        help="configuration file (default: $OTELRES_CONFIG, else ./config.toml)",
    )
    common.add_argument(
        "--path", metavar="DIR", default=argparse.SUPPRESS,
        help="backup directory (default: backup.backup_path)",
    )
    backup = subparsers.add_parser(
        "backup", help="create, verify and restore backups", parents=[common],
        description="Create, list, verify, restore and prune backups (see docs/BACKUP_RECOVERY.md).",
    )
    sub = backup.add_subparsers(dest="backup_command", required=True, parser_class=Parser)

    create = sub.add_parser(
        "create", parents=[common], help="write a new backup",
        description=(
            "Back up a JSON state (--from: its top-level keys become entries), files copied "
            "as they are, and SQLite databases (copied consistently while in use). Without "
            "inputs, backs up backup.files and backup.sqlite from the configuration. "
            "Prints the new backup id."
        ),
    )
    create.add_argument(
        "--type", default="manual", dest="backup_type", help="backup type (default: manual)"
    )
    create.add_argument(
        "--from", dest="from_json", metavar="FILE.json", help="JSON object to back up; - reads stdin"
    )
    create.add_argument(
        "--file", action="append", default=[], metavar="PATH", help="a file to copy (repeatable)"
    )
    create.add_argument(
        "--sqlite", action="append", default=[], metavar="PATH",
        help="an SQLite database (repeatable)",
    )
    create.set_defaults(func=_run(_create))

    listing = sub.add_parser("list", parents=[common], help="list backups, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--type", dest="backup_type", help="only backups of this type")
    listing.add_argument("--verify", action="store_true", help="read back and check every entry")
    listing.set_defaults(func=_run(_list))

    show = sub.add_parser("show", parents=[common], help="show one backup's manifest")
    show.add_argument("backup_id", metavar="ID", help="backup id (see `otelres backup list`)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_run(_show))

    verify = sub.add_parser(
        "verify", parents=[common], help="check every checksum of a backup",
        description="Check a backup (default: the newest) or --all; exit 1 if any is damaged.",
    )
    verify.add_argument("backup_id", metavar="ID", nargs="?", help="backup id (default: the newest)")
    verify.add_argument("--all", action="store_true", help="verify every backup")
    verify.set_defaults(func=_run(_verify))

    restore = sub.add_parser(
        "restore", parents=[common], help="restore a backup into a directory",
        description=(
            "Restore ID (default: latest, the newest valid backup; damaged ones are skipped) "
            "into --to DIR (default: ./restored/<id>). The directory appears complete or not "
            "at all."
        ),
    )
    restore.add_argument(
        "backup_id", metavar="ID", nargs="?", default="latest", help="backup id or latest (default)"
    )
    restore.add_argument("--to", dest="target", metavar="DIR", help="target directory")
    restore.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    restore.add_argument("--force", action="store_true", help="replace a non-empty target directory")
    restore.set_defaults(func=_run(_restore))

    prune = sub.add_parser(
        "prune", parents=[common], help="delete backups the retention policy does not keep",
    )
    prune.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    prune.set_defaults(func=_run(_prune))

    delete = sub.add_parser("delete", parents=[common], help="delete one backup")
    delete.add_argument("backup_id", metavar="ID", help="backup id (see `otelres backup list`)")
    delete.set_defaults(func=_run(_delete))


def _run(command: Callable[[argparse.Namespace, BackupManager], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap *command*: load the configuration, build the manager, turn failures into exit status."""
    def run(args: argparse.Namespace) -> int:
        from otelres.backup._errors import BackupError
        from otelres.backup._manager import BackupManager
        from otelres.config import ConfigError, load_config

        # The command prints its own warnings; without this, logging's last-resort handler
        # would repeat the library's warning log lines on stderr.
        _quiet_library_logs()
        try:
            config = load_config(getattr(args, "config", None))
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        try:
            manager = BackupManager(getattr(args, "path", None), settings=config.backup)
            return command(args, manager)
        except (BackupError, _Failed) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
            return EXIT_FAILED

    return run


def _quiet_library_logs() -> None:
    import logging

    logger = logging.getLogger("otelres.backup")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


# ---------------------------------------------------------------------------- commands
def _create(args: argparse.Namespace, manager: BackupManager) -> int:
    """``create``: back up --from / --file / --sqlite, or the configured files; print the id."""
    data = _read_state(args.from_json) if args.from_json else None
    files = args.file or None
    sqlite = args.sqlite or None
    if data is None and files is None and sqlite is None:
        files = list(manager.settings.files) or None
        sqlite = list(manager.settings.sqlite) or None
    backup_id = manager.create_backup(data, args.backup_type, files=files, sqlite=sqlite)
    info = manager.get_backup(backup_id)
    print(
        f"created {backup_id} in {manager.location}: {_count(len(info.files), 'entry', 'entries')}, "
        f"{_size(info.size_bytes)}",
        file=sys.stderr,
    )
    print(backup_id)
    return 0


def _read_state(source: str) -> dict[str, Any]:
    """The JSON object of *source* (a path or ``-`` for stdin); its keys become entries."""
    label = "stdin" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise _Failed(f"--from {label}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise _Failed(f"--from {label}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _Failed(f"--from {label}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _Failed(
            f"--from {label}: expected a JSON object whose keys name the entries, "
            f"got {type(data).__name__}"
        )
    return data


def _list(args: argparse.Namespace, manager: BackupManager) -> int:
    """``list``: a table (or JSON) of the backups, newest first, with status and entry names."""
    backups = manager.list_backups(args.backup_type, verify=args.verify)
    if args.json:
        print(json.dumps([b.to_dict() for b in backups], indent=2))
        return 0
    if not backups:
        print(f"no backups in {manager.location}")
        return 0
    print(f"{'ID':<38} {'TYPE':<10} {'CREATED (UTC)':<20} {'SIZE':>9} {'STATUS':<10} ENTRIES")
    for info in backups:
        created = info.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        entries = ", ".join(_shown(f) for f in info.files) if info.files else "-"
        print(
            f"{info.backup_id:<38} {info.backup_type:<10} {created:<20} "
            f"{_size(info.size_bytes):>9} {info.status:<10} {entries}"
        )
        if info.problem:
            print(f"{'':<38} ! {_shown(info.problem)}")
    return 0


def _show(args: argparse.Namespace, manager: BackupManager) -> int:
    """``show``: one backup's manifest summary, entry names and sizes only."""
    info = manager.get_backup(args.backup_id)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    rows = [
        ("id", info.backup_id),
        ("type", info.backup_type),
        ("created", info.timestamp.isoformat()),
        ("status", info.status + (f" ({_shown(info.problem)})" if info.problem else "")),
        ("size", f"{_size(info.size_bytes)} stored, {_size(info.original_size)} original"),
        ("compression", info.compression),
        ("signed", "yes" if info.signed else "no"),
        ("otelres", info.otelres_version or "?"),
    ]
    for key, value in rows:
        print(f"{key:<12} {value}")
    if info.metadata:
        for key, value in sorted(info.metadata.items()):
            print(f"{'meta':<12} {_shown(key)} = {_shown(value)}")
    if info.entries:
        print(f"\n{'ENTRY':<30} {'KIND':<7} {'SIZE':>10} {'STORED':>10}")
        for entry in info.entries:
            print(
                f"{_shown(entry.name):<30} {entry.kind:<7} {_size(entry.size):>10} "
                f"{_size(entry.stored_size):>10}"
            )
    return 0


def _verify(args: argparse.Namespace, manager: BackupManager) -> int:
    """``verify``: check one backup (default: the newest) or all; exit 1 if any is damaged."""
    if args.all and args.backup_id:
        raise _Failed("give an ID or --all, not both")
    if args.all:
        ids = [b.backup_id for b in manager.list_backups() if b.status != "incomplete"]
        if not ids:
            print(f"no backups in {manager.location}")
            return 0
    elif args.backup_id:
        ids = [args.backup_id]
    else:
        newest = [b for b in manager.list_backups() if b.status != "incomplete"]
        if not newest:
            raise _Failed(f"no backups in {manager.location}")
        ids = [newest[0].backup_id]
    failed = 0
    for backup_id in ids:
        report = manager.verify_backup(backup_id)
        print(report)
        failed += not report.ok
    if failed:
        print(f"error: {failed} of {len(ids)} backups failed verification", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _restore(args: argparse.Namespace, manager: BackupManager) -> int:
    """``restore``: restore into a directory (or check only, with --dry-run)."""
    from otelres.backup._recovery import RecoveryManager

    result = RecoveryManager(manager).restore(
        args.backup_id, args.target, dry_run=args.dry_run, overwrite=args.force
    )
    for skipped in result.skipped:
        print(f"warning: skipped damaged backup {skipped}", file=sys.stderr)
    verb = "would restore" if result.dry_run else "restored"
    print(
        f"{verb} {result.backup_id} to {result.target} "
        f"({_count(len(result.entries), 'entry', 'entries')}, {_size(result.total_bytes)})"
    )
    for entry in result.entries:
        print(f"  {entry.path}  ({entry.kind}, {_size(entry.size)})")
    return 0


def _prune(args: argparse.Namespace, manager: BackupManager) -> int:
    """``prune``: apply the retention policy, listing what is kept and why."""
    result = manager.prune(dry_run=args.dry_run)
    prefix = "would delete" if result.dry_run else "deleted"
    print(f"policy: {manager.retention.describe()}")
    for info, reasons in result.kept:
        print(f"keep    {info.backup_id}  ({', '.join(reasons)})")
    for info in result.removed:
        print(f"{prefix:<7} {info.backup_id}")
    for info in result.untouched:
        print(f"damaged {info.backup_id}  (not pruned; delete it explicitly: {_shown(info.problem)})")
    for name in result.abandoned:
        print(f"{'would remove' if result.dry_run else 'removed'} unfinished write {name}")
    print(f"{len(result.kept)} kept, {len(result.removed)} {prefix}")
    return 0


def _delete(args: argparse.Namespace, manager: BackupManager) -> int:
    """``delete``: remove one backup."""
    manager.delete_backup(args.backup_id)
    print(f"deleted {args.backup_id}")
    return 0


def _shown(text: str | None) -> str:
    """*text* with control characters escaped: a tampered manifest cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text or "")


def _count(number: int, one: str, many: str) -> str:
    """``1 entry``, ``3 entries``."""
    return f"{number} {one if number == 1 else many}"


def _size(count: int) -> str:
    """*count* bytes for people: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
