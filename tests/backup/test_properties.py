"""Property tests: any JSON state survives a backup round trip unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelres.backup import BackupManager, RecoveryManager, _pipeline

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=8)
    | st.dictionaries(st.text(max_size=12), children, max_size=8),
    max_leaves=40,
)
entry_names = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_. -]{0,20}", fullmatch=True).filter(
    lambda n: n not in (".", "..")
)


def _same(a: Any, b: Any) -> bool:
    """Strict equality: same types, and floats with the same sign (0.0 and -0.0 differ)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.dictionaries(entry_names, json_values, min_size=1, max_size=4))
def test_any_json_state_round_trips(tmp_path: Path, state: dict[str, Any]) -> None:
    """Every JSON-serializable state loads back exactly (types, strings, float signs) after a backup."""
    manager = BackupManager(tmp_path / "rt")
    backup_id = manager.create_backup(state)
    assert _same(manager.load_backup(backup_id), state)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values, compression=st.sampled_from(["gzip", "zstd", "none"]))
def test_sliced_serialization_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: Any, compression: str
) -> None:
    """With tiny slices (every container is "large"), the pipelined path still round-trips exactly."""
    monkeypatch.setattr(_pipeline, "SLICE", 1)
    pieces = b"".join(_pipeline.json_pieces(value))
    assert _same(json.loads(pieces), value)
    manager = BackupManager(tmp_path / f"sl-{compression}", compress=compression != "none",
                            compression=compression if compression != "none" else None)
    backup_id = manager.create_backup({"v": value})
    assert _same(manager.load_backup(backup_id)["v"], value)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.dictionaries(entry_names, json_values, min_size=1, max_size=3))
def test_restored_files_decode_to_the_state(tmp_path: Path, state: dict[str, Any]) -> None:
    """A restore writes each entry as <name>.json whose JSON equals the backed-up value."""
    manager = BackupManager(tmp_path / "rs")
    backup_id = manager.create_backup(state)
    target = tmp_path / "restored" / backup_id
    RecoveryManager(manager).restore(backup_id, target)
    for name, value in state.items():
        assert _same(json.loads((target / f"{name}.json").read_text()), value)
