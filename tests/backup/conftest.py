"""Fixtures for the backup tests: a manager over a fresh directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelres.backup import BackupManager


@pytest.fixture(name="backup_dir")
def _backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture(name="manager")
def _manager(backup_dir: Path) -> BackupManager:
    return BackupManager(backup_dir)
