"""A real Prometheus, loaded with the shipped rules, scrapes a real otelres process.

The process (``stack_app.py``) exports through ``otelres.configure()``'s Prometheus
endpoint and drives breakers through open / half-open / closed, a health check to RED and a
stale backup. Then every query of every dashboard panel runs against Prometheus' HTTP API
and must return series carrying the labels its legend shows, and the alerts those
conditions call for must be pending or firing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, require_binary
from tests.stack._assets import (
    PROMETHEUS_CONFIG,
    PanelQuery,
    dashboards,
    load_yaml,
    panel_queries,
    rule_files,
    substitute,
    variable_queries,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

APP = Path(__file__).with_name("stack_app.py")
SERVICE = "otelres-stack-test"
# How long the data may take to show up: scrapes and rule evaluations run every second,
# rates need two samples, recording rules build on each other; the machine is shared.
SETTLE_SECONDS = 45.0


@dataclass
class Stack:
    """The running Prometheus and what it scrapes."""

    url: str
    app: subprocess.Popen[str]
    prometheus: subprocess.Popen[str]
    logs: Path

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its ``data``; a non-success answer fails the test."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector *expr* evaluates to now."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def wait_until(self, what: str, condition: Callable[[], Any]) -> Any:
        """Poll *condition* until it returns something truthy; fail after SETTLE_SECONDS."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            self.check_alive()
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.5)

    def check_alive(self) -> None:
        for name, process in (("app", self.app), ("prometheus", self.prometheus)):
            if process.poll() is not None:
                output = (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")
                pytest.fail(f"{name} exited with {process.returncode}:\n{output[-3000:]}")


def prometheus_config(app_port: int) -> dict[str, Any]:
    """The shipped prometheus.yml, scraping the app every second with the repository's rules."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in rule_files()]
    config["scrape_configs"] = [
        {"job_name": "otelres", "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}
    ]
    return config


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(name="stack", scope="module")
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("stack")
    app_port, prometheus_port = free_port(), free_port()
    app = subprocess.Popen(
        [
            sys.executable,
            str(APP),
            "--port",
            str(app_port),
            "--backup-dir",
            str(workdir / "backups"),
            "--service-name",
            SERVICE,
            "--redis-url",
            f"redis://127.0.0.1:{free_port()}/0",
        ],
        stdout=subprocess.PIPE,
        stderr=(workdir / "app.log").open("w"),
        text=True,
    )
    prometheus: subprocess.Popen[str] | None = None
    try:
        assert app.stdout is not None
        ready = app.stdout.readline()
        assert ready.startswith("READY "), f"the otelres app did not start: {ready!r}"
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(app_port)), encoding="utf-8")
        prometheus = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "prometheus.log").open("w"),
            text=True,
        )
        stack = Stack(f"http://127.0.0.1:{prometheus_port}", app, prometheus, workdir)
        stack.wait_until("Prometheus to be ready", lambda: _ready(stack.url))
        stack.wait_until(
            "the first scrape of the otelres app",
            lambda: stack.query(
                f'up{{job="otelres"}} == 1 and on () target_info{{service_name="{SERVICE}"}}'
            ),
        )
        yield stack
    finally:
        stop(app)
        if prometheus is not None:
            stop(prometheus)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def dashboard_variables() -> dict[str, str]:
    """What Grafana substitutes with service = the app's service and name = All."""
    return {"service": SERVICE, "name": ".*", "datasource": "prometheus"}


def finite_series(stack: Stack, query: PanelQuery) -> list[dict[str, Any]]:
    """The series *query* returns with a finite value (NaN from an empty histogram does not count)."""
    series = stack.query(substitute(query.expr, dashboard_variables()))
    return [item for item in series if math.isfinite(float(item["value"][1]))]


@pytest.mark.parametrize("query", panel_queries(), ids=str)
def test_every_panel_query_returns_series_with_its_legend_labels(stack: Stack, query: PanelQuery) -> None:
    """The panel's query returns finite series, each carrying every label its legend shows."""
    series = stack.wait_until(f"{query} to return data", lambda: finite_series(stack, query))
    for item in series:
        labels = item["metric"]
        missing = [label for label in query.legend_labels if not labels.get(label)]
        assert not missing, f"{query}: series {labels} lack legend labels {missing}"
        if "service_name" in labels:
            assert labels["service_name"] == SERVICE


def test_variables_list_the_service_and_every_component_name(stack: Stack) -> None:
    """`service` lists the app's service; `name` lists its breakers, retry, limiters, bulkhead and checks."""
    expected = {
        "otelres-resilience.json": {
            "exchange-flappy",
            "exchange-down",
            "exchange-windowed",
            "exchange-retry",
            "exchange-public",
            "exchange-private",
            "orders",
            "exchange-orders",
            "exchange-ticker",
            "exchange-shared",
            "kraken",
            "binance",
        },
        "otelres-health.json": {"exchange", "disk", "database", "overall"},
    }
    for filename, board in dashboards().items():
        queries = variable_queries(board)
        for variable, wanted in (("service", {SERVICE}), ("name", expected[filename])):
            query = substitute(queries[variable], dashboard_variables())
            stack.wait_until(
                f"{filename} ${variable} to list {sorted(wanted)}",
                lambda query=query, wanted=wanted: wanted <= label_values(stack, query),
            )


def label_values(stack: Stack, query: str) -> set[str]:
    """What Grafana lists for ``label_values(metric{selector}, label)``: Prometheus' label values API."""
    assert query.startswith("label_values("), query
    assert query.endswith(")"), query
    metric, label = query[len("label_values(") : -1].rsplit(",", 1)
    return set(stack.api(f"label/{label.strip()}/values", **{"match[]": metric.strip()}))


def series_values(stack: Stack, expr: str, label: str) -> dict[str, float]:
    return {item["metric"].get(label, ""): float(item["value"][1]) for item in stack.query(expr)}


def settled_values(
    stack: Stack, record: str, label: str, ready: Callable[[dict[str, float]], bool]
) -> dict[str, float]:
    """The app's values of recording rule *record* by *label*, once *ready* accepts them."""
    expr = f'{record}{{service_name="{SERVICE}"}}'
    return stack.wait_until(  # type: ignore[no-any-return]
        f"{record} by {label}",
        lambda: (values := series_values(stack, expr, label)) and ready(values) and values,
    )


def test_breaker_state_shows_the_open_breaker_open_and_the_flapping_one_cycling(stack: Stack) -> None:
    """The state timeline reads 2 (open) for the dead exchange; the flapping breaker went through every state."""
    states = settled_values(
        stack,
        "otelres:breaker_state:code",
        "breaker_name",
        lambda values: {"exchange-down", "exchange-flappy", "exchange-windowed"} <= set(values),
    )
    assert states["exchange-down"] == 2
    assert states["exchange-windowed"] == 0
    transitions = stack.query(
        f'sum by (breaker_from_state, breaker_to_state) (otelres:breaker_transitions:rate1m{{service_name="{SERVICE}", breaker_name="exchange-flappy"}}) > 0'
    )
    pairs = {(t["metric"]["breaker_from_state"], t["metric"]["breaker_to_state"]) for t in transitions}
    assert pairs == {("closed", "open"), ("open", "half_open"), ("half_open", "closed")}


def test_health_traffic_light_reads_red_yellow_green(stack: Stack) -> None:
    """Each check's light has the status the app reports: exchange RED, disk YELLOW, database GREEN."""
    lights = settled_values(
        stack, "otelres:health_status:max", "health_check_name", lambda values: len(values) == 4
    )
    assert lights == {"exchange": 2, "disk": 1, "database": 0, "overall": 2}


def test_redis_panels_show_the_absent_server_and_the_calls_decided_without_it(stack: Stack) -> None:
    """The Redis nobody runs reads unreachable (0); the shared breaker's and limiter's calls are counted as fail-open."""
    available = settled_values(stack, "otelres:redis_available:min", "server_address", bool)
    assert available == {"127.0.0.1": 0}
    decided = settled_values(
        stack, "otelres:redis_unavailable:rate1m", "guard_kind", lambda values: len(values) == 2
    )
    assert set(decided) == {"breaker", "limiter"}
    assert all(rate > 0 for rate in decided.values())
    modes = stack.query(f'group by (redis_fail_mode) (otelres:redis_unavailable:rate1m{{service_name="{SERVICE}"}})')
    assert [m["metric"]["redis_fail_mode"] for m in modes] == ["open"]


def test_backup_freshness_shows_the_stale_backup(stack: Stack) -> None:
    """The backup panel's age is the 30 hours the app's backup manifest claims."""
    query = next(q for q in panel_queries() if q.panel == "Since the last successful backup")
    series = stack.wait_until("backup age", lambda: finite_series(stack, query))
    age_hours = float(series[0]["value"][1]) / 3600
    assert 29.9 < age_hours < 30.5


# alert: (label, the component that must raise it, components that never may)
EXPECTED_ALERTS = {
    "OtelresBreakerOpen": ("breaker_name", "exchange-down", {"exchange-windowed"}),
    "OtelresBreakerFlapping": ("breaker_name", "exchange-flappy", {"exchange-down", "exchange-windowed"}),
    "OtelresHealthCheckRed": ("health_check_name", "exchange", {"disk", "database", "overall"}),
    "OtelresHealthCheckYellowForLong": ("health_check_name", "disk", {"exchange", "database", "overall"}),
    "OtelresRateLimiterRejecting": ("limiter_name", "exchange-private", {"exchange-public"}),
    "OtelresRetryStorm": ("retry_name", "exchange-retry", set()),
    "OtelresBackupStale": ("job", "otelres", set()),
    "OtelresBackupDamaged": ("backup_type", "hourly", {"daily"}),
    "OtelresBackupFailing": ("backup_type", "daily", {"snapshot", "hourly"}),
    "OtelresRedisUnavailable": ("server_address", "127.0.0.1", set()),
    "OtelresExchangeFailing": ("ccxt_exchange_id", "binance", {"kraken"}),
}


def test_the_matching_alerts_are_pending_or_firing(stack: Stack) -> None:
    """Every condition the app drives shows up in /api/v1/alerts, for the right component only."""

    def active() -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        for alert in stack.api("alerts")["alerts"]:
            if alert["state"] in ("pending", "firing"):
                found.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return found

    alerts = stack.wait_until(
        f"alerts {sorted(EXPECTED_ALERTS)}",
        lambda: (found := active()) and set(EXPECTED_ALERTS) <= set(found) and found,
    )
    assert set(alerts) == set(EXPECTED_ALERTS)
    for name, (label, culprit, innocent) in EXPECTED_ALERTS.items():
        raised_for = {alert[label] for alert in alerts[name]}
        assert culprit in raised_for, f"{name} is not raised for {culprit}: {alerts[name]}"
        assert not raised_for & innocent, f"{name} is raised for {raised_for & innocent}"
