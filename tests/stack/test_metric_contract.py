"""The rules read only metrics docs/TELEMETRY.md promises, under the names the exporters give them.

docs/TELEMETRY.md is the contract: instrument name, kind, unit, attributes and their values.
Each raw series a rule reads must be such an instrument translated the way the Prometheus
exporters translate it (dots to underscores, ``_total`` for counters, ``_seconds`` for
``s``, ``_bytes`` for ``By``, ``_ratio`` for unit ``1`` via the Collector, histogram
``_bucket``), and each label value a rule matches must be one the contract lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.stack._assets import ROOT, rules

TELEMETRY = ROOT / "docs" / "TELEMETRY.md"
ROW = re.compile(r"^\|\s*`(otelres\.[a-z0-9_.]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|")
ATTRIBUTE = re.compile(r"`([a-z0-9_.]+)`(?:\s*\(([^)]*)\))?")
SERIES = re.compile(r'__name__=~"(otelres_[a-z0-9_]+)\(_ratio\)\?"|\b(otelres_[a-z0-9_]+)')
MATCHER = re.compile(r'\b([a-z_]+)\s*(=~|=|!=)\s*"([^"]*)"')
UNIT_SUFFIX = {"s": "_seconds", "By": "_bytes"}


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str
    unit: str
    attributes: dict[str, set[str]]

    def prometheus_names(self) -> set[str]:
        """Every series name the Python exporter or the Collector publishes for it."""
        base = self.name.replace(".", "_") + UNIT_SUFFIX.get(self.unit, "")
        if "histogram" in self.kind:
            return {base + suffix for suffix in ("_bucket", "_sum", "_count")}
        if "counter" in self.kind:
            return {base + "_total"}
        return {base, base + "_ratio"} if self.unit == "1" else {base}


def contract() -> dict[str, Instrument]:
    """The metric instruments documented in docs/TELEMETRY.md, by Prometheus series name."""
    instruments: dict[str, Instrument] = {}
    for line in TELEMETRY.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if not match or not any(k in match.group(2) for k in ("counter", "gauge", "histogram")):
            continue
        attributes = {
            attr.replace(".", "_"): {v.strip() for v in values.split(",")} if values else set()
            for attr, values in ATTRIBUTE.findall(match.group(4))
        }
        instrument = Instrument(
            match.group(1), match.group(2).strip(), match.group(3).strip(" `"), attributes
        )
        for series in instrument.prometheus_names():
            instruments[series] = instrument
    return instruments


def raw_series_in_rules() -> dict[str, list[str]]:
    """Each raw (exporter) series name the rules read, with the expressions that read it."""
    found: dict[str, list[str]] = {}
    for rule in rules():
        for regex_name, plain_name in SERIES.findall(rule["expr"]):
            found.setdefault(regex_name or plain_name, []).append(rule["expr"])
    return found


@pytest.fixture(name="documented", scope="module")
def _documented() -> dict[str, Instrument]:
    assert TELEMETRY.exists(), "docs/TELEMETRY.md is the instrument contract the rules are checked against"
    return contract()


@pytest.mark.parametrize("series", sorted(raw_series_in_rules()))
def test_rules_read_documented_instruments_and_label_values(
    series: str, documented: dict[str, Instrument]
) -> None:
    """The series is a documented instrument's Prometheus name; matched labels and values are documented."""
    candidates = {series, series + "_ratio"}
    instrument = next((documented[name] for name in candidates if name in documented), None)
    if instrument is None:
        pytest.fail(f"{series} is read by a rule but is no instrument of docs/TELEMETRY.md")
    for expr in raw_series_in_rules()[series]:
        for selector in re.findall(re.escape(series) + r'(?:\{|\(_ratio\)\?",)([^}]*)\}', expr):
            for label, op, value in MATCHER.findall(selector):
                assert label in instrument.attributes, (
                    f"{series}: {label} is not an attribute of {instrument.name}"
                )
                allowed = instrument.attributes[label]
                if allowed and op in ("=", "=~"):
                    for alternative in value.split("|"):
                        assert alternative in allowed, (
                            f"{series}: {label}={alternative!r} is not a documented value ({sorted(allowed)})"
                        )


# Instruments no rule reads, and why: the stack alerts on the conditions themselves.
NOT_IN_THE_STACK = {
    "otelres.alerts.fired": "otelres' in-process alerting counts its own alerts",
    "otelres.alerts.notifications": "otelres' in-process alerting counts its own notifications",
}


def test_every_documented_instrument_reaches_a_rule_or_is_left_out_for_a_reason(
    documented: dict[str, Instrument],
) -> None:
    """Each metric of docs/TELEMETRY.md feeds some alerting or recording rule, so a new one cannot slip past the stack."""
    read = set(raw_series_in_rules())
    read |= {name + "_ratio" for name in read}
    missing = sorted(
        {
            instrument.name
            for instrument in documented.values()
            if not instrument.prometheus_names() & read and instrument.name not in NOT_IN_THE_STACK
        }
    )
    assert not missing, f"no rule reads {missing}: add a recording rule and a panel (or an alert)"
    stale = sorted(set(NOT_IN_THE_STACK) - {i.name for i in documented.values()})
    assert not stale, f"NOT_IN_THE_STACK names instruments TELEMETRY.md no longer has: {stale}"
