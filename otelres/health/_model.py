"""The result model: :class:`HealthStatus` and :class:`HealthResult`."""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

__all__ = ["HealthResult", "HealthStatus"]


class HealthStatus(str, enum.Enum):
    """GREEN, YELLOW or RED; compares and serialises as the strings ``"green"``, ``"yellow"``, ``"red"``.

    ``level`` is the number published on the ``otelres.health.status`` gauge (0, 1, 2)
    and :meth:`worst` combines statuses the way the overall status is computed::

        >>> HealthStatus.worst([HealthStatus.GREEN, HealthStatus.YELLOW])
        <HealthStatus.YELLOW: 'yellow'>
    """

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def level(self) -> int:
        """0 for GREEN, 1 for YELLOW, 2 for RED (the gauge value and the CLI exit status)."""
        return _LEVELS[self]

    @classmethod
    def worst(cls, statuses: Iterable[HealthStatus]) -> HealthStatus:
        """The worst of *statuses*; GREEN when there are none."""
        worst = cls.GREEN
        for status in statuses:
            if _LEVELS[status] > _LEVELS[worst]:
                worst = status
        return worst

    def __str__(self) -> str:
        return self.value


_LEVELS = {HealthStatus.GREEN: 0, HealthStatus.YELLOW: 1, HealthStatus.RED: 2}


@dataclass(frozen=True)
class HealthResult:
    """What one check found.

    Checks usually build results with :meth:`green`, :meth:`yellow` or :meth:`red` and
    leave ``name``, ``duration`` and ``timestamp`` to the checker, which fills them in::

        return HealthResult.yellow("slow", latency={"value": 1.7, "unit": "s"})

    ``details`` holds what was observed (JSON-serialisable values; for a measurement a
    ``{"value": ..., "unit": ...}`` mapping), ``duration`` the seconds the check took,
    ``timestamp`` the wall-clock time (Unix seconds) it finished, and ``error`` the
    exception text when the check raised or timed out.
    """

    name: str
    status: HealthStatus
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    timestamp: float = field(default_factory=time.time)
    error: str | None = None

    @classmethod
    def green(cls, message: str = "ok", *, name: str = "", **details: Any) -> HealthResult:
        """A GREEN result; keyword arguments become ``details``."""
        return cls(name, HealthStatus.GREEN, message, details)

    @classmethod
    def yellow(cls, message: str, *, name: str = "", **details: Any) -> HealthResult:
        """A YELLOW (degraded) result; keyword arguments become ``details``."""
        return cls(name, HealthStatus.YELLOW, message, details)

    @classmethod
    def red(
        cls, message: str, *, name: str = "", error: str | None = None, **details: Any
    ) -> HealthResult:
        """A RED (failing) result; keyword arguments become ``details``."""
        return cls(name, HealthStatus.RED, message, details, error=error)

    def with_(self, **changes: Any) -> HealthResult:
        """A copy with *changes* applied (results are immutable)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (one entry of the report's ``checks``).

        Keys: ``name``, ``status``, ``message``, ``details``, ``duration_seconds``,
        ``timestamp`` (ISO 8601, UTC) and ``error`` (null unless the check failed by raising
        or timing out).
        """
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "details": dict(self.details),
            "duration_seconds": round(self.duration, 6),
            "timestamp": iso_time(self.timestamp),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthResult:
        """Rebuild a result from :meth:`to_dict` output (what ``otelres health --url`` reads).

        Raises ``ValueError`` naming the field that is missing or invalid.
        """
        try:
            status = HealthStatus(data["status"])
        except KeyError:
            raise ValueError("check result has no 'status'") from None
        except ValueError:
            raise ValueError(f"check result has an invalid status {data['status']!r}") from None
        stamp = data.get("timestamp")
        return cls(
            name=str(data.get("name", "")),
            status=status,
            message=str(data.get("message", "")),
            details=dict(data.get("details") or {}),
            duration=float(data.get("duration_seconds") or 0.0),
            timestamp=parse_iso_time(stamp) if isinstance(stamp, str) else time.time(),
            error=data.get("error"),
        )


def iso_time(timestamp: float) -> str:
    """*timestamp* (Unix seconds) as ISO 8601 in UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_time(text: str) -> float:
    """The Unix time of an ISO 8601 string as :func:`iso_time` writes it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
