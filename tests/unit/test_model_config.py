"""Per-tenant model configuration: what each provider needs, secrets only as references, the admin API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shared.admin.app import create_app
from shared.admin.deps import _store, require_admin
from shared.state.records import Tenant
from shared.tenant_config import TenantConfig
from shared.tenant_config.model import ModelConfig, ModelTarget
from tests.unit.fakes import InMemoryStateStore


def problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        ModelConfig.model_validate(raw)
    return str(caught.value)


def test_empty_means_the_deployment_model_and_keeps_old_tenants_valid() -> None:
    config = ModelConfig.model_validate({})

    assert config.provider is None and config.primary() is None
    assert config.answer_language == "auto" and config.answer_cache is True
    assert TenantConfig.model_validate({}).model.primary() is None


def test_a_full_configuration_round_trips_in_camel_case() -> None:
    raw = {
        "provider": "openai",
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "endpoint": "https://vllm.corp.example:8443/v1",
        "apiKeySecret": "kefu/prod/models/acme-vllm",
        "clientCertSecret": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:kefu/prod/models/acme-mtls-AbCdEf",
        "timeoutSeconds": 8,
        "parameters": {"temperature": 0.1, "maxTokens": 400},
        "systemPrompt": "You are Acme's friendly assistant.",
        "answerLanguage": "zh-CN",
        "fallbacks": [{"provider": "bedrock", "model": "anthropic.claude-3-5-haiku-20241022-v1:0"}],
    }

    config = ModelConfig.model_validate(raw)
    dumped = config.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    assert dumped == raw
    primary = config.primary()
    assert primary is not None and primary.provider == "openai" and primary.parameters.max_tokens == 400
    assert config.fallbacks[0].label() == "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"provider": "openai", "model": "m"}, "needs 'endpoint'"),
        ({"provider": "openai", "endpoint": "http://gpu:8000/v1"}, "needs 'model'"),
        ({"provider": "openai", "model": "m", "endpoint": "gpu:8000"}, "http(s) URL"),
        ({"provider": "openai", "model": "m", "endpoint": "https://u:p@gpu/v1"}, "must not carry credentials"),
        ({"provider": "openai", "model": "m", "endpoint": "https://gpu/v1?key=abc"}, "must not have a query"),
        ({"provider": "openai", "model": "m", "endpoint": "http://169.254.169.254/v1"}, "link-local"),
        (
            {"provider": "azure", "endpoint": "https://a.openai.azure.com/openai/deployments/gpt", "apiKeySecret": "k"},
            "apiVersion",
        ),
        (
            {"provider": "azure", "endpoint": "https://a.openai.azure.com/openai/v1", "model": "gpt"},
            "needs 'apiKeySecret'",
        ),
        ({"provider": "bedrock"}, "needs 'model'"),
        ({"provider": "bedrock", "model": "anthropic.claude", "endpoint": "http://x"}, "takes no 'endpoint'"),
        ({"provider": "sagemaker", "endpoint": "https://runtime.sagemaker"}, "endpoint name"),
        ({"provider": "bedrock", "model": "m", "apiKeySecret": "s"}, "only for providers openai and azure"),
        (
            {"provider": "openai", "model": "m", "endpoint": "http://g/v1", "payloadFormat": "generate"},
            "only for provider sagemaker",
        ),
        ({"provider": "bedrock", "model": "m", "region": "mars-1"}, "not an AWS region"),
        ({"provider": "vllm"}, "provider"),
        ({"model": "m"}, "need a 'provider'"),
        ({"answerLanguage": "Klingon please"}, "language tag"),
        ({"systemPrompt": "x" * 4001}, "at most 4000"),
        ({"fallbacks": [{"provider": "bedrock", "model": "m"}] * 4}, "at most 3"),
        ({"temperature": 0.5}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_configurations_say_why(raw: dict[str, Any], reason: str) -> None:
    assert reason in problems(raw)


@pytest.mark.parametrize("pasted", ["sk-proj-abc123def456", "Bearer abc", "hf_abcdef", "has spaces in it", ""])
def test_secret_fields_take_references_never_keys(pasted: str) -> None:
    message = problems({"provider": "openai", "model": "m", "endpoint": "http://gpu/v1", "apiKeySecret": pasted})

    assert "apiKeySecret" in message or "api_key_secret" in message


def test_the_deployment_model_can_be_tuned_without_naming_a_provider() -> None:
    config = ModelConfig.model_validate({"parameters": {"maxTokens": 200}, "timeoutSeconds": 5, "systemPrompt": "Hi"})

    assert config.primary() is None and config.parameters.max_tokens == 200


def test_target_identity_changes_with_anything_that_changes_answers() -> None:
    base = ModelTarget(provider="bedrock", model="m")

    assert base.identity() == ModelTarget(provider="bedrock", model="m").identity()
    assert base.identity() != ModelTarget(provider="bedrock", model="m2").identity()
    assert (
        base.identity()
        != ModelTarget.model_validate(
            {"provider": "bedrock", "model": "m", "parameters": {"temperature": 0.9}}
        ).identity()
    )


# --- through the admin API (GET/PATCH /v1/tenants/{id}/config) ---


@pytest.fixture
def admin() -> tuple[TestClient, InMemoryStateStore]:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="t1", name="Acme", widget_key="wk", created_at=1))
    app = create_app()
    app.dependency_overrides[_store] = lambda: store
    app.dependency_overrides[require_admin] = lambda: None
    return TestClient(app), store


def test_admin_api_sets_a_model_chain_and_returns_references_only(admin: tuple[TestClient, InMemoryStateStore]) -> None:
    client, store = admin
    change = {
        "model": {
            "provider": "openai",
            "model": "qwen2.5",
            "endpoint": "http://10.20.0.5:8000/v1",
            "apiKeySecret": "kefu/prod/models/acme",
            "fallbacks": [{"provider": "bedrock", "model": "amazon.nova-lite-v1:0"}],
        }
    }

    response = client.patch("/v1/tenants/t1/config", json=change)

    assert response.status_code == 200, response.text
    model = client.get("/v1/tenants/t1/config").json()["model"]
    assert model["apiKeySecret"] == "kefu/prod/models/acme"
    assert model["fallbacks"][0]["provider"] == "bedrock"
    stored = store.tenants["t1"].config.model
    assert stored.primary() is not None and stored.primary().endpoint == "http://10.20.0.5:8000/v1"  # type: ignore[union-attr]


def test_admin_api_refuses_a_pasted_key_with_a_reason(admin: tuple[TestClient, InMemoryStateStore]) -> None:
    client, store = admin
    change = {"model": {"provider": "openai", "model": "m", "endpoint": "http://g/v1", "apiKeySecret": "sk-live-123"}}

    response = client.patch("/v1/tenants/t1/config", json=change)

    assert response.status_code == 400
    assert "Secrets Manager" in response.text
    assert "sk-live-123" not in response.text
    assert store.tenants["t1"].config.model.provider is None
