"""PynamoDB models of the durable state. Table names and the endpoint come from Settings.

One item per message (never one growing item per conversation), everything with a TTL.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from shared.settings import Settings


class TenantModel(Model):
    class Meta:
        table_name = "kefu-tenants"

    tenant_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    widget_key = UnicodeAttribute()
    created_at = NumberAttribute()
    # TenantConfig as JSON; absent for tenants created before it existed.
    config = JSONAttribute(null=True)
    previous_widget_key = UnicodeAttribute(null=True)
    previous_widget_key_until = NumberAttribute(null=True)
    suspended = BooleanAttribute(null=True)
    suspended_reason = UnicodeAttribute(null=True)
    identity_secret = UnicodeAttribute(null=True)
    # {key id: {name, key_hash, created_at}}: hashes of the tenant's admin keys.
    admin_keys = JSONAttribute(null=True)


class AgentsByTenant(GlobalSecondaryIndex["AgentModel"]):
    class Meta:
        index_name = "tenant-index"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class AgentModel(Model):
    """A person who answers a tenant's visitors (the key is stored as its SHA-256)."""

    class Meta:
        table_name = "kefu-agents"

    agent_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    key_hash = UnicodeAttribute()
    created_at = NumberAttribute()
    capacity = NumberAttribute(null=True)
    away = BooleanAttribute(default=False)
    disabled = BooleanAttribute(default=False)
    last_assigned_at = NumberAttribute(default=0)
    load = NumberAttribute(default=0)

    by_tenant = AgentsByTenant()


class ConnectionsByConversation(GlobalSecondaryIndex["ConnectionModel"]):
    class Meta:
        index_name = "conversation-index"
        projection = AllProjection()

    conversation_id = UnicodeAttribute(hash_key=True)


class AgentConnectionsByTenant(GlobalSecondaryIndex["ConnectionModel"]):
    """Sparse: only agent connections carry ``agent_tenant_id`` (presence and fan-out to agents)."""

    class Meta:
        index_name = "agent-tenant-index"
        projection = AllProjection()

    agent_tenant_id = UnicodeAttribute(hash_key=True)


class ConnectionModel(Model):
    """One open WebSocket connection of a visitor or an agent."""

    class Meta:
        table_name = "kefu-connections"

    connection_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    visitor_id = UnicodeAttribute()
    # Set by the first message; a GSI key attribute must be absent rather than empty.
    conversation_id = UnicodeAttribute(null=True)
    connected_at = NumberAttribute()
    # Where to reach the connection: the @connections callback base is https://{domain}/{stage}.
    domain_name = UnicodeAttribute()
    stage = UnicodeAttribute()
    role = UnicodeAttribute(default="visitor")
    agent_id = UnicodeAttribute(null=True)
    agent_tenant_id = UnicodeAttribute(null=True)
    page = UnicodeAttribute(null=True)
    language = UnicodeAttribute(null=True)
    source_ip = UnicodeAttribute(null=True)
    # A messaging channel's customer (ChannelRef as JSON).
    channel = JSONAttribute(null=True)
    expires_at = TTLAttribute()

    by_conversation = ConnectionsByConversation()
    agent_connections = AgentConnectionsByTenant()


class ConversationsByTenant(GlobalSecondaryIndex["ConversationModel"]):
    class Meta:
        index_name = "tenant-index"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class QueuedConversations(GlobalSecondaryIndex["ConversationModel"]):
    """Sparse: ``queued_tenant_id`` exists only while a conversation waits for a person."""

    class Meta:
        index_name = "queue-index"
        projection = AllProjection()

    queued_tenant_id = UnicodeAttribute(hash_key=True)
    waiting_since = NumberAttribute(range_key=True)


class ConversationsByAssignee(GlobalSecondaryIndex["ConversationModel"]):
    """Sparse: ``assignee_id`` exists only while an agent holds the conversation."""

    class Meta:
        index_name = "assignee-index"
        projection = AllProjection()

    assignee_id = UnicodeAttribute(hash_key=True)
    updated_at = NumberAttribute(range_key=True)


class OpenTickets(GlobalSecondaryIndex["ConversationModel"]):
    """Sparse: ``ticket_tenant_id`` exists only while a visitor's left message waits for an agent."""

    class Meta:
        index_name = "ticket-index"
        projection = AllProjection()

    ticket_tenant_id = UnicodeAttribute(hash_key=True)
    ticket_at = NumberAttribute(range_key=True)


class ConversationModel(Model):
    class Meta:
        table_name = "kefu-conversations"

    conversation_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    visitor_id = UnicodeAttribute()
    status = UnicodeAttribute(default="bot")
    created_at = NumberAttribute()
    updated_at = NumberAttribute()
    waiting_since = NumberAttribute(null=True)
    queued_tenant_id = UnicodeAttribute(null=True)
    handoff_reason = UnicodeAttribute(null=True)
    assignee_id = UnicodeAttribute(null=True)
    assignee_name = UnicodeAttribute(null=True)
    last_assignee_id = UnicodeAttribute(null=True)
    no_answer_streak = NumberAttribute(default=0)
    visitor_page = UnicodeAttribute(null=True)
    visitor_language = UnicodeAttribute(null=True)
    preview = UnicodeAttribute(null=True)
    visitor_read_until = UnicodeAttribute(null=True)
    agent_read_until = UnicodeAttribute(null=True)
    wait_notified_at = NumberAttribute(null=True)
    # Ticket as JSON; ticket_tenant_id / ticket_at key the sparse index while it is open.
    ticket = JSONAttribute(null=True)
    ticket_tenant_id = UnicodeAttribute(null=True)
    ticket_at = NumberAttribute(null=True)
    # ChannelRef and ChannelNotice as JSON (conversations from messaging channels).
    channel = JSONAttribute(null=True)
    channel_notice = JSONAttribute(null=True)
    expires_at = TTLAttribute()

    by_tenant = ConversationsByTenant()
    queued = QueuedConversations()
    by_assignee = ConversationsByAssignee()
    open_tickets = OpenTickets()


