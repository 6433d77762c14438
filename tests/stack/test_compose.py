"""collector/docker-compose.yml is runnable as written (checked statically: no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.stack._assets import COMPOSE, DASHBOARD_DIR, GRAFANA, load_yaml

# image:tag with a concrete version (digits), never latest or a floating major.
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+$")
EXPECTED_IMAGES = {
    "otel-collector": "otel/opentelemetry-collector-contrib",
    "jaeger": "jaegertracing/all-in-one",
    "prometheus": "prom/prometheus",
    "grafana": "grafana/grafana",
}


@pytest.fixture(name="services")
def _services() -> dict[str, Any]:
    return load_yaml(COMPOSE)["services"]


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path resolved against the compose file, container path) of each bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE.parent / source).resolve(), target))
    return mounts


def test_the_stack_has_collector_jaeger_prometheus_and_grafana_on_pinned_images(
    services: dict[str, Any],
) -> None:
    """Each service runs the expected image at an exact version (no latest, no floating tag)."""
    assert set(services) == set(EXPECTED_IMAGES)
    for name, repository in EXPECTED_IMAGES.items():
        image = services[name]["image"]
        assert image.split(":")[0] == repository, name
        assert PINNED.match(image), f"{name}: image {image!r} is not pinned to an exact version"


def test_every_mounted_file_exists(services: dict[str, Any]) -> None:
    """Every bind-mounted file or directory is in the repository."""
    mounts = [mount for service in services.values() for mount in bind_mounts(service)]
    assert len(mounts) >= 6
    for source, _target in mounts:
        assert source.exists(), f"{source} is mounted but missing"


def test_collector_gets_the_repository_pipeline(services: dict[str, Any]) -> None:
    """The Collector container runs otel-collector.yaml from the repository root."""
    collector = services["otel-collector"]
    mounts = dict((target, source) for source, target in bind_mounts(collector))
    config_arg = next(arg for arg in collector["command"] if arg.startswith("--config="))
    container_path = config_arg.split("=", 1)[1]
    assert mounts[container_path] == COMPOSE.parent.parent.resolve() / "otel-collector.yaml"


def test_prometheus_loads_the_rules_its_config_names(services: dict[str, Any]) -> None:
    """prometheus.yml is mounted where --config.file points and rule_files match the mounted rules."""
    prometheus = services["prometheus"]
    mounts = dict((target, source) for source, target in bind_mounts(prometheus))
    config_path = next(
        arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")
    )
    config = load_yaml(mounts[config_path])
    rules_dir = next(target for target, source in mounts.items() if source.name == "rules")
    for pattern in config["rule_files"]:
        assert pattern.startswith(rules_dir + "/"), f"{pattern} is outside the mounted rules"
        assert list(mounts[rules_dir].glob(pattern.rsplit("/", 1)[1])), f"{pattern} matches no rules"


def test_grafana_provisioning_points_at_mounted_dashboards_and_running_services(
    services: dict[str, Any],
) -> None:
    """The dashboard provider reads the mounted JSON; the data sources reach compose services."""
    grafana = services["grafana"]
    mounts = dict((target, source) for source, target in bind_mounts(grafana))
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"][0]
    assert mounts[provider["options"]["path"]] == DASHBOARD_DIR.resolve()
    assert list(DASHBOARD_DIR.glob("*.json"))
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, filename = home.rsplit("/", 1)
    assert (mounts[directory] / filename).exists(), f"home dashboard {home} is not mounted"

    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    by_type = {source["type"]: source for source in datasources}
    assert set(by_type) == {"prometheus", "jaeger"}
    for kind, port in (("prometheus", 9090), ("jaeger", 16686)):
        host_port = by_type[kind]["url"].split("://", 1)[1]
        assert host_port == f"{kind}:{port}", by_type[kind]["url"]
        assert kind in services
    assert by_type["prometheus"]["uid"] == "prometheus"
    assert [source for source in datasources if source.get("isDefault")] == [by_type["prometheus"]]


def test_ports_users_open_are_published(services: dict[str, Any]) -> None:
    """OTLP 4317/4318, Grafana 3000, Jaeger UI 16686 and Prometheus 9090 reach the host."""

    def published(name: str) -> set[int]:
        return {int(str(port).split(":")[0]) for port in services[name].get("ports", [])}

    assert {4317, 4318} <= published("otel-collector")
    assert 3000 in published("grafana")
    assert 16686 in published("jaeger")
    assert 9090 in published("prometheus")


def test_services_start_after_what_they_send_to(services: dict[str, Any]) -> None:
    """The Collector waits for Jaeger, Prometheus for the Collector, Grafana for both backends."""
    assert "jaeger" in services["otel-collector"]["depends_on"]
    assert "otel-collector" in services["prometheus"]["depends_on"]
    assert {"prometheus", "jaeger"} <= set(services["grafana"]["depends_on"])
