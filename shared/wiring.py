"""The composition root: the only place that builds adapters from settings (once per cold start) and
hands them to the use cases the handlers call (connect: ``admission``, message: ``intake``, generate:
``generator``, retrieve: ``retrieve_service``; the admin API reads ``state_store``, ``knowledge_service``…).

Nothing under shared/ imports this module except the admin API's dependencies (an entry point too).
Each factory imports its adapter's libraries only when called, so a function pays only for what it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.settings import get_settings

if TYPE_CHECKING:
    import httpx

    from shared.channels.base import Channel
    from shared.channels.directory import ChannelDirectory
    from shared.channels.inbox import ChannelAdapters, ChannelInbox
    from shared.channels.push import ChannelPush
    from shared.channels.secrets import TenantSecrets
    from shared.channels.state import ChannelState
    from shared.chat.channel_desk import ChannelDesk
    from shared.chat.connections import Admission
    from shared.chat.gate import HandoffGate
    from shared.chat.generation import Generator
    from shared.chat.identity import VisitorTokens
    from shared.chat.intake import Intake
    from shared.chat.quotas import MonthlyQuota, UsageLedger
    from shared.chat.rate_limits import ChatLimits, RateLimiter
    from shared.ingest.service import KnowledgeIngestion
    from shared.ingest.uploads import Uploads
    from shared.knowledge.base import KnowledgeIndex
    from shared.knowledge.retrieve_client import Retriever
    from shared.knowledge.retrieve_service import RetrieveService
    from shared.knowledge.search import KnowledgeService
    from shared.model.answer_cache import AnswerCache
    from shared.model.gateway import ConfiguredModelGateway
    from shared.model.secrets import SecretResolver
    from shared.observability import AnswerMeter
    from shared.state.cache import ContextCache
    from shared.state.store import StateStore
    from shared.tenant_config import TenantConfigCache
    from shared.wire.dead_letters import DeadLetters
    from shared.wire.jobs import GenerationQueue
    from shared.wire.push import ClientPush


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
    from shared.state.tables import bind_models

    settings = get_settings()
    bind_models(settings)
    shared_counters = DynamoRateLimiter()
    if not settings.redis_url:
        return shared_counters
    return RedisRateLimiter.from_url(settings.redis_url, settings.redis_timeout_seconds, fallback=shared_counters)


@lru_cache(maxsize=1)
def usage_ledger() -> UsageLedger:
    from shared.chat.quotas import DynamoUsageLedger
    from shared.state.tables import bind_models

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


def _client(service: str, endpoint: str | None) -> Any:
    from shared.aws_clients import aws_client

    # Parameters are built by this code, not typed by people: no per-call validation (it is paid on
    # every queue send and Lambda invoke).
    return aws_client(service, region=get_settings().aws_region, endpoint_url=endpoint, validate=False)


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


@lru_cache(maxsize=1)
def tenant_suspension() -> Callable[[str], bool]:
    """Whether a tenant is suspended, each answer kept ``tenant_config_ttl_seconds`` by a warm function."""
    import time

    ttl_seconds = get_settings().tenant_config_ttl_seconds
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
    from shared.wire.dead_letters import DeadLetters

    settings = get_settings()
    return DeadLetters(_client("sqs", settings.sqs_endpoint), settings.generate_queue_url)


@lru_cache(maxsize=1)
def generation_queue() -> GenerationQueue:
    from shared.wire.jobs import SqsGenerationQueue

    settings = get_settings()
    return SqsGenerationQueue(
        _client("sqs", settings.sqs_endpoint), settings.generate_queue_url, settings.generate_groups_per_tenant
    )


@lru_cache(maxsize=1)
def retriever() -> Retriever:
    from shared.knowledge.retrieve_client import LambdaRetriever

    settings = get_settings()
    return LambdaRetriever(_client("lambda", settings.lambda_endpoint), settings.retrieve_function)


@lru_cache(maxsize=1)
def knowledge_index() -> KnowledgeIndex:
    from shared.knowledge.factory import build_index

    return build_index(get_settings())


@lru_cache(maxsize=1)
def knowledge_service() -> KnowledgeService:
    """The one search path (retrieve function and admin API)."""
    from shared.knowledge.factory import build_reranker
    from shared.knowledge.search import KnowledgeService

    settings = get_settings()
    return KnowledgeService(
        knowledge_index(),
        default_threshold=settings.min_answer_score,
        default_k=settings.retrieve_top_k,
        reranker=build_reranker(settings),
        rerank_candidates=settings.rerank_candidates,
    )


def knowledge_ingestion(parse_seconds: float | None = None) -> KnowledgeIngestion:
    """Files and documents into the knowledge (admin API routes; ``parse_seconds``: the ingest
    function's longer budget for one file)."""
    from shared.ingest.service import IngestLimits, KnowledgeIngestion

    limits = IngestLimits.from_settings(get_settings(), parse_seconds=parse_seconds)
    return KnowledgeIngestion(state_store(), knowledge_service(), limits)


@lru_cache(maxsize=1)
def uploads() -> Uploads:
    """Presigned uploads: the admin API hands them out and reports their status, the ingest function
    ingests them from the bucket's ObjectCreated events."""
    from shared.aws_clients import aws_client
    from shared.ingest.s3_uploads import S3UploadBucket
    from shared.ingest.uploads import UploadPolicy, Uploads
    from shared.state.uploads import DynamoUploadLedger

    settings = get_settings()
    # A custom endpoint (moto, MinIO) serves buckets by path; AWS's presigned POST names the bucket's host.
    client = aws_client(
        "s3", region=settings.aws_region, endpoint_url=settings.s3_endpoint, path_style=bool(settings.s3_endpoint)
    )
    return Uploads(
        ledger=DynamoUploadLedger(settings.limits_table, settings.dynamodb_endpoint, settings.aws_region),
        bucket=S3UploadBucket(client, settings.uploads_bucket),
        store=state_store(),
        policy=UploadPolicy(
            max_bytes=settings.max_upload_bytes,
            url_seconds=settings.upload_url_seconds,
            attempt_seconds=settings.upload_attempt_seconds,
        ),
        ingestion=lambda: knowledge_ingestion(settings.upload_parse_seconds),
    )


@lru_cache(maxsize=1)
def retrieve_service() -> RetrieveService:
    """The retrieve function's use case: the tenant's retrieval settings, then the search path."""
    from shared.knowledge.retrieve_service import RetrieveService, StoredTenantConfigs

    return RetrieveService(knowledge_service(), StoredTenantConfigs(tenant_configs()))


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
    from shared.model.answer_cache_memory import InMemoryAnswerCache
    from shared.model.answer_cache_redis import RedisAnswerCache

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


def push_for(callback_url: str) -> ClientPush:
    """The client-push port of one API stage: WebSocket connections through @connections (one client
    per URL), and channel customers through their channel (built on first use)."""
    from shared.wire.push import RoutedPush, api_gateway_push

    return RoutedPush(api_gateway_push(callback_url, get_settings().aws_region), channel_push)


def callback_url_of(domain_name: str, stage: str) -> str:
    from shared.wire.push import callback_url

    return callback_url(get_settings(), domain_name, stage)


@lru_cache(maxsize=1)
def tenant_configs() -> TenantConfigCache:
    from shared.tenant_config import TenantConfigCache

    return TenantConfigCache(state_store().tenant_config, get_settings().tenant_config_ttl_seconds)


@lru_cache(maxsize=1)
def admission() -> Admission:
    """The connect function's use case ($connect and $disconnect)."""
    from shared.chat.connections import Admission

    return Admission(
        store=state_store(),
        tokens=visitor_tokens,
        limiter=rate_limiter(),
        limits=chat_limits(),
        push_for=push_for,
        callback_url_of=callback_url_of,
    )


def intake(domain_name: str, stage: str) -> Intake:
    """The message function's use case, answering on the API stage the frame came from (its adapters
    are built once per container; this only binds them to the stage's callback URL)."""
    return _intake_at(callback_url_of(domain_name, stage))


def _intake_at(url: str, *, issues_visitor_tokens: bool = True) -> Intake:
    """``issues_visitor_tokens``: only the widget's ``session`` action signs tokens; a channel's customer
    is known by their platform id, so the channels function and the pull job never read the signing key
    (their roles may not: infra/constructs/access.py)."""
    from shared.chat.intake import Intake

    settings = get_settings()
    return Intake(
        store=state_store(),
        cache=context_cache(),
        queue=generation_queue(),
        push=push_for(url),
        callback_url=url,
        max_message_chars=settings.max_message_chars,
        tenant_configs=tenant_configs(),
        limiter=rate_limiter(),
        limits=chat_limits(),
        usage=usage_ledger(),
        default_quota=default_quota(),
        visitor_tokens=visitor_tokens() if issues_visitor_tokens else None,
        tenant_suspended=tenant_suspension(),
    )


@lru_cache(maxsize=1)
def handoff_gate() -> HandoffGate:
    """The answer gate of the generate function (the bot answers only while it owns the conversation)."""
    from shared.chat.gate import HandoffGate

    return HandoffGate(state_store(), push_for)


@lru_cache(maxsize=1)
def generator() -> Generator:
    """The generate function's use case, built once per container (not per record)."""
    from shared.chat.generation import Generator

    settings = get_settings()
    return Generator(
        store=state_store(),
        cache=context_cache(),
        retriever=retriever(),
        push_for=push_for,
        history_turns=settings.history_turns,
        top_k=settings.retrieve_top_k,
        flush_ms=settings.stream_flush_ms,
        flush_chars=settings.stream_flush_chars,
        models=model_gateway(),
        answers=answer_cache(),
        meter=answer_meter(),
        gate=handoff_gate(),
        usage=usage_ledger(),
    )


def forget_adapters() -> None:
    """Drop every adapter built so far (and the settings), so the next call builds them from the
    current environment: for tools and tests that change settings within one process."""
    import sys

    get_settings.cache_clear()
    for value in list(vars(sys.modules[__name__]).values()):
        if hasattr(value, "cache_clear") and getattr(value, "__module__", None) == __name__:
            value.cache_clear()


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


@lru_cache(maxsize=1)
def channel_http() -> httpx.Client:
    """One HTTP client (connection pool) for every platform API call of a container."""
    import httpx

    return httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))


