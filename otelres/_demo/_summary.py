"""The demo's closing summary: calls, retries, rejections, transitions, final health."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otelres._demo._bot import BotStats

__all__ = ["build_summary", "metric_totals", "render_summary"]


def metric_totals(metrics_data: Any, names: Sequence[str]) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """The data points ``(attributes, value)`` of each metric in *names* from an SDK collection."""
    found: dict[str, list[tuple[dict[str, Any], float]]] = {name: [] for name in names}
    if metrics_data is None:
        return found
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name not in found:
                    continue
                for point in metric.data.data_points:
                    # Sums and gauges carry a value; histograms a count of recordings.
                    value = getattr(point, "value", None)
                    if value is None:
                        value = getattr(point, "count", 0)
                    found[metric.name].append((dict(point.attributes or {}), float(value or 0)))
    return found


def build_summary(
    *,
    elapsed: float,
    phases: Sequence[str],
    bots: Sequence[BotStats],
    snapshot: Mapping[str, Any],
    transitions: Mapping[str, Counter[tuple[str, str]]],
    final_health: Mapping[str, Any],
    red_seen: Sequence[str],
    served: Mapping[str, int],
    retry_attempts: float | None,
    exporter: str,
    url: str,
) -> dict[str, Any]:
    """The summary as plain data (what ``--summary-json`` writes)."""
    retries = list(snapshot.get("retries", []))
    limiters = list(snapshot.get("limiters", []))
    breakers = {b["name"]: b for b in snapshot.get("breakers", [])}
    return {
        "elapsed_seconds": round(elapsed, 2),
        "phases": list(phases),
        "url": url,
        "exporter": exporter,
        "calls": {
            "total": sum(b.calls for b in bots),
            "ok": sum(b.ok for b in bots),
            "failed": sum(b.failed for b in bots),
            "rejected": sum(b.rejected for b in bots),
            "limited": sum(b.limited for b in bots),
            "orders": sum(b.orders for b in bots),
            "by_exchange": {b.exchange: b.to_dict() for b in bots},
        },
        "retries": {
            "attempts": None if retry_attempts is None else int(retry_attempts),
            "recovered": sum(r["success_with_retry"] for r in retries),
            "gave_up": sum(r["failed_with_retry"] for r in retries),
            "by_name": {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in retries},
        },
        "rejections": {
            "breaker": sum(b["rejected"] for b in breakers.values()),
            "limiter": sum(lim["rejected"] for lim in limiters),
            "limiter_waits": sum(lim["waited"] for lim in limiters),
        },
        "breakers": {
            name: {
                "final_state": breakers[name]["state"] if name in breakers else None,
                "calls": breakers[name]["calls"] if name in breakers else 0,
                "rejected": breakers[name]["rejected"] if name in breakers else 0,
                "transitions": [
                    {"from": a, "to": b, "count": n} for (a, b), n in sorted(pairs.items())
                ],
            }
            for name, pairs in sorted(transitions.items())
        },
        "health": {
            "final": final_health.get("overall"),
            "checks": dict(final_health.get("checks", {})),
            "red_seen": list(red_seen),
        },
        "served": dict(sorted(served.items())),
    }


def render_summary(summary: Mapping[str, Any]) -> list[str]:
    """The summary as the lines printed at the end of the demo."""
    calls = summary["calls"]
    retries = summary["retries"]
    rejections = summary["rejections"]
    health = summary["health"]
    lines = [
        f"otelres demo finished after {summary['elapsed_seconds']:.1f} s "
        f"({' -> '.join(summary['phases'])})",
        "",
        f"  calls         the bot made {calls['total']} ccxt calls: {calls['ok']} ok, "
        f"{calls['failed']} failed after retries, {calls['rejected']} rejected by open breakers, "
        f"{calls['limited']} by rate limiters; {calls['orders']} orders placed",
    ]
    attempts = retries["attempts"]
    attempts_text = "" if attempts is None else f"{attempts} retry attempts; "
    lines.append(
        f"  retries       {attempts_text}{retries['recovered']} calls recovered by a retry, "
        f"{retries['gave_up']} gave up"
    )
    by_breaker = ", ".join(f"{name} {b['rejected']}" for name, b in summary["breakers"].items())
    lines.append(
        f"  rejections    {rejections['breaker']} calls refused by open breakers ({by_breaker}; "
        f"health probes included), {rejections['limiter']} by rate limiters; "
        f"{rejections['limiter_waits']} calls waited for tokens"
    )
    first = True
    for name, breaker in summary["breakers"].items():
        pairs = ", ".join(
            f"{t['from'].replace('_', '-')}->{t['to'].replace('_', '-')} {t['count']}"
            for t in breaker["transitions"]
        ) or "none"
        label = "  transitions   " if first else "                "
        lines.append(f"{label}{name}: {pairs} (now {str(breaker['final_state']).replace('_', '-')})")
        first = False
    checks = ", ".join(f"{name} {status}" for name, status in health["checks"].items())
    final = str(health["final"] or "unknown").upper()
    lines.append(f"  final health  {final} ({checks})")
    if health["red_seen"]:
        lines.append(f"                RED during the run: {', '.join(health['red_seen'])}")
    served = ", ".join(f"{path} {count}" for path, count in summary["served"].items()) or "nothing"
    lines.append(f"  served        {served} (requests to {summary['url']})")
    return lines
