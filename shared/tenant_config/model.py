"""Per-tenant model settings (the ``model`` section of TenantConfig).

A tenant picks a provider and model, optionally a fallback chain, its own instructions and the
answer language. Secrets are never stored here: only references to Secrets Manager secrets (a name
or an ARN), which the generate function reads when it builds the model. Empty (no ``provider``) means
the deployment's model (the ``KEFU_LLM_*`` settings), still with the tenant's prompt and language.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.config_section import ConfigSection

Provider = Literal["extractive", "openai", "azure", "bedrock", "sagemaker"]
PayloadFormat = Literal["messages", "generate"]

# Secrets Manager: a secret name (letters, digits, /_+=.@-) or a secret ARN.
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$")
# What API keys look like: refused so a key pasted into a reference field is never stored in clear.
_LOOKS_LIKE_A_KEY = re.compile(r"^(sk-|sk_|pk-|hf_|gsk_|xai-|AKIA|Bearer\s)", re.IGNORECASE)
# SageMaker endpoint names; Bedrock model ids, inference profile ids and ARNs.
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_BEDROCK_MODEL = re.compile(r"^(arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d{0,12}:[a-z-]+/)?[A-Za-z0-9._:/-]{1,200}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
# "auto" or a BCP 47 language tag such as en, zh, zh-CN, pt-BR.
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_HTTP_PROVIDERS = ("openai", "azure")
# A target's deadlines: the tenant may tune them on the deployment's model too.
TIMEOUT_FIELDS = ("timeout_seconds", "connect_timeout_seconds", "first_token_seconds", "between_tokens_seconds")


class ModelParameters(ConfigSection):
    """Generation settings; None leaves the deployment's (or the server's) default."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=4)


