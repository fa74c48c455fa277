"""Deployment choices, read once from CDK context (``cdk synth -c env=prod -c redis_url=...``).

Everything that differs between environments or deployments comes from here; constructs take a
``DeployConfig`` and never read context themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import aws_cdk as cdk
from constructs import Node

from infra.constants import DEFAULT_ENVIRONMENT, ENVIRONMENTS, Environment
from shared.settings import Settings

_LLM_PROVIDERS: tuple[str, ...] = get_args(Settings.model_fields["llm_provider"].annotation)


class ConfigError(ValueError):
    """A context value is missing or malformed; the message says which and why."""


@dataclass(frozen=True)
class DeployConfig:
    env: Environment
    # Optional Redis context cache (e.g. a managed Redis reachable over TLS). None: DynamoDB alone.
    redis_url: str | None = None
    # Answer model: the extractive default needs nothing; "openai" needs an OpenAI-compatible server.
    llm_provider: str = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    # Name or ARN of an existing Secrets Manager secret holding the LLM API key (plain string).
    llm_api_key_secret: str | None = None
    # Use an existing OpenSearch domain instead of creating a Serverless collection.
    opensearch_endpoint: str | None = None
    opensearch_domain_arn: str | None = None
    # Point the account's API Gateway CloudWatch role (needed for WebSocket access logs) at a role
    # this stack creates. Off when the account already has one that must not be touched.
    apigw_cloudwatch_role: bool = True

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"context 'env' must be one of {', '.join(ENVIRONMENTS)}; got {self.env!r}")
        if self.llm_provider not in _LLM_PROVIDERS:
            raise ConfigError(
                f"context 'llm_provider' must be one of {', '.join(_LLM_PROVIDERS)}; got {self.llm_provider!r}"
            )
        if self.llm_provider == "openai" and not self.llm_base_url:
            raise ConfigError("context 'llm_provider=openai' needs 'llm_base_url' (an OpenAI-compatible /v1 URL)")
        if bool(self.opensearch_endpoint) != bool(self.opensearch_domain_arn):
            raise ConfigError(
                "an existing OpenSearch domain needs both 'opensearch_endpoint' (https://...) and "
                "'opensearch_domain_arn' (arn:aws:es:...:domain/NAME) so the functions can be granted access"
            )
        if self.opensearch_endpoint and not self.opensearch_endpoint.startswith("https://"):
            raise ConfigError(f"'opensearch_endpoint' must start with https://; got {self.opensearch_endpoint!r}")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://")):
            raise ConfigError(f"'redis_url' must be a redis:// or rediss:// URL; got {self.redis_url!r}")

    @property
    def is_production(self) -> bool:
        return self.env == "prod"

    @property
    def removal_policy(self) -> cdk.RemovalPolicy:
        """Production keeps its data when the stack (or a resource) is deleted; dev cleans up."""
        return cdk.RemovalPolicy.RETAIN if self.is_production else cdk.RemovalPolicy.DESTROY

    @property
    def uses_existing_domain(self) -> bool:
        return self.opensearch_endpoint is not None

    @classmethod
    def from_context(cls, node: Node) -> DeployConfig:
        def text(key: str) -> str | None:
            value: Any = node.try_get_context(key)
            if value is None or value == "":
                return None
            return str(value)

        def flag(key: str, default: bool) -> bool:
            value = text(key)
            if value is None:
                return default
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ConfigError(f"context {key!r} must be true or false; got {value!r}")

        return cls(
            env=text("env") or DEFAULT_ENVIRONMENT,  # type: ignore[arg-type]  # checked in __post_init__
            redis_url=text("redis_url"),
            llm_provider=text("llm_provider") or "extractive",
            llm_base_url=text("llm_base_url"),
            llm_model=text("llm_model"),
            llm_api_key_secret=text("llm_api_key_secret"),
            opensearch_endpoint=text("opensearch_endpoint"),
            opensearch_domain_arn=text("opensearch_domain_arn"),
            apigw_cloudwatch_role=flag("apigw_cloudwatch_role", default=True),
        )
