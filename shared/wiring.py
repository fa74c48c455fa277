"""The composition root: adapters built from settings once per cold start, shared by the handlers.

Each factory imports its adapter's libraries only when called, so a function pays only for what it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.channels.directory import ChannelDirectory
    from shared.channels.secrets import TenantSecrets
    from shared.channels.state import ChannelState
    from shared.chat.dead_letters import DeadLetters
    from shared.chat.identity import VisitorTokens
    from shared.chat.jobs import GenerationQueue
    from shared.chat.quotas import MonthlyQuota, UsageLedger
    from shared.chat.rate_limits import ChatLimits, RateLimiter
    from shared.chat.retriever import Retriever
    from shared.knowledge.base import KnowledgeIndex
    from shared.model.answer_cache import AnswerCache
    from shared.model.gateway import ConfiguredModelGateway
    from shared.model.secrets import SecretResolver
    from shared.observability import AnswerMeter
    from shared.state.cache import ContextCache
    from shared.state.store import StateStore


@lru_cache(maxsize=1)
def state_store() -> StateStore:
    from shared.state.dynamodb import DynamoStateStore

    return DynamoStateStore(get_settings())


@lru_cache(maxsize=1)
def context_cache() -> ContextCache:
    from shared.state.cache import NoCache, RedisContextCache

    settings = get_settings()
    if not settings.redis_url:
        return NoCache()
    return RedisContextCache.from_url(
        settings.redis_url, max_messages=settings.history_turns + 1, timeout_seconds=settings.redis_timeout_seconds
    )


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    from shared.chat.rate_limits import DynamoRateLimiter, RedisRateLimiter
    from shared.state.models import bind_models

    settings = get_settings()
    bind_models(settings)
    shared_counters = DynamoRateLimiter()
    if not settings.redis_url:
        return shared_counters
    return RedisRateLimiter.from_url(settings.redis_url, settings.redis_timeout_seconds, fallback=shared_counters)


@lru_cache(maxsize=1)
def usage_ledger() -> UsageLedger:
    from shared.chat.quotas import DynamoUsageLedger
    from shared.state.models import bind_models

    bind_models(get_settings())
    return DynamoUsageLedger()


def default_quota() -> MonthlyQuota:
    from shared.chat.quotas import MonthlyQuota

    settings = get_settings()
    return MonthlyQuota(questions=settings.quota_questions_per_month, tokens=settings.quota_tokens_per_month)


def chat_limits() -> ChatLimits:
    from shared.chat.rate_limits import ChatLimits, Limit

    settings = get_settings()
    defaults = ChatLimits()
    return ChatLimits(
        connection_frames=Limit(defaults.connection_frames.what, settings.rate_connection_frames_per_10s, 10),
        visitor_questions=Limit(defaults.visitor_questions.what, settings.rate_visitor_messages_per_minute, 60),
        visitor_characters=Limit(defaults.visitor_characters.what, settings.rate_visitor_characters_per_minute, 60),
        visitor_handoffs=Limit(defaults.visitor_handoffs.what, settings.rate_visitor_handoffs_per_10_minutes, 600),
        tenant_questions=Limit(defaults.tenant_questions.what, settings.rate_tenant_messages_per_minute, 60),
        address_questions=Limit(defaults.address_questions.what, settings.rate_address_messages_per_minute, 60),
        address_handoffs=Limit(
            defaults.address_handoffs.what, settings.rate_address_handoffs_per_10_minutes, 600
        ),
        address_connections=Limit(
            defaults.address_connections.what, settings.rate_address_connections_per_minute, 60
        ),
    )


def _client(service: str, endpoint: str | None):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=get_settings().aws_region,
        # Parameters are built by this code, not typed by people: botocore's per-call validation is
        # skipped, as PynamoDB does for DynamoDB (it is paid on every queue send and Lambda invoke).
        config=Config(
            connect_timeout=2,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            parameter_validation=False,
        ),
    )


@lru_cache(maxsize=1)
def visitor_tokens() -> VisitorTokens:
    """Signs visitor tokens with the deployment's key (a setting locally, an SSM SecureString in AWS)."""
    from shared.chat.identity import VisitorTokens
    from shared.errors import UpstreamError

    settings = get_settings()
    if settings.visitor_token_secret is not None:
        return VisitorTokens(settings.visitor_token_secret.get_secret_value().encode())
    if settings.visitor_token_parameter:
        from aws_lambda_powertools.utilities.parameters import get_parameter

        return VisitorTokens(str(get_parameter(settings.visitor_token_parameter, decrypt=True)).encode())
    raise UpstreamError("no visitor-token secret (KEFU_VISITOR_TOKEN_SECRET or KEFU_VISITOR_TOKEN_PARAMETER)")