@lru_cache(maxsize=1)
def channel_adapters() -> ChannelAdapters:
    """Adapters of the channels a container serves, built with the tenant's secrets (kept 5 minutes)."""
    from shared.channels.directory import ChannelRecord
    from shared.channels.inbox import ChannelAdapters
    from shared.channels.registry import build_channel

    def build(record: ChannelRecord) -> Channel:
        def secret(name: str) -> str:
            return tenant_secrets().get(record.tenant_id, name)

        return build_channel(record.kind, record.channel_id, record.fields, secret, channel_state(), channel_http())

    return ChannelAdapters(build)


@lru_cache(maxsize=1)
def channel_push() -> ChannelPush:
    """The channel destination of the push port (answers, agent replies and notices to channel customers)."""
    from shared.channels.push import ChannelPush
    from shared.handoff.notify import tell_assignee

    endpoint = get_settings().connections_endpoint
    sockets = push_for_sockets(endpoint.rstrip("/")) if endpoint else None

    def tell_agents(conversation_id: str) -> None:
        if sockets is not None:
            tell_assignee(state_store(), sockets, conversation_id)

    return ChannelPush(channel_directory(), channel_adapters().for_record, state_store(), channel_state(), tell_agents)


def push_for_sockets(callback_url: str) -> ClientPush:
    """WebSocket connections only (@connections), one client per URL."""
    from shared.wire.push import api_gateway_push

    return api_gateway_push(callback_url, get_settings().aws_region)


def channels_callback_url() -> str:
    """The WebSocket API's @connections URL, for the agents' frames about channel conversations (the
    channels function is not behind that API, so it is configured: KEFU_CONNECTIONS_ENDPOINT)."""
    from shared.errors import UpstreamError

    endpoint = get_settings().connections_endpoint
    if not endpoint:
        raise UpstreamError("KEFU_CONNECTIONS_ENDPOINT (the WebSocket API's @connections URL) is not set")
    return endpoint.rstrip("/")


@lru_cache(maxsize=1)
def channel_desk() -> ChannelDesk:
    """A channel message through the visitor intake (limits, quota, conversation, handoff, job)."""
    from shared.chat.channel_desk import ChannelDesk

    intake = _intake_at(channels_callback_url(), issues_visitor_tokens=False)
    return ChannelDesk(state_store(), intake, generation_queue(), channel_state())


@lru_cache(maxsize=1)
def channel_inbox() -> ChannelInbox:
    """The channels function's use case (and the pull job's)."""
    from shared.channels.inbox import ChannelInbox

    desk = channel_desk()
    return ChannelInbox(channel_directory(), channel_state(), channel_adapters(), desk.deliver, desk.queue_pull)
