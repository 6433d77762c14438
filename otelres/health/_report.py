"""A whole run's outcome: :class:`HealthReport` and its stable JSON schema."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otelres.health._model import HealthResult, HealthStatus, iso_time, parse_iso_time

__all__ = ["SCHEMA_VERSION", "HealthReport"]

#: Version of the JSON report schema; bumped only for incompatible changes.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class HealthReport:
    """The results of one run of checks and the overall status (the worst of them).

    ``to_dict()`` / ``to_json()`` give the stable report schema that ``otelres health
    --json`` prints and ``/health`` serves (see docs/HEALTH_CHECKS.md)::

        {"schema_version": 1, "overall_status": "yellow", "timestamp": "...Z",
         "duration_seconds": 0.012, "checks": {"name": {...HealthResult.to_dict()...}}}

    ``exit_status`` is the CLI's exit status for it: 0 GREEN, 1 YELLOW, 2 RED.
    """

    results: Mapping[str, HealthResult]
    overall: HealthStatus = HealthStatus.GREEN
    timestamp: float = field(default_factory=time.time)
    duration: float = 0.0

    @classmethod
    def of(cls, results: Mapping[str, HealthResult], *, duration: float = 0.0) -> HealthReport:
        """A report over *results*, with the overall status computed from them."""
        overall = HealthStatus.worst(r.status for r in results.values())
        return cls(dict(results), overall, time.time(), duration)

    @property
    def exit_status(self) -> int:
        return self.overall.level

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "overall_status": self.overall.value,
            "timestamp": iso_time(self.timestamp),
            "duration_seconds": round(self.duration, 6),
            "checks": {name: result.to_dict() for name, result in self.results.items()},
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthReport:
        """Rebuild a report from :meth:`to_dict` output; ``ValueError`` says what is wrong with it.

        Reports of a newer major schema version are refused rather than misread.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a health report must be a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"unsupported health report schema_version {version!r}")
        checks = data.get("checks")
        if not isinstance(checks, Mapping):
            raise ValueError("health report has no 'checks' object")
        results = {}
        for name, entry in checks.items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"health report: checks.{name} is not an object")
            try:
                results[name] = HealthResult.from_dict({"name": name, **entry})
            except ValueError as exc:
                raise ValueError(f"health report: checks.{name}: {exc}") from None
        try:
            overall = HealthStatus(data.get("overall_status"))
        except ValueError:
            raise ValueError(
                f"health report has an invalid overall_status {data.get('overall_status')!r}"
            ) from None
        stamp = data.get("timestamp")
        return cls(
            results,
            overall,
            parse_iso_time(stamp) if isinstance(stamp, str) else time.time(),
            float(data.get("duration_seconds") or 0.0),
        )