class _TargetFields(ConfigSection):
    # openai/azure: the served model name; bedrock: model id, inference profile id or ARN;
    # sagemaker: optional model name sent in the payload (vLLM/LMI containers serving several).
    model: str | None = Field(default=None, min_length=1, max_length=256)
    # openai/azure: the API root URL (https://host/v1, Azure's .../openai/deployments/<name> or
    # .../openai/v1); sagemaker: the endpoint name. Not used by bedrock (AWS endpoints come from the
    # deployment's settings, never from tenant data).
    endpoint: str | None = Field(default=None, min_length=1, max_length=2048)
    # bedrock/sagemaker: the AWS region; None: the deployment's region.
    region: str | None = None
    # openai/azure: Secrets Manager name or ARN of the API key (a plain string secret).
    api_key_secret: str | None = None
    # openai: Secrets Manager name or ARN of a client certificate for mTLS: a JSON secret with
    # "certificate" and "privateKey" (PEM) and optionally "caBundle" (PEM of the server's CA).
    client_cert_secret: str | None = None
    # azure: the api-version query parameter (deployment-style URLs need it).
    api_version: str | None = Field(default=None, pattern=r"^[0-9A-Za-z.-]{1,40}$")
    # sagemaker: "messages" (OpenAI-style chat body: TGI's Messages API, vLLM/LMI containers) or
    # "generate" (TGI's {"inputs", "parameters"} body).
    payload_format: PayloadFormat | None = None
    # Seconds to wait for the first token (and between chunks) before the attempt counts as failed;
    # the three fields below, when set, override it for their own phase.
    timeout_seconds: float | None = Field(default=None, ge=1, le=120)
    connect_timeout_seconds: float | None = Field(default=None, gt=0, le=30)
    first_token_seconds: float | None = Field(default=None, ge=0.5, le=60)
    between_tokens_seconds: float | None = Field(default=None, ge=0.5, le=120)
    parameters: ModelParameters = Field(default_factory=ModelParameters)

    @field_validator("api_key_secret", "client_cert_secret")
    @classmethod
    def _secret_reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if _LOOKS_LIKE_A_KEY.match(value):
            raise ValueError(
                "this looks like a key itself; store it in Secrets Manager and give the secret's name or ARN"
            )
        if not (_SECRET_ARN.match(value) or _SECRET_NAME.match(value)):
            raise ValueError("must be a Secrets Manager secret name or ARN")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError(f"not an AWS region: {value!r}")
        return value

    def _check_target(self, provider: Provider, *, key_given: bool = False) -> None:
        """Which fields each provider needs and accepts."""
        if provider in _HTTP_PROVIDERS:
            if not self.endpoint:
                raise ValueError(f"provider {provider!r} needs 'endpoint' (the API root URL)")
            check_endpoint_url(self.endpoint)
            if provider == "openai" and not self.model:
                raise ValueError("provider 'openai' needs 'model' (the served model name)")
            if provider == "azure":
                if "/deployments/" in self.endpoint and not self.api_version:
                    raise ValueError("an Azure deployment URL needs 'apiVersion' (e.g. 2024-10-21)")
                if not (self.api_key_secret or key_given):
                    raise ValueError("provider 'azure' needs 'apiKeySecret'")
        else:
            for name in ("api_key_secret", "client_cert_secret", "api_version"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{to_camel(name)}' is only for providers openai and azure")
        if provider == "bedrock":
            if not self.model or not _BEDROCK_MODEL.match(self.model):
                raise ValueError("provider 'bedrock' needs 'model': a model id, inference profile id or ARN")
            if self.endpoint is not None:
                raise ValueError("provider 'bedrock' takes no 'endpoint' (the deployment sets AWS endpoints)")
        if provider == "sagemaker" and not (self.endpoint and _ENDPOINT_NAME.match(self.endpoint)):
            raise ValueError("provider 'sagemaker' needs 'endpoint': the SageMaker endpoint name")
        if self.payload_format is not None and provider != "sagemaker":
            raise ValueError("'payloadFormat' is only for provider sagemaker")
        if self.region is not None and provider not in ("bedrock", "sagemaker"):
            raise ValueError("'region' is only for providers bedrock and sagemaker")


class ModelTarget(_TargetFields):
    """One model to try: the primary or a fallback."""

    provider: Provider

    @model_validator(mode="after")
    def _valid_for_provider(self, info: ValidationInfo) -> Self:
        # The deployment's target may carry its key in KEFU_LLM_API_KEY instead of a secret.
        self._check_target(self.provider, key_given=bool(info.context and info.context.get("key_given")))
        return self

    def identity(self) -> str:
        """A stable short hash of everything that changes the answers (for caches and breakers)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def label(self) -> str:
        """For logs and metrics: provider and model, never a secret."""
        return f"{self.provider}:{self.model or self.endpoint or 'default'}"

    def deadlines(self, connect: float, first_token: float, between_tokens: float) -> tuple[float, float, float]:
        """Connect, first-token and between-token seconds: this target's own, else ``timeout_seconds``,
        else the given deployment defaults."""
        return (
            self.connect_timeout_seconds or connect,
            self.first_token_seconds or self.timeout_seconds or first_token,
            self.between_tokens_seconds or self.timeout_seconds or between_tokens,
        )


class ModelConfig(_TargetFields):
    """The tenant's model; everything is optional (see the module docstring)."""

    provider: Provider | None = None
    # The tenant's own instructions (tone, persona, what to call the company). They are added after
    # kefu's grounding rules and cannot lift them: answers stay limited to the tenant's knowledge.
    system_prompt: str | None = Field(default=None, max_length=4000)
    # "auto": the language of the visitor's question; else a BCP 47 tag (en, zh-CN, ja, ...).
    answer_language: str = "auto"
    # Tried in order when the primary fails before its first token (e.g. on-prem vLLM -> Bedrock).
    fallbacks: list[ModelTarget] = Field(default_factory=list, max_length=3)
    # Reuse answers to repeated questions (same question, knowledge version and model settings).
    answer_cache: bool = True
    # When no model gives a first token within the budget: "error" (an `error` frame
    # `model_unavailable`, with a retry button in the widget) or "extractive" (the best-matching
    # passage, quoted). None: the deployment's KEFU_LLM_ON_UNAVAILABLE.
    on_unavailable: Literal["error", "extractive"] | None = None
    # Shown to the visitor with `model_unavailable` (e.g. "Please try again, or ask for a person").
    unavailable_text: str | None = Field(default=None, min_length=1, max_length=500)
    # Seconds from asking the model to its first text, retries and fallbacks included. None: the
    # deployment's KEFU_LLM_FIRST_TOKEN_BUDGET_SECONDS.
    first_token_budget_seconds: float | None = Field(default=None, ge=1, le=30)

    @field_validator("answer_language")
    @classmethod
    def _language(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "auto":
            return "auto"
        if not _LANGUAGE_TAG.match(value):
            raise ValueError("must be 'auto' or a language tag such as en, zh-CN or ja")
        return value

    @model_validator(mode="after")
    def _valid_for_provider(self) -> Self:
        if self.provider is not None:
            self._check_target(self.provider)
        else:
            # Parameters and the timeout also tune the deployment's model; the rest describe a target.
            tunable = ("parameters", *TIMEOUT_FIELDS)
            fields = _TargetFields.model_fields
            given = [to_camel(name) for name in fields if name not in tunable and getattr(self, name)]
            if given:
                raise ValueError(f"{', '.join(given)} need a 'provider' (or remove them to use the deployment's model)")
        return self

    def primary(self) -> ModelTarget | None:
        """The tenant's own primary target; None means the deployment's model."""
        if self.provider is None:
            return None
        fields = {name: getattr(self, name) for name in _TargetFields.model_fields}
        return ModelTarget(provider=self.provider, **fields)


def check_endpoint_url(url: str) -> None:
    """An http(s) API root without credentials, query or fragment, whose host does not literally name
    a link-local (the instance metadata service), loopback (the Lambda Runtime API), multicast,
    unspecified or reserved address in any notation. Names are checked when a connection is made
    (shared/model/endpoint_guard.py)."""
    from urllib.parse import urlsplit

    from shared.addresses import check_host
    from shared.settings import get_settings

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("'endpoint' must be an http(s) URL such as https://llm.example.com/v1")
    if parts.username or parts.password:
        raise ValueError("'endpoint' must not carry credentials; use 'apiKeySecret'")
    if parts.query or parts.fragment:
        raise ValueError("'endpoint' must not have a query or fragment (Azure's api-version goes in 'apiVersion')")
    check_host(parts.hostname, allow_loopback=get_settings().model_endpoint_allow_loopback)
