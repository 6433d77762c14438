"""Generate the otelres Grafana dashboards (``collector/grafana/dashboards/*.json``).

The dashboards are written from this script, not edited in Grafana's UI, so that every
panel query lives in one reviewable place and follows the same conventions:

* panels read the recording rules of ``collector/prometheus/rules/otelres-recording.yml``
  (``otelres:*`` series that already carry ``service_name``), never raw exporter names;
* every query is filtered by the ``$service`` variable and, where a component has a name,
  by ``$name``;
* every ``legendFormat`` names the labels the query returns, which is what the stack
  test checks against a real Prometheus (``tests/stack/test_prometheus_stack.py``).

Run it after changing a panel and commit the JSON with it::

    .venv/bin/python collector/grafana/generate.py          # rewrite the JSON files
    .venv/bin/python collector/grafana/generate.py --check  # exit 1 when they are stale

``tests/stack/test_dashboards.py`` fails when the committed JSON differs from what this
script produces.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERVICE = 'service_name=~"$service"'

# Value mappings shared by the state panels.
BREAKER_STATES = [
    ("-1", "disabled", "text"),
    ("0", "closed", "green"),
    ("1", "half-open", "yellow"),
    ("2", "open", "red"),
    ("3", "forced open", "purple"),
]
HEALTH_STATES = [("0", "GREEN", "green"), ("1", "YELLOW", "yellow"), ("2", "RED", "red")]
REDIS_STATES = [("0", "unreachable", "red"), ("1", "reachable", "green")]


# --------------------------------------------------------------------------- building blocks
def target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    """One Prometheus query of a panel; *legend* names the labels the series carry."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": ref,
    }


def value_mappings(states: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Grafana value mappings turning state codes into coloured words."""
    options = {
        code: {"color": color, "index": index, "text": text}
        for index, (code, text, color) in enumerate(states)
    }
    return [{"options": options, "type": "value"}]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    """Absolute threshold steps; the first value must be None (the base colour)."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping into new rows."""

    def __init__(self) -> None:
        self._x = 0
        self._y = 0
        self._row_height = 0
        self._next_id = 1

    def row(self, title: str) -> dict[str, Any]:
        """A collapsible row header starting a new line of panels."""
        self._newline()
        panel = {
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
            "id": self._id(),
            "panels": [],
            "title": title,
            "type": "row",
        }
        self._y += 1
        return panel

    def place(self, panel: dict[str, Any], width: int, height: int) -> dict[str, Any]:
        """Give *panel* an id and a grid position of *width* x *height*."""
        if self._x + width > 24:
            self._newline()
        panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        panel["id"] = self._id()
        self._x += width
        self._row_height = max(self._row_height, height)
        return panel

    def _newline(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    defaults: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    """A panel of type *kind*: its queries, field defaults and options, on the chosen data source."""
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
        "title": title,
        "type": kind,
    }


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    bars: bool = False,
    stack: bool = False,
    max_value: float | None = None,
) -> dict[str, Any]:
    """A time series panel."""
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
    }
    defaults: dict[str, Any] = {"custom": custom, "min": 0, "unit": unit}
    if max_value is not None:
        defaults["max"] = max_value
    options = {
        "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table", "placement": "right"},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, targets, defaults, options)


def per_second(
    title: str, description: str, record: str, selector: str, by: str, *, legend: str | None = None
) -> dict[str, Any]:
    """Stacked calls per second: ``sum by (<by>) (<record>{<selector>})``, one series per *by* set.

    The legend shows the *by* labels in order unless *legend* says otherwise.
    """
    labels = [label.strip() for label in by.split(",")]
    return timeseries(
        title,
        description,
        [
            target(
                f"sum by ({by}) ({record}{{{selector}}})",
                legend or " ".join(f"{{{{{label}}}}}" for label in labels),
            )
        ],
        unit="reqps",
        stack=True,
    )


def share(title: str, description: str, query: dict[str, Any]) -> dict[str, Any]:
    """A time series of a ratio between 0 and 1, shown as a percentage."""
    return timeseries(title, description, [query], unit="percentunit", max_value=1)


