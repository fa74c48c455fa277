"""One typed settings model for every function, read from ``KEFU_*`` environment variables.

Local emulation and the cloud differ only in these values (mostly endpoints): handler code never
branches on where it runs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

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
    # https://{domainName}/{stage}, the way AWS documents it.
    connections_endpoint: str | None = None

    # --- State layer ---
    tenants_table: str = "kefu-tenants"
    connections_table: str = "kefu-connections"
    conversations_table: str = "kefu-conversations"
    messages_table: str = "kefu-messages"
    # None: run without the Redis cache (DynamoDB alone still answers everything).
    redis_url: str | None = None
    redis_timeout_seconds: float = 0.25
    connection_ttl_seconds: int = 3 * 3600
    conversation_ttl_days: int = 90
    history_turns: int = Field(default=10, ge=0, le=50)

    # --- Message intake and generation hand-off ---
    generate_queue_url: str = ""
    max_message_chars: int = 8192
    retrieve_function: str = "kefu-retrieve"

    # --- Knowledge ---
    knowledge_backend: Literal["local", "opensearch"] = "local"
    knowledge_dir: Path = Path(".kefu/knowledge")
    opensearch_endpoint: str | None = None
    opensearch_service: Literal["aoss", "es"] = "aoss"
    opensearch_index: str = "kefu-knowledge"
    retrieve_top_k: int = Field(default=4, ge=1, le=20)

    # --- Model gateway ---
    llm_provider: Literal["extractive", "openai"] = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = 60.0
    # Low temperature: answers should stay close to the passages. None leaves the server default.
    llm_temperature: float | None = Field(default=0.2, ge=0)
    llm_max_tokens: int | None = Field(default=1024, ge=1)
    # Passages scoring below this are not used to answer (the bot says it does not know).
    min_answer_score: float = 0.35

    # --- Streaming to the visitor ---
    stream_flush_ms: int = 60
    stream_flush_chars: int = 400

    # --- Admin API ---
    admin_key: SecretStr | None = None
    admin_key_secret_arn: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings validated once per cold start."""
    return Settings()
