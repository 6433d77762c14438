"""The committed Grafana dashboards are current, well-formed, and only read recorded series."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import require_binary
from tests.stack._assets import (
    DASHBOARD_DIR,
    GENERATOR,
    PanelQuery,
    dashboards,
    panel_queries,
    rules,
    substitute,
    variable_queries,
)

RECORDED = re.compile(r"\botelres:[a-z0-9_:]+")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("otelres_grafana_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_what_the_generator_writes() -> None:
    """Each dashboard file equals the generator's output: edit generate.py, then regenerate."""
    generator = load_generator()
    expected = dict(generator.rendered())
    assert {path.name for path in expected} == {path.name for path in DASHBOARD_DIR.glob("*.json")}
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run .venv/bin/python collector/grafana/generate.py"
        )


def test_generator_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    """`generate.py --check` exits 1 and names the file when a dashboard was edited by hand."""
    generator = load_generator()
    for path, text in generator.rendered():
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    edited = next(iter(tmp_path.glob("*.json")))
    edited.write_text(edited.read_text(encoding="utf-8").replace('"version": 1', '"version": 2'))
    generator.DASHBOARD_DIR = tmp_path
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_generator_runs_as_a_script_in_check_mode() -> None:
    """The documented command `python collector/grafana/generate.py --check` succeeds on the repo."""
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_boards_have_service_and_name_variables() -> None:
    """Every dashboard offers `service` and `name` variables, and every query filters by service."""
    for filename, board in dashboards().items():
        queries = variable_queries(board)
        assert set(queries) == {"service", "name"}, filename
        assert queries["service"] == "label_values(target_info, service_name)"
        assert "$service" in queries["name"]
    for query in panel_queries():
        assert "$service" in query.expr, f"{query} ignores the service variable"


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    """Panel ids are unique per board and every panel lies within Grafana's 24 columns."""
    for filename, board in dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), filename
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{filename}: {panel['title']}"


def test_the_boards_cover_what_operators_look_for() -> None:
    """Breaker state timeline, health traffic light and backup freshness are present."""
    panels = {
        (filename, panel["title"]): panel
        for filename, board in dashboards().items()
        for panel in board["panels"]
    }
    assert panels[("otelres-resilience.json", "Breaker state")]["type"] == "state-timeline"
    assert panels[("otelres-health.json", "Health")]["type"] == "stat"
    titles = {title for _, title in panels}
    for title in (
        "Breaker transitions",
        "Failure rate",
        "Slow-call rate",
        "Rejected calls",
        "Retry outcomes",
        "Limiter acquisitions by outcome",
        "Limiter wait (p50 / p95)",
        "Bulkhead use",
        "Check duration (p95)",
        "Since the last successful backup",
    ):
        assert title in titles


def test_panels_read_only_series_the_recording_rules_produce() -> None:
    """Every otelres:* series a panel or variable queries is recorded by a rule."""
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used = {name for query in panel_queries() for name in RECORDED.findall(query.expr)}
    for board in dashboards().values():
        for expr in variable_queries(board).values():
            used.update(RECORDED.findall(expr))
    assert used, "no panel reads a recorded series"
    assert used <= recorded, f"not recorded by any rule: {sorted(used - recorded)}"


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query (variables filled in as Grafana would)."""
    promtool = require_binary("promtool")
    exprs = [
        {"record": f"panel:query_{index}", "expr": substitute(query.expr, {"service": ".*", "name": ".*"})}
        for index, query in enumerate(panel_queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": exprs}]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("query", panel_queries(), ids=str)
def test_legends_name_labels_the_query_keeps(query: PanelQuery) -> None:
    """A legend only names labels that survive the query's aggregation."""
    expr = query.expr
    for by in re.findall(r"\bby \(([^)]*)\)", expr):
        kept = {label.strip() for label in by.split(",")}
        missing = set(query.legend_labels) - kept
        assert not missing, f"{query}: legend shows {missing}, dropped by `by ({by})`"