def state_timeline(
    title: str, description: str, query: dict[str, Any], states: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """A state timeline: one lane per series, coloured by the mapped state."""
    defaults = {
        "color": {"mode": "thresholds"},
        "mappings": value_mappings(states),
        "thresholds": thresholds((None, "green")),
    }
    options = {
        "alignValue": "center",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "mergeValues": True,
        "rowHeight": 0.8,
        "showValue": "auto",
    }
    return panel("state-timeline", title, description, [query], defaults, options)


def stat(
    title: str,
    description: str,
    query: dict[str, Any],
    *,
    unit: str = "none",
    mappings: list[dict[str, Any]] | None = None,
    steps: dict[str, Any],
) -> dict[str, Any]:
    """A stat panel with a coloured background (the traffic light)."""
    defaults = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": steps,
        "unit": unit,
    }
    options = {
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "center",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "value_and_name",
    }
    return panel("stat", title, description, [query], defaults, options)


def variables(name_query: str, name_label: str) -> dict[str, Any]:
    """The ``datasource``, ``service`` and ``name`` template variables."""
    return {
        "list": [
            {
                "current": {},
                "hide": 0,
                "includeAll": False,
                "label": "Data source",
                "name": "datasource",
                "query": "prometheus",
                "refresh": 1,
                "type": "datasource",
            },
            {
                "allValue": ".*",
                "current": {},
                "datasource": DATASOURCE,
                "definition": "label_values(target_info, service_name)",
                "includeAll": True,
                "label": "Service",
                "multi": True,
                "name": "service",
                "query": {
                    "qryType": 1,
                    "query": "label_values(target_info, service_name)",
                    "refId": "PrometheusVariableQueryEditor-VariableQuery",
                },
                "refresh": 2,
                "sort": 1,
                "type": "query",
            },
            {
                "allValue": ".*",
                "current": {},
                "datasource": DATASOURCE,
                "definition": f"label_values({name_query}, {name_label})",
                "includeAll": True,
                "label": "Name",
                "multi": True,
                "name": "name",
                "query": {
                    "qryType": 1,
                    "query": f"label_values({name_query}, {name_label})",
                    "refId": "PrometheusVariableQueryEditor-VariableQuery",
                },
                "refresh": 2,
                "sort": 1,
                "type": "query",
            },
        ]
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]], templating: dict[str, Any]
) -> dict[str, Any]:
    """A complete dashboard document, as Grafana's file provisioning loads it."""
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "tags": ["otelres"],
                "title": "otelres",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["otelres"],
        "templating": templating,
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
    }


