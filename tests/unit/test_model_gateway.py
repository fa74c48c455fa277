"""The model gateway: a tenant's configuration (or the deployment's) becomes a cached model chain."""

from __future__ import annotations

from typing import Any

import pytest

from shared.model.chat_answers import LangChainAnswerModel
from shared.model.extractive import ExtractiveModel
from shared.model.factory import ModelNotConfigured
from shared.model.gateway import ConfiguredModelGateway
from shared.model.openai_compatible import OpenAICompatibleChatModel
from shared.model.resilience import CircuitBreakers, FallbackAnswerModel
from shared.model.secrets import StaticSecrets
from shared.settings import Settings
from shared.tenant_config import TenantConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tenants:
    def __init__(self, configs: dict[str, dict[str, Any]]) -> None:
        self.configs = configs
        self.reads = 0

    def __call__(self, tenant_id: str) -> TenantConfig | None:
        self.reads += 1
        raw = self.configs.get(tenant_id)
        return TenantConfig.model_validate(raw) if raw is not None else None


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bedrock targets build a boto3 client; without credentials it would ask the metadata service."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


ONPREM = {"provider": "openai", "model": "qwen", "endpoint": "http://10.0.0.5:8000/v1", "apiKeySecret": "kefu/acme"}


def gateway(
    tenants: Tenants,
    settings: Settings | None = None,
    secrets: dict[str, str] | None = None,
    clock: Clock | None = None,
) -> ConfiguredModelGateway:
    return ConfiguredModelGateway(
        settings or Settings(tenant_config_ttl_seconds=30),
        tenants,
        StaticSecrets(secrets if secrets is not None else {"kefu/acme": "sk-acme"}),
        CircuitBreakers(3, 30),
        clock=clock or Clock(),
    )


def chat_models(model: Any) -> list[OpenAICompatibleChatModel]:
    assert isinstance(model, FallbackAnswerModel)
    return [target.model._chat_model for target in model.targets]  # type: ignore[attr-defined]


def test_a_tenant_without_model_settings_gets_the_deployment_extractive_default() -> None:
    chosen = gateway(Tenants({"t": {}})).for_tenant("t")

    assert isinstance(chosen.model, ExtractiveModel)
    assert chosen.cacheable is False and chosen.label == "extractive:default"


def test_a_tenant_model_with_its_key_from_the_secret_and_a_fallback_chain() -> None:
    config = {"model": {**ONPREM, "fallbacks": [{"provider": "bedrock", "model": "amazon.nova-lite-v1:0"}]}}

    chosen = gateway(Tenants({"t": config})).for_tenant("t")

    assert chosen.cacheable and chosen.label == "openai:qwen"
    model = chosen.model
    assert isinstance(model, FallbackAnswerModel) and [t.label for t in model.targets] == [
        "openai:qwen",
        "bedrock:amazon.nova-lite-v1:0",
    ]
    onprem = model.targets[0].model._chat_model  # type: ignore[attr-defined]
    assert onprem.api_key.get_secret_value() == "sk-acme" and onprem.base_url == "http://10.0.0.5:8000/v1"


def test_the_tenant_prompt_language_and_threshold_shape_the_model() -> None:
    config = {
        "model": {**ONPREM, "systemPrompt": "Sign as Ada.", "answerLanguage": "ja"},
        "retrieval": {"minAnswerScore": 0.2},
    }

    model = gateway(Tenants({"t": config})).for_tenant("t").model

    answerer = model.targets[0].model  # type: ignore[attr-defined]
    assert isinstance(answerer, LangChainAnswerModel)
    assert "Sign as Ada." in answerer._system_prompt and "Always answer in Japanese" in answerer._system_prompt
    assert answerer._min_answer_score == 0.2


def test_azure_targets_send_the_api_key_header_and_version() -> None:
    azure = {
        "provider": "azure",
        "endpoint": "https://acme.openai.azure.com/openai/deployments/gpt-4o",
        "apiVersion": "2024-10-21",
        "apiKeySecret": "kefu/acme",
    }

    [chat] = chat_models(gateway(Tenants({"t": {"model": azure}})).for_tenant("t").model)

    assert chat.auth_header == "api-key" and chat.query == {"api-version": "2024-10-21"}


def test_the_deployment_model_takes_the_tenants_parameters() -> None:
    settings = Settings(llm_provider="openai", llm_base_url="http://gpu:8000/v1", llm_model="m", llm_api_key="sk-dep")

    [chat] = chat_models(
        gateway(Tenants({"t": {"model": {"parameters": {"maxTokens": 99}}}}), settings).for_tenant("t").model
    )

    assert chat.max_tokens == 99 and chat.api_key is not None and chat.api_key.get_secret_value() == "sk-dep"