def tenant_suspension(ttl_seconds: float) -> Callable[[str], bool]:
    """Whether a tenant is suspended, each answer kept ``ttl_seconds`` by a warm function."""
    import time

    store = state_store()
    seen: dict[str, tuple[float, bool]] = {}

    def suspended(tenant_id: str) -> bool:
        now = time.monotonic()
        cached = seen.get(tenant_id)
        if cached is None or now - cached[0] >= ttl_seconds:
            tenant = store.get_tenant(tenant_id)
            if len(seen) > 1000:
                seen.clear()
            cached = seen[tenant_id] = (now, tenant is None or tenant.suspended)
        return cached[1]

    return suspended


@lru_cache(maxsize=1)
def dead_letters() -> DeadLetters:
    from shared.chat.dead_letters import DeadLetters

    settings = get_settings()
    return DeadLetters(_client("sqs", settings.sqs_endpoint), settings.generate_queue_url)


@lru_cache(maxsize=1)
def generation_queue() -> GenerationQueue:
    from shared.chat.jobs import SqsGenerationQueue

    settings = get_settings()
    return SqsGenerationQueue(
        _client("sqs", settings.sqs_endpoint), settings.generate_queue_url, settings.generate_groups_per_tenant
    )


@lru_cache(maxsize=1)
def retriever() -> Retriever:
    from shared.chat.retriever import LambdaRetriever

    settings = get_settings()
    return LambdaRetriever(_client("lambda", settings.lambda_endpoint), settings.retrieve_function)


@lru_cache(maxsize=1)
def knowledge_index() -> KnowledgeIndex:
    from shared.knowledge.factory import build_index

    return build_index(get_settings())


@lru_cache(maxsize=1)
def secret_resolver() -> SecretResolver:
    """Secrets Manager, read by reference; the client is created at the first secret read."""
    from shared.model.secrets import SecretsManagerResolver

    settings = get_settings()
    return SecretsManagerResolver(lambda: _client("secretsmanager", settings.secretsmanager_endpoint))


@lru_cache(maxsize=1)
def model_gateway() -> ConfiguredModelGateway:
    """Each tenant's model chain (its TenantConfig.model, else the deployment's KEFU_LLM_* model)."""
    from shared.model.gateway import ConfiguredModelGateway
    from shared.model.resilience import CircuitBreakers

    settings = get_settings()
    breakers = CircuitBreakers(settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds)
    return ConfiguredModelGateway(settings, state_store().tenant_config, secret_resolver(), breakers)


@lru_cache(maxsize=1)
def answer_cache() -> AnswerCache:
    """Redis when configured (shared by every container), else this container's memory."""
    from shared.model.answer_cache import InMemoryAnswerCache, RedisAnswerCache

    settings = get_settings()
    if settings.redis_url:
        return RedisAnswerCache.from_url(
            settings.redis_url, settings.answer_cache_ttl_seconds, timeout_seconds=settings.redis_timeout_seconds
        )
    return InMemoryAnswerCache(settings.answer_cache_ttl_seconds)


@lru_cache(maxsize=1)
def answer_meter() -> AnswerMeter:
    from shared.observability import PowertoolsAnswerMeter

    return PowertoolsAnswerMeter()


# --- Channels (issue 14): shared state, tenants' channel secrets, the channel directory ---


@lru_cache(maxsize=1)
def channel_state() -> ChannelState:
    """Tokens, locks, cursors, windows and channel records, in the limits table (chan: keys)."""
    from shared.channels.dynamodb_state import DynamoChannelState

    settings = get_settings()
    return DynamoChannelState(settings.limits_table, settings.dynamodb_endpoint, settings.aws_region)


@lru_cache(maxsize=1)
def tenant_secrets() -> TenantSecrets:
    from shared.channels.secrets import SecretsManagerTenantSecrets

    settings = get_settings()
    return SecretsManagerTenantSecrets(
        lambda: _client("secretsmanager", settings.secretsmanager_endpoint), settings.tenant_secrets_prefix
    )


def channel_directory() -> ChannelDirectory:
    from shared.channels.directory import ChannelDirectory

    return ChannelDirectory(channel_state())