# --------------------------------------------------------------------------- dashboards
def resilience() -> dict[str, Any]:
    """Breakers, retries, limiters, bulkheads, timeouts, fallbacks and shared state (Redis)."""
    grid = Layout()
    breaker = f'{SERVICE}, breaker_name=~"$name"'
    retry = f'{SERVICE}, retry_name=~"$name"'
    limiter = f'{SERVICE}, limiter_name=~"$name"'
    bulkhead = f'{SERVICE}, bulkhead_name=~"$name"'
    timeout = f'{SERVICE}, timeout_name=~"$name"'
    fallback = f'{SERVICE}, fallback_name=~"$name"'
    shared = f'{SERVICE}, guard_name=~"$name"'
    exchange = f'{SERVICE}, ccxt_exchange_id=~"$name"'
    panels = [
        grid.row("Circuit breakers"),
        grid.place(
            state_timeline(
                "Breaker state",
                "State of each circuit breaker over time (worst across the service's "
                "instances): closed, half-open (probing), open (failing fast), forced open "
                "by an operator, or disabled.",
                target(f"otelres:breaker_state:code{{{breaker}}}", "{{service_name}} {{breaker_name}}"),
                BREAKER_STATES,
            ),
            24,
            7,
        ),
        grid.place(
            per_second(
                "Breaker calls by outcome",
                "Calls per second through each breaker: success, failure, slow, ignored "
                "(an excluded exception) and rejected (failed fast while open).",
                "otelres:breaker_calls:rate1m",
                breaker,
                "breaker_name, breaker_outcome",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Breaker transitions",
                "State changes per minute, by the state left and the state entered.",
                [
                    target(
                        "sum by (breaker_name, breaker_from_state, breaker_to_state) "
                        f"(otelres:breaker_transitions:rate1m{{{breaker}}}) * 60",
                        "{{breaker_name}} {{breaker_from_state}} -> {{breaker_to_state}}",
                    )
                ],
                unit="short",
                bars=True,
            ),
            12,
            8,
        ),
        grid.place(
            share(
                "Failure rate",
                "Share of failed calls in each breaker's window (what trips it); shown for "
                "breakers with a failure_rate_threshold once minimum_calls is reached.",
                target(f"otelres:breaker_failure_rate:ratio{{{breaker}}}", "{{breaker_name}}"),
            ),
            8,
            7,
        ),
        grid.place(
            share(
                "Slow-call rate",
                "Share of calls slower than the breaker's slow_call_duration; shown for "
                "breakers with one once minimum_calls is reached.",
                target(f"otelres:breaker_slow_call_rate:ratio{{{breaker}}}", "{{breaker_name}}"),
            ),
            8,
            7,
        ),
        grid.place(
            timeseries(
                "Rejected calls",
                "Calls turned away without reaching the dependency: by an open breaker, "
                "an empty rate limiter or a full bulkhead.",
                [
                    target(
                        "sum by (breaker_name) "
                        f'(otelres:breaker_calls:rate1m{{{breaker}, breaker_outcome="rejected"}})',
                        "breaker {{breaker_name}}",
                        "A",
                    ),
                    target(
                        "sum by (limiter_name) "
                        f'(otelres:limiter_acquisitions:rate1m{{{limiter}, limiter_outcome="rejected"}})',
                        "limiter {{limiter_name}}",
                        "B",
                    ),
                    target(
                        f"sum by (bulkhead_name) (otelres:bulkhead_rejections:rate1m{{{bulkhead}}})",
                        "bulkhead {{bulkhead_name}}",
                        "C",
                    ),
                ],
                unit="reqps",
                stack=True,
            ),
            8,
            7,
        ),
        grid.row("Retries"),
        grid.place(
            per_second(
                "Retry outcomes",
                "Calls per second through each retry, by whether they needed a retry "
                "and whether they finally succeeded.",
                "otelres:retry_calls:rate1m",
                retry,
                "retry_name, retry_outcome",
            ),
            12,
            8,
        ),
        grid.place(
            per_second(
                "Retry attempts by error",
                "Retry attempts scheduled per second, by the error that caused them.",
                "otelres:retry_attempts:rate1m",
                retry,
                "retry_name, error_type",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Retry delay (p95)",
                "How long retries waited before their next attempt (back-off, or what the "
                "server asked for with Retry-After).",
                [
                    target(
                        "histogram_quantile(0.95, sum by (retry_name, le) "
                        f"(otelres:retry_delay_seconds_bucket:rate1m{{{retry}}}))",
                        "{{retry_name}}",
                    )
                ],
                unit="s",
            ),
            24,
            6,
        ),
        grid.row("Rate limiters"),
        grid.place(
            per_second(
                "Limiter acquisitions by outcome",
                "Permits per second: acquired at once, acquired after waiting, or rejected.",
                "otelres:limiter_acquisitions:rate1m",
                limiter,
                "limiter_name, limiter_outcome",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Limiter wait (p50 / p95)",
                "How long callers waited for a permit, among those that had to wait.",
                [
                    target(
                        "histogram_quantile(0.5, sum by (limiter_name, le) "
                        f"(otelres:limiter_wait_duration_seconds_bucket:rate1m{{{limiter}}}))",
                        "{{limiter_name}} p50",
                        "A",
                    ),
                    target(
                        "histogram_quantile(0.95, sum by (limiter_name, le) "
                        f"(otelres:limiter_wait_duration_seconds_bucket:rate1m{{{limiter}}}))",
                        "{{limiter_name}} p95",
                        "B",
                    ),
                ],
                unit="s",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Limiter tokens available",
                "Tokens left in each limiter's bucket (lowest across instances); at 0 "
                "callers wait or are rejected.",
                [target(f"otelres:limiter_available_tokens:min{{{limiter}}}", "{{limiter_name}}")],
                unit="short",
            ),
            24,
            6,
        ),
        grid.row("Bulkheads"),
        grid.place(
            timeseries(
                "Bulkhead use",
                "Calls in flight as a share of each bulkhead's limit (summed across instances).",
                [
                    target(
                        f"otelres:bulkhead_in_flight:sum{{{bulkhead}}} "
                        f"/ otelres:bulkhead_limit:sum{{{bulkhead}}}",
                        "{{bulkhead_name}}",
                    )
                ],
                unit="percentunit",
                max_value=1,
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Bulkhead in flight",
                "Calls in flight and the limit of each bulkhead.",
                [
                    target(
                        f"otelres:bulkhead_in_flight:sum{{{bulkhead}}}",
                        "{{bulkhead_name}} in flight",
                        "A",
                    ),
                    target(f"otelres:bulkhead_limit:sum{{{bulkhead}}}", "{{bulkhead_name}} limit", "B"),
                ],
                unit="short",
            ),
            12,
            8,
        ),
        grid.row("Timeouts and fallbacks"),
        grid.place(
            per_second(
                "Timeouts",
                "Calls per second abandoned by each timeout, by what the call was doing "
                "(error.type of the timeout raised).",
                "otelres:timeouts:rate1m",
                timeout,
                "timeout_name, error_type",
            ),
            12,
            8,
        ),
        grid.place(
            per_second(
                "Fallbacks served",
                "Calls per second answered by a fallback instead of the dependency, by the "
                "error that was covered up.",
                "otelres:fallbacks:rate1m",
                fallback,
                "fallback_name, error_type",
            ),
            12,
            8,
        ),
        grid.row("Exchange calls (ccxt)"),
        grid.place(
            per_second(
                "Exchange calls by outcome",
                "Unified ccxt calls per second (otelres-instrumentation-ccxt), by exchange and "
                "outcome: success, failure (network or exchange trouble), rejected (by a "
                "guard) and error (the caller's: bad symbol, funds, authentication).",
                "otelres:ccxt_calls:rate1m",
                exchange,
                "ccxt_exchange_id, ccxt_outcome",
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Exchange call latency (p95)",
                "How long unified ccxt calls take, retries and waits included, by exchange "
                "and method.",
                [
                    target(
                        "histogram_quantile(0.95, sum by (ccxt_exchange_id, ccxt_method, le) "
                        f"(otelres:ccxt_call_duration_seconds_bucket:rate1m{{{exchange}}}))",
                        "{{ccxt_exchange_id}} {{ccxt_method}}",
                    )
                ],
                unit="s",
            ),
            12,
            8,
        ),
        grid.row("Shared state (Redis)"),
        grid.place(
            state_timeline(
                "Redis reachable",
                "Whether every instance of the service reaches the Redis server that holds "
                "shared breaker and limiter state (red: at least one does not, and its "
                "guards use their fail mode).",
                target(
                    f"otelres:redis_available:min{{{SERVICE}}}",
                    "{{service_name}} {{server_address}}",
                ),
                REDIS_STATES,
            ),
            12,
            8,
        ),
        grid.place(
            per_second(
                "Calls decided without Redis",
                "Guarded calls per second decided while Redis was unreachable: on the "
                "process's own state (fail mode open) or rejected (fail mode closed).",
                "otelres:redis_unavailable:rate1m",
                shared,
                "guard_kind, guard_name, redis_fail_mode",
                legend="{{guard_kind}} {{guard_name}} fail {{redis_fail_mode}}",
            ),
            12,
            8,
        ),
    ]
    return dashboard(
        "otelres-resilience",
        "otelres / Resilience",
        "Circuit breakers, retries, rate limiters, bulkheads, timeouts and fallbacks guarded "
        "by otelres, and the Redis server their shared state lives in.",
        panels,
        variables('otelres:component:info{service_name=~"$service"}', "name"),
    )


