"""One typed settings model for every function, read from ``KEFU_*`` environment variables.

Local emulation and the cloud differ only in these values (mostly endpoints): handler code never
branches on where it runs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")

    # --- AWS endpoints: None means the service's public endpoint in the region ---
    aws_region: str = "us-east-1"
    dynamodb_endpoint: str | None = None
    sqs_endpoint: str | None = None
    lambda_endpoint: str | None = None
    # Base URL of the @connections management API. None: built from the event as
    # https://{domainName}/{stage}, the way AWS documents it. The channels function (behind the HTTP
    # API, not the WebSocket API) needs it set to tell agents about channel conversations.
    connections_endpoint: str | None = None

    # --- State layer ---
    tenants_table: str = "kefu-tenants"
    connections_table: str = "kefu-connections"
    conversations_table: str = "kefu-conversations"
    messages_table: str = "kefu-messages"
    agents_table: str = "kefu-agents"
    limits_table: str = "kefu-limits"
    # None: run without the Redis cache (DynamoDB alone still answers everything).
    redis_url: str | None = None
    redis_timeout_seconds: float = 0.25
    connection_ttl_seconds: int = 3 * 3600
    conversation_ttl_days: int = 90
    history_turns: int = Field(default=10, ge=0, le=50)

    # --- Message intake and generation hand-off ---
    generate_queue_url: str = ""
    max_message_chars: int = 8192
    # Limits on visitors' frames, checked before anything is stored (docs/protocol.md "Limits";
    # counters in Redis, else per container). 0 turns one off.
    rate_connection_frames_per_10s: int = Field(default=30, ge=0)
    rate_visitor_messages_per_minute: int = Field(default=20, ge=0)
    rate_visitor_characters_per_minute: int = Field(default=20_000, ge=0)
    rate_visitor_handoffs_per_10_minutes: int = Field(default=5, ge=0)
    rate_tenant_messages_per_minute: int = Field(default=1200, ge=0)
    rate_address_messages_per_minute: int = Field(default=120, ge=0)
    rate_address_handoffs_per_10_minutes: int = Field(default=10, ge=0)
    # Monthly quotas per tenant (shared/chat/quotas.py) where its TenantConfig.quota sets none; 0: unlimited.
    quota_questions_per_month: int = Field(default=50_000, ge=0)
    quota_tokens_per_month: int = Field(default=50_000_000, ge=0)
    # Answers generating at once per tenant: its jobs go to this many SQS FIFO message groups
    # (shared/wire/jobs.py), so one tenant's flood cannot take every generate instance.
    generate_groups_per_tenant: int = Field(default=4, ge=1, le=100)
    # New WebSocket connections per network address per minute ($connect); 0: no limit.
    rate_address_connections_per_minute: int = Field(default=60, ge=0)
    retrieve_function: str = "kefu-retrieve"

    # --- Knowledge ---
    # local: files under knowledge_dir; s3: the same embedded index stored per tenant and version in
    # knowledge_bucket, current version in knowledge_table (the default deployment: no idle cost);
    # opensearch: an OpenSearch Serverless collection or domain.
    knowledge_backend: Literal["local", "opensearch", "s3"] = "local"
    knowledge_dir: Path = Path(".kefu/knowledge")
    s3_endpoint: str | None = None
    knowledge_bucket: str = ""
    # Empty: kefu-chunks-<embedder>-<dimension>/ (as OpenSearch's index names), so each embedder has
    # its own versions and pointers, and a rebuild fills the next one while the current one serves.
    knowledge_prefix: str = ""
    knowledge_table: str = "kefu-knowledge"
    # Unpacked versions, reused by a restarted handler in the same sandbox (Lambda's /tmp).
    knowledge_cache_dir: Path = Path("/tmp/kefu-knowledge")  # Lambda: the only writable folder
    # How long a warm function trusts the version pointer it read: a new upload is searched at most
    # this long after it is stored (0: one DynamoDB GetItem per search).
    knowledge_version_ttl_seconds: float = Field(default=1.0, ge=0, le=300)
    # Tenants' indexes one function keeps loaded (least recently used ones are dropped).
    knowledge_cached_tenants: int = Field(default=16, ge=1, le=10_000)
    opensearch_endpoint: str | None = None
    opensearch_service: Literal["aoss", "es"] = "aoss"
    # Empty: kefu-chunks-<embedder>-<dimension> (shared/knowledge/factory.py chunk_index_name), so each
    # embedder writes its own index; set it only to pin one.
    opensearch_index: str = ""
    retrieve_top_k: int = Field(default=4, ge=1, le=20)
    # How long the retrieve function reuses a tenant's RetrievalConfig before reading it again.
    tenant_config_ttl_seconds: float = Field(default=30.0, ge=0)
    # Uploads (admin API multipart and the CLI): per-file limit, and at most this many files per call.
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_upload_files: int = Field(default=50, ge=1)
    # Parsing one uploaded file (shared/ingest/limits.py): .docx/.xlsx zip checks before opening,
    # then a child process with a deadline and extra address space (0: no memory limit).
    ingest_max_zip_entries: int = Field(default=2000, ge=1)
    ingest_max_unpacked_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    ingest_max_compression_ratio: float = Field(default=100.0, gt=1)
    ingest_parse_seconds: float = Field(default=20.0, gt=0)
    # All the files of one upload request together (the admin function's timeout is 30 s).
    ingest_request_seconds: float = Field(default=20.0, gt=0)
    ingest_parse_memory_mb: int = Field(default=768, ge=0)
    ingest_isolated: bool = True
    # Presigned uploads (shared/ingest/uploads.py): the raw uploads bucket, how long an upload URL stays
    # valid, one file's parsing budget in the ingest function, and how long one ingestion attempt may
    # run (the ingest function's timeout: an upload in progress for longer is reported failed).
    uploads_bucket: str = ""
    upload_url_seconds: int = Field(default=900, ge=60, le=7 * 86400)
    upload_parse_seconds: float = Field(default=120.0, gt=0)
    upload_attempt_seconds: float = Field(default=900.0, gt=0)

    # --- Embeddings: use (local multilingual USE, default) | bedrock | openai (OpenAI-compatible
    # /v1/embeddings: TEI, vLLM, Ollama, ...) ---
    embedding_provider: Literal["use", "bedrock", "openai"] = "use"
    # bedrock: amazon.titan-embed-text-v2:0 or cohere.embed-multilingual-v3; openai: the served model
    embedding_model: str | None = None
    embedding_base_url: str | None = None  # openai: e.g. http://gpu-box:8080/v1
    embedding_api_key: SecretStr | None = None
    # Vector size. Titan v2: 256, 512 or 1024 (default 1024); openai: required (the model's size).
    embedding_dimension: int | None = Field(default=None, ge=8, le=16000)
    # Cosine range mapped onto dense evidence 0..1 (see shared/knowledge/scoring.py); None: the
    # provider's default (USE 0.2..0.8, others 0.1..0.7).
    embedding_cosine_floor: float | None = Field(default=None, ge=-1, le=1)
    embedding_cosine_ceiling: float | None = Field(default=None, ge=-1, le=1)
    embedding_timeout_seconds: float = 30.0
    # Threads embedding one large upload with the local USE encoder (admin API, `kefu ingest`).
    # 0: one per CPU the process may use, at most 2 (a 1-vCPU Lambda gets 1; see UseEmbedder).
    embedding_workers: int = Field(default=0, ge=0, le=16)
    # Endpoint of bedrock-runtime / bedrock-agent-runtime; None: the regional endpoint.
    bedrock_endpoint: str | None = None

    # --- Reranking (used for tenants whose RetrievalConfig.rerank is on) ---
    # bedrock: Bedrock rerank models; tei: TEI's /rerank; cohere: Cohere-style /v1/rerank (vLLM, Infinity)
    reranker_provider: Literal["none", "bedrock", "tei", "cohere"] = "none"
    # bedrock: amazon.rerank-v1:0, cohere.rerank-v3-5:0 or a model ARN; cohere: the served model
    reranker_model: str | None = None
    reranker_url: str | None = None  # tei/cohere: the server's base URL
    reranker_api_key: SecretStr | None = None
    reranker_timeout_seconds: float = 10.0
    # How many fused candidates the reranker re-orders.
    rerank_candidates: int = Field(default=20, ge=1, le=100)

    # --- Model gateway (the deployment's model; tenants may choose their own, see shared/tenant_config/model.py) ---
    llm_provider: Literal["extractive", "openai", "azure", "bedrock", "sagemaker"] = "extractive"
    # openai/azure: the API root URL; sagemaker: the endpoint name.
    llm_base_url: str | None = None
    # openai/azure: the served model; bedrock: model id or inference profile; sagemaker: optional.
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    # Secrets Manager name/ARN of the API key, read at cold start (preferred over llm_api_key in AWS).
    llm_api_key_secret: str | None = None
    # Secrets Manager name/ARN of a client certificate for mTLS (JSON: certificate, privateKey, caBundle).
    llm_client_cert_secret: str | None = None
    llm_api_version: str | None = None  # azure: api-version
    llm_payload_format: Literal["messages", "generate"] = "messages"  # sagemaker
    # Fallback targets tried in order (JSON list of ModelTarget objects, camelCase as in the admin API).
    llm_fallbacks: list[dict[str, Any]] = Field(default_factory=list)
    # Non-streaming calls: the whole request.
    llm_timeout_seconds: float = 60.0
    # Deadlines of each model target (a tenant's target may set its own, shared/tenant_config/model.py):
    # connecting; the first text of one attempt; silence between pieces once the answer streams.
    llm_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    llm_first_token_timeout_seconds: float = Field(default=10.0, gt=0)
    llm_between_tokens_timeout_seconds: float = Field(default=10.0, gt=0)
    # Everything before the first text (attempts, retries, fallbacks) within this: then the visitor
    # gets the tenant's fallback or an `error` frame `model_unavailable`. Whole answers within
    # llm_answer_timeout_seconds (then cut: `answer.end` with complete=false). Both together stay
    # well inside the generate function's timeout (infra/constructs/functions.py; tested).
    llm_first_token_budget_seconds: float = Field(default=15.0, gt=0, le=30)
    llm_answer_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # What a visitor gets when no model answers in time: "error" (an `error` frame
    # `model_unavailable` with a retry) or "extractive" (the best-matching passage, quoted).
    llm_on_unavailable: Literal["error", "extractive"] = "error"
    llm_max_retries: int = Field(default=1, ge=0, le=3)
    # Circuit breaker per model target (per warm container): open after this many failures in a
    # row, for this long, then let one attempt through.
    llm_breaker_failures: int = Field(default=3, ge=1)
    llm_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # HTTP model endpoints (tenants' and the deployment's) may reach loopback addresses: only for
    # local runs (`make run` sets it: Ollama on localhost). Link-local, multicast, unspecified and
    # reserved addresses are never reachable (shared/model/endpoint_guard.py).
    model_endpoint_allow_loopback: bool = False
    # Endpoints of sagemaker-runtime / secretsmanager; None: the regional endpoint.
    sagemaker_endpoint: str | None = None
    secretsmanager_endpoint: str | None = None
    # Repeated questions reuse answers this long (0: off). Redis when configured, else in memory.
    answer_cache_ttl_seconds: int = Field(default=6 * 3600, ge=0)
    # Low temperature: answers should stay close to the passages. None leaves the server default.
    llm_temperature: float | None = Field(default=0.2, ge=0)
    llm_max_tokens: int | None = Field(default=1024, ge=1)
    # Passages scoring below this are not used to answer (the bot says it does not know).
    min_answer_score: float = 0.35

    # --- Streaming to the visitor ---
    # Every frame is a billed WebSocket message: 4 a second reads as steady typing and keeps the stream
    # the cheaper half of a conversation's infra cost (docs/cost.md measures 60 ms against 250 ms).
    stream_flush_ms: int = 250
    stream_flush_chars: int = 400

    # --- Admin API ---
    admin_key: SecretStr | None = None
    admin_key_secret_arn: str | None = None

    # --- Channels (shared/channels, docs/channels.md) ---
    # Public base URL of the channels API: webhookUrl = <it>/channels/<channelId>. Empty: the admin API's own.
    channels_public_url: str = ""
    # Tenants' channel credentials live in Secrets Manager as <prefix>/<tenantId>/<name>.
    tenant_secrets_prefix: str = "kefu/tenants"

    # --- Visitor identity (shared/chat/identity.py) ---
    # Signs visitor tokens: one key per deployment (in AWS an SSM Parameter Store SecureString, by name).
    visitor_token_secret: SecretStr | None = None
    visitor_token_parameter: str | None = None
    # A rotated widget key keeps admitting new connections this long unless the rotation says otherwise.
    widget_key_grace_seconds: int = Field(default=0, ge=0, le=7 * 24 * 3600)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings validated once per cold start."""
    return Settings()
