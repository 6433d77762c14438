"""Paths and readers for the observability stack's files, shared by the stack tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
STACK = ROOT / "collector"
COMPOSE = STACK / "docker-compose.yml"
PROMETHEUS_CONFIG = STACK / "prometheus" / "prometheus.yml"
RULES_DIR = STACK / "prometheus" / "rules"
RULE_TESTS_DIR = STACK / "prometheus" / "tests"
GRAFANA = STACK / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
GENERATOR = GRAFANA / "generate.py"

LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def load_yaml(path: Path) -> Any:
    """The parsed YAML document at *path*."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_files() -> list[Path]:
    """Every rules file Prometheus loads (``collector/prometheus/rules/*.yml``)."""
    return sorted(RULES_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    """Every alerting and recording rule, across all rule files and groups."""
    return [rule for path in rule_files() for group in load_yaml(path)["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


@dataclass(frozen=True)
class PanelQuery:
    """One query of one dashboard panel and the labels its legend shows."""

    dashboard: str
    panel: str
    ref: str
    expr: str
    legend_labels: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def panel_queries() -> list[PanelQuery]:
    """Every Prometheus query of every panel of every committed dashboard."""
    found = []
    for filename, board in dashboards().items():
        for panel in board["panels"]:
            for query in panel.get("targets", []):
                found.append(
                    PanelQuery(
                        dashboard=filename,
                        panel=panel["title"],
                        ref=query["refId"],
                        expr=query["expr"],
                        legend_labels=tuple(LEGEND_LABEL.findall(query.get("legendFormat", ""))),
                    )
                )
    return found


def variable_queries(board: dict[str, Any]) -> dict[str, str]:
    """The ``label_values(...)`` query of each query variable of *board*, by variable name."""
    return {
        variable["name"]: variable["query"]["query"]
        for variable in board["templating"]["list"]
        if variable["type"] == "query"
    }


def substitute(expr: str, variables: dict[str, str]) -> str:
    """*expr* with Grafana's ``$name`` variables replaced, as Grafana sends it."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    return expr