def health() -> dict[str, Any]:
    """Health checks (traffic lights, history, duration) and backup freshness."""
    grid = Layout()
    check = f'{SERVICE}, health_check_name=~"$name"'
    status = target(f"otelres:health_status:max{{{check}}}", "{{service_name}} {{health_check_name}}")
    day = 24 * 3600
    panels = [
        grid.row("Health checks"),
        grid.place(
            stat(
                "Health",
                "Current status of each check (worst across the service's instances).",
                status,
                mappings=value_mappings(HEALTH_STATES),
                steps=thresholds((None, "green"), (1, "yellow"), (2, "red")),
            ),
            24,
            5,
        ),
        grid.place(
            state_timeline(
                "Health history",
                "Status of each check over time.",
                status,
                HEALTH_STATES,
            ),
            12,
            8,
        ),
        grid.place(
            timeseries(
                "Check duration (p95)",
                "How long each check takes to answer; a check near its timeout is about to turn RED.",
                [
                    target(
                        "histogram_quantile(0.95, sum by (health_check_name, le) "
                        f"(otelres:health_check_duration_seconds_bucket:rate1m{{{check}}}))",
                        "{{health_check_name}}",
                    )
                ],
                unit="s",
            ),
            12,
            8,
        ),
        grid.row("Backups"),
        grid.place(
            stat(
                "Since the last successful backup",
                "Age of the newest successful backup of any type; red after 26 hours, "
                "when the OtelresBackupStale alert fires.",
                target(
                    "time() - max by (service_name) "
                    f"(otelres:backup_last_success:timestamp_seconds{{{SERVICE}}})",
                    "{{service_name}}",
                ),
                unit="s",
                steps=thresholds((None, "green"), (day, "yellow"), (26 * 3600, "red")),
            ),
            8,
            6,
        ),
        grid.place(
            stat(
                "Backup age by type",
                "Age of the newest successful backup of each backup type.",
                target(
                    f"time() - otelres:backup_last_success:timestamp_seconds{{{SERVICE}}}",
                    "{{service_name}} {{backup_type}}",
                ),
                unit="s",
                steps=thresholds((None, "green"), (day, "yellow"), (26 * 3600, "red")),
            ),
            16,
            6,
        ),
        grid.place(
            timeseries(
                "Backup runs per hour",
                "Backups attempted in the last hour by type and outcome; a failure fires "
                "OtelresBackupFailing.",
                [
                    target(
                        "sum by (backup_type, backup_outcome) "
                        f"(otelres:backup_created:increase1h{{{SERVICE}}})",
                        "{{backup_type}} {{backup_outcome}}",
                    )
                ],
                unit="short",
                bars=True,
            ),
            8,
            7,
        ),
        grid.place(
            timeseries(
                "Backup duration (p95)",
                "How long successful backups took to write, by type (over the last hour).",
                [
                    target(
                        "histogram_quantile(0.95, sum by (backup_type, le) "
                        f"(otelres:backup_duration_seconds_bucket:rate1h{{{SERVICE}}}))",
                        "{{backup_type}}",
                    )
                ],
                unit="s",
            ),
            8,
            7,
        ),
        grid.place(
            timeseries(
                "Backup size",
                "Stored size of the newest valid backup of each type.",
                [target(f"otelres:backup_size_bytes:max{{{SERVICE}}}", "{{backup_type}}")],
                unit="bytes",
            ),
            8,
            7,
        ),
        grid.place(
            timeseries(
                "Stored backups by status",
                "Backups in storage per type: valid, incomplete (a write that never "
                "finished) and damaged (fails verification; the OtelresBackupDamaged alert).",
                [
                    target(
                        "sum by (backup_type, backup_status) "
                        f"(otelres:backup_count:max{{{SERVICE}}})",
                        "{{backup_type}} {{backup_status}}",
                    )
                ],
                unit="short",
                stack=True,
            ),
            24,
            7,
        ),
    ]
    return dashboard(
        "otelres-health",
        "otelres / Health and backups",
        "Health checks as traffic lights, check durations, and backup freshness.",
        panels,
        variables('otelres:health_status:max{service_name=~"$service"}', "health_check_name"),
    )


DASHBOARDS = {"otelres-resilience.json": resilience, "otelres-health.json": health}


# --------------------------------------------------------------------------- output
def render(build: Any) -> str:
    """The JSON text of one dashboard, formatted the way it is committed."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def rendered() -> Iterator[tuple[Path, str]]:
    """Every dashboard file and the text it should contain."""
    for filename, build in DASHBOARDS.items():
        yield DASHBOARD_DIR / filename, render(build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"stale dashboards: {', '.join(stale)}; run python collector/grafana/generate.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