def test_the_deployment_key_never_goes_to_a_tenants_own_server() -> None:
    settings = Settings(llm_provider="openai", llm_base_url="http://gpu:8000/v1", llm_model="m", llm_api_key="sk-dep")
    tenant = {"provider": "openai", "model": "x", "endpoint": "http://tenant-box/v1"}

    [chat] = chat_models(gateway(Tenants({"t": {"model": tenant}}), settings).for_tenant("t").model)

    assert chat.api_key is None


def test_deployment_fallbacks_apply_to_tenants_on_the_deployment_model() -> None:
    settings = Settings(
        llm_provider="openai",
        llm_base_url="http://gpu:8000/v1",
        llm_model="m",
        llm_fallbacks=[{"provider": "bedrock", "model": "amazon.nova-lite-v1:0"}],
    )

    model = gateway(Tenants({"t": {}}), settings).for_tenant("t").model

    assert [t.label for t in model.targets] == ["openai:m", "bedrock:amazon.nova-lite-v1:0"]  # type: ignore[attr-defined]


def test_models_are_built_once_per_configuration_and_the_config_is_reread_after_its_ttl() -> None:
    clock, tenants = Clock(), Tenants({"a": {"model": ONPREM}, "b": {"model": ONPREM}})
    models = gateway(tenants, clock=clock)

    first = models.for_tenant("a")
    assert models.for_tenant("a") is first and models.for_tenant("b") is first  # same config, same model
    assert tenants.reads == 2

    tenants.configs["a"] = {"model": {**ONPREM, "systemPrompt": "New tone."}}
    assert models.for_tenant("a") is first  # within the TTL
    clock.now += 31
    changed = models.for_tenant("a")
    assert changed is not first and changed.identity != first.identity


def test_a_target_that_cannot_be_built_is_skipped_and_retried_sooner() -> None:
    config = {"model": {**ONPREM, "apiKeySecret": "kefu/missing", "fallbacks": [{"provider": "bedrock", "model": "m"}]}}
    clock = Clock()
    models = gateway(Tenants({"t": config}), clock=clock)

    chosen = models.for_tenant("t")

    assert [t.label for t in chosen.model.targets] == ["bedrock:m"]  # type: ignore[attr-defined]
    clock.now += 61
    assert models.for_tenant("t") is not chosen


def test_nothing_buildable_is_a_clear_error() -> None:
    with pytest.raises(ModelNotConfigured, match="kefu/missing"):
        gateway(Tenants({"t": {"model": {**ONPREM, "apiKeySecret": "kefu/missing"}}})).for_tenant("t")


def test_an_unknown_tenant_gets_the_deployment_model() -> None:
    assert isinstance(gateway(Tenants({})).for_tenant("nobody").model, ExtractiveModel)


def test_a_tenants_stop_sequences_reach_every_providers_request() -> None:
    """model.parameters.stop is validated with the tenant's config and sent in each wire format."""
    from langchain_core.messages import HumanMessage

    stop = {"parameters": {"stop": ["\nVisitor:", "###"]}}
    config = {
        "model": {
            **ONPREM,
            **stop,
            "fallbacks": [
                {"provider": "bedrock", "model": "amazon.nova-lite-v1:0", **stop},
                {"provider": "sagemaker", "endpoint": "tgi-endpoint", "payloadFormat": "generate", **stop},
            ],
        }
    }
    model = gateway(Tenants({"t": config})).for_tenant("t").model
    openai, bedrock, sagemaker = [target.model._chat_model for target in model.targets]  # type: ignore[attr-defined]
    messages = [HumanMessage("hi")]

    assert openai._payload(messages, None, stream=True)["stop"] == ["\nVisitor:", "###"]
    assert bedrock._request(messages, None)["inferenceConfig"]["stopSequences"] == ["\nVisitor:", "###"]
    assert sagemaker._body(messages, None)["parameters"]["stop"] == ["\nVisitor:", "###"]
    # A caller's own stop list still wins over the tenant's.
    assert openai._payload(messages, ["END"], stream=False)["stop"] == ["END"]


def test_the_deployment_model_takes_the_tenants_stop_sequences() -> None:
    settings = Settings(llm_provider="openai", llm_base_url="http://gpu:8000/v1", llm_model="m")

    [chat] = chat_models(
        gateway(Tenants({"t": {"model": {"parameters": {"stop": ["</s>"]}}}}), settings).for_tenant("t").model
    )

    assert chat._payload([], None, stream=True)["stop"] == ["</s>"]
