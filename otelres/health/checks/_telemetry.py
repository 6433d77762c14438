"""Built-in check: did the last telemetry export succeed?"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from otelres.health._check import HealthCheck
from otelres.health._model import HealthResult, HealthStatus

__all__ = ["TelemetryExportCheck"]


class TelemetryExportCheck(HealthCheck):
    """YELLOW when the last export of spans, metrics or logs failed; GREEN otherwise.

    Reads :func:`otelres.telemetry.export_status` (a record with ``ok``, ``last_error``
    and ``at``), which :func:`otelres.configure` keeps up to date. A process that never
    configured telemetry has nothing to export and is GREEN, and the check does not
    import the telemetry module (and with it the SDK) just to find that out.
    YELLOW, not RED: the application works without its telemetry.

    *status* replaces the lookup (a function returning such a record).
    """

    def __init__(
        self,
        *,
        name: str = "telemetry",
        tags: Iterable[str] = ("telemetry",),
        status: Callable[[], Any] | None = None,
    ) -> None:
        self.name = name
        self.tags = frozenset(tags)
        self._status = status

    def check(self) -> HealthResult:
        """Judge the export status record: a failed last export is YELLOW."""
        record = self._record()
        if record is None:
            return HealthResult(self.name, HealthStatus.GREEN, "telemetry not configured in this process")
        ok = getattr(record, "ok", None)
        error = getattr(record, "last_error", None)
        at = getattr(record, "at", None)
        signal = getattr(record, "signal", None)
        details: dict[str, Any] = {"ok": ok, "last_error": error}
        if signal is not None:
            details["signal"] = signal
        failures = getattr(record, "failures", None)
        if failures is not None:
            details["failures"] = failures
        if at is not None:
            details["age"] = {"value": round(max(0.0, time.time() - at), 3), "unit": "s"}
        if ok is None:
            return HealthResult(self.name, HealthStatus.GREEN, "no export attempted yet", details)
        if ok:
            return HealthResult(self.name, HealthStatus.GREEN, "last export succeeded", details)
        what = f"last {signal} export" if signal else "last export"
        return HealthResult(
            self.name, HealthStatus.YELLOW, f"{what} failed: {error or 'unknown error'}", details
        )

    def _record(self) -> Any:
        """The export status record, or None when telemetry was never configured here."""
        if self._status is not None:
            return self._status()
        module = sys.modules.get("otelres.telemetry")
        export_status = getattr(module, "export_status", None)
        if export_status is None:
            return None
        return export_status()
