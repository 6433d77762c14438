"""The demo's settings: its configuration file, the exporter choice, and the compressed scenario."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from otelres.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from otelres.testing import Phase

__all__ = [
    "DEFAULT_DURATION",
    "MIN_DURATION",
    "DemoOptions",
    "demo_config",
    "demo_config_path",
    "scaled_scenario",
]

#: Seconds the demo runs when ``--duration`` is not given.
DEFAULT_DURATION = 40.0
#: The shortest run that still shows every phase.
MIN_DURATION = 10.0

# The exchanges the bot trades on; their breakers' open duration is scaled with the phases.
EXCHANGES = ("kraken", "binance")


@dataclass(frozen=True)
class DemoOptions:
    """What the command line asked for."""

    duration: float = DEFAULT_DURATION
    port: int | None = None
    """Port of the status page and probes; None: ``[health_checks] port``, or a free one if taken."""
    config: str | None = None
    """A configuration file to use instead of the demo's own."""
    exporter: str = "none"
    """``none`` or ``otlp`` (traces, metrics and logs to an OpenTelemetry Collector)."""
    otlp_endpoint: str | None = None
    otlp_protocol: str | None = None
    summary_json: str | None = None
    live: bool | None = None
    """Redraw a table in place (None: when standard output is a terminal)."""


def demo_config_path() -> Path:
    """The demo's own configuration file (package data)."""
    return Path(str(resources.files("otelres._demo").joinpath("demo.toml")))


def demo_config(options: DemoOptions, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration the demo runs with.

    The demo's ``demo.toml`` unless ``--config`` names a file. ``OTEL_*`` variables are
    honoured only with ``--exporter otlp`` (so that, by default, nothing is sent anywhere
    whatever the environment says); ``--otlp-endpoint``/``--otlp-protocol`` win over them.
    With the demo's own file and a run shorter than the default, the breakers' open
    duration shrinks with the phases so the story still fits.
    Raises :class:`~otelres.config.ConfigError` naming the file and key at fault.
    """
    env = dict(os.environ if environ is None else environ)
    if options.exporter != "otlp":
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
    env.pop("OTELRES_CONFIG", None)
    path = options.config or demo_config_path()
    config = load_config(path, environ=env)
    telemetry = config.telemetry
    if options.exporter == "otlp":
        changes: dict[str, object] = {
            "traces_exporter": ("otlp",),
            "metrics_exporter": ("otlp",),
            "logs_exporter": ("otlp",),
        }
        if options.otlp_endpoint:
            if not options.otlp_endpoint.startswith(("http://", "https://")):
                # Without a scheme the gRPC exporter silently switches to TLS.
                raise ConfigError(
                    [
                        "--otlp-endpoint: expected a URL starting with http:// or https://, "
                        f"got {options.otlp_endpoint!r}"
                    ]
                )
            changes["otlp_endpoint"] = options.otlp_endpoint
        if options.otlp_protocol:
            if options.otlp_protocol not in ("grpc", "http/protobuf"):
                raise ConfigError(
                    [f"--otlp-protocol: expected grpc or http/protobuf, got {options.otlp_protocol!r}"]
                )
            changes["otlp_protocol"] = options.otlp_protocol
        telemetry = dataclasses.replace(telemetry, **changes)  # type: ignore[arg-type]
    else:
        # The demo serves /metrics itself; every other exporter stays off.
        telemetry = dataclasses.replace(
            telemetry, traces_exporter=("none",), metrics_exporter=("none",), logs_exporter=("none",)
        )
    resilience = config.resilience
    if options.config is None and options.duration < DEFAULT_DURATION:
        scale = options.duration / DEFAULT_DURATION
        breakers = dict(resilience.circuit_breaker)
        for name in EXCHANGES:
            settings = resilience.breaker(name)
            breakers[name] = dataclasses.replace(
                settings, timeout_seconds=max(0.5, settings.timeout_seconds * scale)
            )
        resilience = dataclasses.replace(resilience, circuit_breaker=breakers)
    return dataclasses.replace(config, telemetry=telemetry, resilience=resilience)


def scaled_scenario(duration: float) -> tuple[Phase, ...]:
    """:data:`~otelres.testing.DEMO_SCENARIO` stretched or compressed to last *duration* seconds."""
    from otelres.testing import DEMO_SCENARIO, Phase

    total = sum(phase.duration for phase in DEMO_SCENARIO)
    scale = duration / total
    return tuple(Phase(p.name, p.duration * scale, p.faults) for p in DEMO_SCENARIO)
