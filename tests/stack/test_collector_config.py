"""otel-collector.yaml is a complete, consistent pipeline (no Collector binary runs here)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.stack._assets import COLLECTOR_CONFIG, COMPOSE, load_yaml

SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")
ENV_REF = re.compile(r"\$\{env:([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")
BARE_ENV = re.compile(r"\$(?!\{env:)\{?[A-Za-z_]")


@pytest.fixture(name="config")
def _config() -> dict[str, Any]:
    return load_yaml(COLLECTOR_CONFIG)


def config_body() -> str:
    """The file without its comment lines."""
    text = COLLECTOR_CONFIG.read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def env_defaults() -> dict[str, str]:
    """Every ${env:NAME:-default} the configuration uses, by NAME."""
    found: dict[str, str] = {}
    for name, default in ENV_REF.findall(config_body()):
        assert default, f"${{env:{name}}} in otel-collector.yaml has no default"
        assert found.setdefault(name, default) == default, f"{name} has two different defaults"
    return found


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def resolved(value: str, env: dict[str, str]) -> str:
    """*value* with its ${env:...} references replaced from *env*."""
    return ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2)), value)


def test_every_component_a_pipeline_uses_is_defined(config: dict[str, Any]) -> None:
    """Each receiver, processor and exporter named in a pipeline has a definition."""
    for signal, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in (config.get(kind) or {}), f"{signal}: {kind} {component!r} is not defined"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"], f"extension {extension!r} is not defined"


def test_every_defined_component_is_used(config: dict[str, Any]) -> None:
    """No receiver, processor or exporter is defined and then left out of every pipeline."""
    used = {
        (kind, name)
        for pipeline in config["service"]["pipelines"].values()
        for kind in ("receivers", "processors", "exporters")
        for name in pipeline.get(kind, [])
    }
    for kind in ("receivers", "processors", "exporters"):
        for name in config.get(kind) or {}:
            assert (kind, name) in used, f"{kind} {name!r} is defined but no pipeline uses it"


def test_traces_metrics_and_logs_each_have_a_pipeline(config: dict[str, Any]) -> None:
    """Traces go to Jaeger, metrics to the Prometheus endpoint, and every signal to debug."""
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    assert "otlp/jaeger" in pipelines["traces"]["exporters"]
    assert "prometheus" in pipelines["metrics"]["exporters"]
    for pipeline in pipelines.values():
        assert pipeline["receivers"] == ["otlp"]
        assert "debug" in pipeline["exporters"]


def test_memory_limiter_runs_first_and_batch_last(config: dict[str, Any]) -> None:
    """Every pipeline refuses data under memory pressure before batching it."""
    for signal, pipeline in config["service"]["pipelines"].items():
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter", signal
        assert processors[-1] == "batch", signal
    limiter = config["processors"]["memory_limiter"]
    assert "check_interval" in limiter
    assert {"limit_mib", "limit_percentage"} & set(limiter)


@pytest.mark.parametrize("limit_mib", ["64", "128", None])
def test_the_memory_limit_variable_never_makes_an_invalid_limiter(
    config: dict[str, Any], limit_mib: str | None
) -> None:
    """Whatever OTELCOL_MEMORY_LIMIT_MIB says, the spike allowance stays below the limit, as the Collector requires."""
    limiter = config["processors"]["memory_limiter"]
    env = {**env_defaults(), **({"OTELCOL_MEMORY_LIMIT_MIB": limit_mib} if limit_mib else {})}
    limit = int(resolved(str(limiter["limit_mib"]), env))
    # The Collector's default spike allowance is 20 % of the limit.
    spike = int(resolved(str(limiter.get("spike_limit_mib", limit // 5)), env))
    assert 0 < spike < limit


def test_otlp_receiver_listens_on_the_standard_ports(config: dict[str, Any]) -> None:
    """OTLP/gRPC listens on 4317 and OTLP/HTTP on 4318 (on all interfaces, for containers)."""
    env = env_defaults()
    protocols = config["receivers"]["otlp"]["protocols"]
    grpc = resolved(protocols["grpc"]["endpoint"], env)
    http = resolved(protocols["http"]["endpoint"], env)
    assert (grpc, http) == ("0.0.0.0:4317", "0.0.0.0:4318")


def test_health_check_extension_is_enabled(config: dict[str, Any]) -> None:
    """The health_check extension is defined, enabled, and listens on 13133."""
    assert "health_check" in config["service"]["extensions"]
    assert port_of(resolved(config["extensions"]["health_check"]["endpoint"], env_defaults())) == 13133


def test_every_endpoint_is_an_environment_variable_with_a_default(config: dict[str, Any]) -> None:
    """Endpoints use ${env:NAME:-default}; no bare $VAR or default-less reference slips in."""
    assert not BARE_ENV.search(config_body()), "use ${env:NAME:-default}, not $NAME"
    endpoints = [
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        config["exporters"]["prometheus"]["endpoint"],
        config["exporters"]["otlp/jaeger"]["endpoint"],
        config["extensions"]["health_check"]["endpoint"],
    ]
    for endpoint in endpoints:
        assert ENV_REF.fullmatch(endpoint), f"{endpoint!r} is not overridable"
    env_defaults()


def test_every_variable_is_documented_in_the_header() -> None:
    """The comment block at the top lists each variable with its default."""
    header = COLLECTOR_CONFIG.read_text(encoding="utf-8").split("\n\n", 1)[0]
    for name, default in env_defaults().items():
        line = next((row for row in header.splitlines() if f" {name} " in row), None)
        assert line is not None, f"{name} is not described in the header"
        assert f"({default})" in line, f"{name}: the header does not show the default {default}"


def test_exporters_point_where_compose_runs_the_services(config: dict[str, Any]) -> None:
    """Jaeger's address, the scrape port and the receiver ports agree with docker-compose.yml."""
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    collector = services["otel-collector"]
    env = {**env_defaults(), **{k: str(v) for k, v in collector["environment"].items()}}
    assert set(collector["environment"]) <= set(env_defaults()), "compose sets variables the config ignores"

    jaeger_host, jaeger_port = resolved(config["exporters"]["otlp/jaeger"]["endpoint"], env).rsplit(":", 1)
    assert jaeger_host in services, f"Jaeger exporter targets {jaeger_host!r}, not a compose service"
    assert jaeger_port == "4317"
    assert config["exporters"]["otlp/jaeger"]["tls"]["insecure"] is True

    published = {int(str(port).split(":")[-1].split("/")[0]) for port in collector["ports"]}
    for endpoint in (
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        config["exporters"]["prometheus"]["endpoint"],
        config["extensions"]["health_check"]["endpoint"],
    ):
        assert port_of(resolved(endpoint, env)) in published, f"{endpoint} is not published by compose"

    scrape = load_yaml(COMPOSE.parent / "prometheus" / "prometheus.yml")
    targets = {
        target
        for job in scrape["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    prometheus_port = port_of(resolved(config["exporters"]["prometheus"]["endpoint"], env))
    assert f"otel-collector:{prometheus_port}" in targets
    telemetry_port = port_of(resolved(config["service"]["telemetry"]["metrics"]["address"], env))
    assert f"otel-collector:{telemetry_port}" in targets


def test_collector_job_keeps_the_resource_labels() -> None:
    """Prometheus scrapes the Collector with honor_labels, so job/instance match target_info."""
    scrape = load_yaml(COMPOSE.parent / "prometheus" / "prometheus.yml")
    job = next(
        job
        for job in scrape["scrape_configs"]
        if any("otel-collector:8889" in s["targets"] for s in job.get("static_configs", []))
    )
    assert job.get("honor_labels") is True
