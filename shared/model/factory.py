"""Builds answer models from configuration. A provider's libraries are imported only when a model of
that provider is built: the extractive default never pays for langchain-core, and only Bedrock or
SageMaker targets create boto3 clients for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from shared.errors import KefuError, describe_validation_error
from shared.model.answer_model import AnswerModel
from shared.model.extractive import ExtractiveModel
from shared.settings import Settings
from shared.tenant_config.model import ModelParameters, ModelTarget

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from shared.model.secrets import SecretResolver


class ModelNotConfigured(KefuError):
    """The settings select a model provider without the values it needs."""

    code = "model_not_configured"


# What each provider needs from the KEFU_LLM_* settings, with an example.
_DEPLOYMENT_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (("KEFU_LLM_BASE_URL", "llm_base_url"), ("KEFU_LLM_MODEL", "llm_model")),
    "azure": (("KEFU_LLM_BASE_URL", "llm_base_url"),),
    "bedrock": (("KEFU_LLM_MODEL", "llm_model"),),
    "sagemaker": (("KEFU_LLM_BASE_URL", "llm_base_url"),),
}
_EXAMPLES = {
    "openai": "e.g. KEFU_LLM_BASE_URL=http://localhost:8000/v1, KEFU_LLM_MODEL=<served model name>",
    "azure": "e.g. KEFU_LLM_BASE_URL=https://<resource>.openai.azure.com/openai/deployments/<deployment>",
    "bedrock": "e.g. KEFU_LLM_MODEL=anthropic.claude-3-5-haiku-20241022-v1:0 or an inference profile id",
    "sagemaker": "KEFU_LLM_BASE_URL is the SageMaker endpoint name",
}


# The admin API's field names, as the deployment's settings spell them.
_SETTING_NAMES = {
    "endpoint": "KEFU_LLM_BASE_URL",
    "model": "KEFU_LLM_MODEL",
    "apiKeySecret": "KEFU_LLM_API_KEY_SECRET",
    "apiVersion": "KEFU_LLM_API_VERSION",
}


def build_answer_model(settings: Settings, secrets: SecretResolver | None = None) -> AnswerModel:
    """The deployment's model (``KEFU_LLM_*``), one target, without retries or fallbacks (the
    gateway in shared/model/gateway.py adds those)."""
    return build_target(
        deployment_target(settings),
        settings=settings,
        secrets=secrets,
        api_key=settings.llm_api_key,
        min_answer_score=settings.min_answer_score,
    )


def deployment_target(settings: Settings) -> ModelTarget:
    provider = settings.llm_provider
    if provider == "extractive":
        return ModelTarget(provider="extractive")
    missing = [
        name
        for name, field in _DEPLOYMENT_NEEDS.get(provider, ())
        if not ((value := getattr(settings, field)) and str(value).strip())
    ]
    if missing:
        raise ModelNotConfigured(f"KEFU_LLM_PROVIDER={provider} needs {' and '.join(missing)} ({_EXAMPLES[provider]})")
    fields = {
        "provider": provider,
        "model": settings.llm_model or None,
        "endpoint": settings.llm_base_url.strip() if settings.llm_base_url else None,
        "parameters": ModelParameters(temperature=settings.llm_temperature, max_tokens=settings.llm_max_tokens),
    }
    if provider in ("openai", "azure"):
        fields |= {
            "api_key_secret": settings.llm_api_key_secret,
            "client_cert_secret": settings.llm_client_cert_secret,
            "api_version": settings.llm_api_version,
        }
    if provider == "sagemaker":
        fields["payload_format"] = settings.llm_payload_format
    try:
        return ModelTarget.model_validate(fields, context={"key_given": settings.llm_api_key is not None})
    except ValidationError as exc:
        problems = describe_validation_error(exc, whole=None)
        for field, variable in _SETTING_NAMES.items():
            problems = problems.replace(f"'{field}'", variable)
        raise ModelNotConfigured(f"invalid model settings: {problems}") from None


def build_target(
    target: ModelTarget,
    *,
    settings: Settings,
    secrets: SecretResolver | None,
    min_answer_score: float,
    instructions: str | None = None,
    answer_language: str = "auto",
    api_key: SecretStr | None = None,
) -> AnswerModel:
    """One target as an answer model. ``api_key`` (the deployment's plain key) is used when the
    target names no secret."""
    if target.provider == "extractive":
        return ExtractiveModel(min_answer_score=min_answer_score, language=answer_language)
    # Deferred: langchain-core costs ~0.3 s of cold start that the extractive default never pays.
    from shared.model.chat_answers import LangChainAnswerModel

    chat_model = _chat_model(target, settings=settings, secrets=secrets, api_key=api_key)
    return LangChainAnswerModel(
        chat_model,
        min_answer_score=min_answer_score,
        max_passages=settings.retrieve_top_k,
        instructions=instructions,
        answer_language=answer_language,
        provider=target.provider,
        model_name=target.model or target.endpoint or "",
    )


def _chat_model(
    target: ModelTarget, *, settings: Settings, secrets: SecretResolver | None, api_key: SecretStr | None
) -> BaseChatModel:
    parameters = target.parameters
    connect, first_token, between = target_deadlines(target, settings)
    # The socket read timeout is only the backstop of the stream deadlines (shared/model/deadlines.py).
    read = max(first_token, between)
    # What every provider's chat model takes (StreamingChatModel's fields).
    sampling: dict[str, Any] = {
        "temperature": parameters.temperature if parameters.temperature is not None else settings.llm_temperature,
        "max_tokens": parameters.max_tokens if parameters.max_tokens is not None else settings.llm_max_tokens,
        "top_p": parameters.top_p,
        "stop_sequences": parameters.stop or None,
        "first_token_timeout": read,
    }
    if target.provider in ("openai", "azure"):
        from shared.model.openai_compatible import OpenAICompatibleChatModel

        key = SecretStr(_secret(secrets, target.api_key_secret)) if target.api_key_secret else api_key
        ssl_context = None
        if target.client_cert_secret:
            from shared.model.secrets import client_certificate_context

            ssl_context = client_certificate_context(_secret(secrets, target.client_cert_secret))
        azure = target.provider == "azure"
        from shared.model.endpoint_guard import GuardedTransport

        # Every connection re-checks where the endpoint's name resolves (metadata service, loopback).
        guarded = GuardedTransport(ssl_context=ssl_context, allow_loopback=settings.model_endpoint_allow_loopback)
        try:
            return OpenAICompatibleChatModel(
                base_url=target.endpoint or "",
                model=target.model or "",
                api_key=key,
                auth_header="api-key" if azure else "bearer",
                query={"api-version": target.api_version} if target.api_version else {},
                timeout=settings.llm_timeout_seconds,
                connect_timeout=connect,
                ssl_context=ssl_context,
                transport=guarded,
                **sampling,
            )
        except ValidationError as exc:
            problems = describe_validation_error(exc, whole=None)
            raise ModelNotConfigured(f"invalid model settings: {problems}") from None
    from shared.model.aws_errors import model_client

    region = target.region or settings.aws_region
    if target.provider == "bedrock":
        from shared.model.bedrock import BedrockConverseChatModel

        client = model_client(
            "bedrock-runtime",
            region=region,
            endpoint_url=settings.bedrock_endpoint,
            connect_timeout=connect,
            read_timeout=read,
        )
        return BedrockConverseChatModel(model_id=target.model or "", client=client, **sampling)
    if target.provider == "sagemaker":
        from shared.model.sagemaker import SageMakerChatModel

        client = model_client(
            "sagemaker-runtime",
            region=region,
            endpoint_url=settings.sagemaker_endpoint,
            connect_timeout=connect,
            read_timeout=read,
        )
        return SageMakerChatModel(
            endpoint_name=target.endpoint or "",
            client=client,
            payload_format=target.payload_format or "messages",
            model=target.model,
            **sampling,
        )
    raise ModelNotConfigured(f"unknown provider {target.provider!r}")


def target_deadlines(target: ModelTarget, settings: Settings) -> tuple[float, float, float]:
    """Connect, first-token and between-token seconds of a target (its own, else the deployment's)."""
    return target.deadlines(
        settings.llm_connect_timeout_seconds,
        settings.llm_first_token_timeout_seconds,
        settings.llm_between_tokens_timeout_seconds,
    )


def _secret(secrets: SecretResolver | None, reference: str) -> str:
    if secrets is None:
        raise ModelNotConfigured(f"the model needs secret {reference!r} but no secret store is configured")
    return secrets.get(reference)
