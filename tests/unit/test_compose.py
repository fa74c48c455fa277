"""Structure of local/docker-compose.yml (no Docker needed: the YAML is read, not run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "local" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # the "NAME=value" form
        return dict(item.split("=", 1) for item in environment)
    return {str(name): str(value) for name, value in environment.items()}


def _published(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[-1]) for mapping in service.get("ports", [])}


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kefu", "opensearch", "dynamodb", "redis"}


def test_kefu_is_built_from_the_repo_and_runs_the_local_runner(compose: dict[str, Any]) -> None:
    kefu = compose["services"]["kefu"]
    assert kefu["build"]["context"] == ".."
    # The build context is relative to the compose file; the Dockerfile to the context.
    context = (COMPOSE.parent / kefu["build"]["context"]).resolve()
    assert context == ROOT
    dockerfile = context / kefu["build"]["dockerfile"]
    assert dockerfile.resolve() == (ROOT / "local" / "Dockerfile")
    assert dockerfile.is_file()
    assert kefu["command"][:3] == ["python", "-m", "local.run"]
    assert _published(kefu) == {8700, 8701}
    # The ports it publishes are the ones it is told to listen on.
    command = kefu["command"]
    assert command[command.index("--port") + 1] == "8700"
    assert command[command.index("--ws-port") + 1] == "8701"


def test_kefu_waits_for_healthy_backing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    depends_on = services["kefu"]["depends_on"]
    assert set(depends_on) == {"opensearch", "dynamodb", "redis"}
    for name, condition in depends_on.items():
        assert condition == {"condition": "service_healthy"}
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert services["kefu"]["healthcheck"]["test"]


def test_backing_services_images_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["opensearch"]["image"].startswith("opensearchproject/opensearch:2.")
    assert services["dynamodb"]["image"].startswith("amazon/dynamodb-local")
    assert services["redis"]["image"].startswith("redis:")
    assert _published(services["opensearch"]) == {9200}
    assert _published(services["dynamodb"]) == {8000}
    assert _published(services["redis"]) == {6379}
    opensearch = _environment(services["opensearch"])
    assert opensearch["discovery.type"] == "single-node"
    assert opensearch["DISABLE_SECURITY_PLUGIN"] == "true"


def test_every_kefu_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    environment = _environment(compose["services"]["kefu"])
    kefu_variables = {name for name in environment if name.startswith("KEFU_")}
    fields = {f"KEFU_{name.upper()}" for name in Settings.model_fields}
    assert kefu_variables, "the kefu service sets no KEFU_* variables"
    assert kefu_variables <= fields, f"not Settings fields: {sorted(kefu_variables - fields)}"


def test_kefu_points_at_the_compose_services(compose: dict[str, Any]) -> None:
    environment = _environment(compose["services"]["kefu"])
    assert environment["KEFU_DYNAMODB_ENDPOINT"] == "http://dynamodb:8000"
    assert environment["KEFU_REDIS_URL"].startswith("redis://redis:6379")
    assert environment["KEFU_OPENSEARCH_ENDPOINT"] == "http://opensearch:9200"
    assert environment["KEFU_KNOWLEDGE_BACKEND"] == "opensearch"
    # Plain HTTP OpenSearch: requests must not be SigV4-signed for a managed service.
    assert environment["KEFU_OPENSEARCH_SERVICE"] == "es"
    # Settings must accept these values as they are.
    values = {
        name.removeprefix("KEFU_").lower(): value
        for name, value in environment.items()
        if name.startswith("KEFU_") and "${" not in value
    }
    Settings.model_validate(values)