class MessageModel(Model):
    """A message, or (``kind == "client-id"``) the record that makes a client message id idempotent.

    Message ids sort by time, so a Query on the conversation returns the transcript in order. A bot
    answer's id is its question's id plus ``.a``: it sorts right after the question, and a conditional
    put on it makes answering at most once.
    """

    class Meta:
        table_name = "kefu-messages"

    conversation_id = UnicodeAttribute(hash_key=True)
    message_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute(default="message")
    tenant_id = UnicodeAttribute()
    role = UnicodeAttribute(null=True)
    text = UnicodeAttribute(null=True)
    client_message_id = UnicodeAttribute(null=True)
    # For a client-id record: which message it points to.
    target_conversation_id = UnicodeAttribute(null=True)
    target_message_id = UnicodeAttribute(null=True)
    citations = JSONAttribute(null=True)
    sender_id = UnicodeAttribute(null=True)
    sender_name = UnicodeAttribute(null=True)
    event = UnicodeAttribute(null=True)
    feedback = UnicodeAttribute(null=True)
    # Bot answers: AnswerUsage as JSON (tokens, model, latency).
    usage = JSONAttribute(null=True)
    # Bot answers cut by a model failure (absent: complete).
    incomplete = BooleanAttribute(null=True)
    created_at = NumberAttribute()
    expires_at = TTLAttribute()


class RateCounterModel(Model):
    """One rate-limit counter for one window (shared/chat/rate_limits.py); gone by TTL after it."""

    class Meta:
        table_name = "kefu-limits"

    counter_key = UnicodeAttribute(hash_key=True)
    hits = NumberAttribute(default=0)
    expires_at = TTLAttribute()


class UploadModel(Model):
    """One presigned upload and its ingestion status (shared/state/uploads.py), in the limits table:
    ``upload#<tenant>#<upload id>``, gone by TTL a while after the upload."""

    class Meta:
        table_name = "kefu-limits"

    counter_key = UnicodeAttribute(hash_key=True)
    payload = UnicodeAttribute()
    revision = NumberAttribute(default=0)
    expires_at = TTLAttribute()


def bind_upload_model(table_name: str, endpoint: str | None, region: str) -> None:
    meta: Any = UploadModel.Meta  # PynamoDB's Meta is configured by attribute
    if (getattr(meta, "table_name", None), getattr(meta, "host", None)) != (table_name, endpoint):
        UploadModel._connection = None  # rebuilt lazily with the new endpoint
    meta.table_name = table_name
    meta.host = endpoint
    meta.region = region
    meta.connect_timeout_seconds = 3
    meta.read_timeout_seconds = 5
    meta.max_retry_attempts = 2


class UsageCounterModel(Model):
    """A tenant's usage in one calendar month (shared/chat/quotas.py), in the limits table beside the
    rate counters: ``usage:<tenant>:<YYYY-MM>`` (questions, tokens) and ``…:source:<origin>`` (answers
    and their tokens by where the text came from). Kept about 13 months by TTL."""

    class Meta:
        table_name = "kefu-limits"

    counter_key = UnicodeAttribute(hash_key=True)
    questions = NumberAttribute(null=True)
    answers = NumberAttribute(null=True)
    input_tokens = NumberAttribute(null=True)
    output_tokens = NumberAttribute(null=True)
    # input + output tokens of model answers: the quota's condition cannot add two attributes.
    tokens = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


class KnowledgePointerModel(Model):
    """The current version of a tenant's knowledge index in S3 (shared/knowledge/s3_index.py), moved
    only by a conditional write, and the version before it. Keyed ``<embedder prefix><tenant>``: during
    an embedder rebuild the next embedder's index has its own pointer."""

    class Meta:
        table_name = "kefu-knowledge"

    index_key = UnicodeAttribute(hash_key=True)
    version = UnicodeAttribute()
    previous = UnicodeAttribute(null=True)
    updated_at = NumberAttribute()


ALL_MODELS: tuple[type[Model], ...] = (
    TenantModel,
    KnowledgePointerModel,
    AgentModel,
    ConnectionModel,
    ConversationModel,
    MessageModel,
    RateCounterModel,
)


def bind_models(settings: Settings) -> None:
    """Point every model at the tables and endpoint the settings name (idempotent)."""
    tables = {
        TenantModel: settings.tenants_table,
        AgentModel: settings.agents_table,
        ConnectionModel: settings.connections_table,
        ConversationModel: settings.conversations_table,
        MessageModel: settings.messages_table,
        RateCounterModel: settings.limits_table,
        UsageCounterModel: settings.limits_table,
        KnowledgePointerModel: settings.knowledge_table,
    }
    for model, table in tables.items():
        meta = model.Meta
        changed = (
            getattr(meta, "table_name", None) != table
            or getattr(meta, "host", None) != settings.dynamodb_endpoint
            or getattr(meta, "region", None) != settings.aws_region
        )
        meta.table_name = table
        meta.host = settings.dynamodb_endpoint
        meta.region = settings.aws_region
        # Short timeouts and few retries: a slow table must surface as an error, not eat the
        # 29 s API Gateway integration budget.
        meta.connect_timeout_seconds = 3
        meta.read_timeout_seconds = 5
        meta.max_retry_attempts = 2
        if changed:
            model._connection = None  # rebuilt lazily with the new endpoint


def create_tables(settings: Settings) -> None:
    """Create the tables where missing (local emulation and tests; the CDK app owns them in AWS)."""
    bind_models(settings)
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
