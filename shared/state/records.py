"""Plain records the state store hands out (no PynamoDB types leak past the adapter)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.config_section import CamelModel
from shared.tenant_config import TenantConfig

Role = Literal["visitor", "bot", "agent", "note", "event"]
# Roles that are part of the dialogue (the bot's context); notes and events are for people only.
DIALOGUE_ROLES: frozenset[str] = frozenset({"visitor", "bot", "agent"})
ConversationStatus = Literal["bot", "queued", "assigned", "resolved"]
ConnectionRole = Literal["visitor", "agent"]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_tenant_id() -> str:
    return "t_" + secrets.token_hex(8)


def new_widget_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def new_conversation_id() -> str:
    return "c_" + uuid.uuid4().hex


def new_visitor_id() -> str:
    return "v_" + uuid.uuid4().hex


# Only verified users' ids start with this (fresh ones are "v_…"; tokens are issued only for ids the
# server assigned), so agents can tell a signed-in user from an anonymous visitor.
VERIFIED_USER_PREFIX = "u_"


_last_ms = 0
_last_ms_lock = threading.Lock()


def monotonic_ms() -> int:
    """Epoch milliseconds, strictly increasing within this process: two messages (or assignments) made
    one after the other in the same millisecond still sort in the order they were made."""
    global _last_ms
    with _last_ms_lock:
        _last_ms = max(now_ms(), _last_ms + 1)
        return _last_ms


def new_message_id(at_ms: int | None = None) -> str:
    """Sortable by time: a Query on a conversation returns its messages in order."""
    return f"{at_ms if at_ms is not None else monotonic_ms():013d}-{secrets.token_hex(4)}"


def new_agent_id() -> str:
    return "a_" + secrets.token_hex(8)


def answer_id_for(message_id: str) -> str:
    """The bot answer to a message has a derived id, so answering twice is a key collision."""
    return message_id + ".a"


class AdminKeyRecord(BaseModel):
    name: str
    key_hash: str
    created_at: int


class Tenant(BaseModel):
    tenant_id: str
    name: str
    widget_key: str
    created_at: int
    config: TenantConfig = Field(default_factory=TenantConfig)
    # After a rotation, the old key admits new connections until ``previous_widget_key_until`` (epoch ms).
    previous_widget_key: str | None = None
    previous_widget_key_until: int | None = None
    # A suspended tenant's widget and agents are refused (``suspended_reason`` says why, to operators).
    suspended: bool = False
    suspended_reason: str | None = None
    # Signs the tenant's logged-in users (``userId`` + ``userHash``); None: that feature is off.
    identity_secret: str | None = None
    # Per-tenant admin keys: SHA-256 of each, by key id (shared/admin/keys.py).
    admin_keys: dict[str, AdminKeyRecord] = Field(default_factory=dict)


class ChannelRef(BaseModel):
    """The messaging channel a customer writes from (WeChat, WeCom, an app) and their id on it."""

    kind: str
    channel_id: str
    customer_id: str


class ChannelNotice(BaseModel):
    """The platform's last refusal to take a message for this customer (``window_closed``: the reply
    window or quota is used up; ``session_elsewhere``: WeCom's own staff hold the session), shown to
    agents until a later message goes through."""

    status: str
    reason: str
    at: int


class Connection(BaseModel):
    connection_id: str
    tenant_id: str
    # The visitor's id; for an agent connection, the agent's id.
    visitor_id: str
    conversation_id: str | None = None
    connected_at: int
    domain_name: str
    stage: str
    role: ConnectionRole = "visitor"
    agent_id: str | None = None
    # What the widget reports about the visitor's page (shown to agents).
    page: str | None = None
    language: str | None = None
    # The caller's address as API Gateway saw it (visitors; per-address limits), never shown to agents.
    source_ip: str | None = None
    # A customer on a messaging channel: frames to this "connection" go out through the channel.
    channel: ChannelRef | None = None


class Ticket(BaseModel):
    """What a visitor left when nobody could chat: how to reach them and their message. Open until an
    agent closes it (the console lists open tickets)."""

    contact: str
    name: str | None = None
    text: str | None = None
    created_at: int
    status: Literal["open", "closed"] = "open"
    closed_by: str | None = None
    closed_at: int | None = None


class Conversation(BaseModel):
    conversation_id: str
    tenant_id: str
    visitor_id: str
    status: ConversationStatus = "bot"
    created_at: int
    updated_at: int
    # Set while queued (and kept afterwards, for waiting-time reports).
    waiting_since: int | None = None
    handoff_reason: str | None = None
    assignee_id: str | None = None
    assignee_name: str | None = None
    # The agent who last held it and handed it back (to the bot, or resolved): they may keep reading it.
    last_assignee_id: str | None = None
    # Bot answers without a good source, in a row (reset by a grounded answer or a status change).
    no_answer_streak: int = 0
    visitor_page: str | None = None
    visitor_language: str | None = None
    # The last visitor message while a person owns (or is about to own) the conversation.
    preview: str | None = None
    # Last-read watermarks: the id of the newest message each side has seen.
    visitor_read_until: str | None = None
    agent_read_until: str | None = None
    # Set once the visitor was told they are still waiting (cleared by every new handoff).
    wait_notified_at: int | None = None
    # Contact details and a message left by the visitor (the agents' ticket), if any.
    ticket: Ticket | None = None
    # A conversation from a messaging channel, and the platform's last refusal to deliver in it.
    channel: ChannelRef | None = None
    channel_notice: ChannelNotice | None = None


class Agent(BaseModel):
    """A person who answers visitors. The key is stored as a hash; the agent holds ``{agent_id}.{secret}``."""

    agent_id: str
    tenant_id: str
    name: str
    key_hash: str
    created_at: int
    # Conversations the agent holds at once; None: the tenant's default (HandoffConfig.agent_capacity).
    capacity: int | None = None
    away: bool = False
    disabled: bool = False
    # Round-robin: the agent assigned least recently goes first.
    last_assigned_at: int = 0
    # Conversations assigned to the agent now: the store changes it in the same atomic write as each
    # assignment and release, so a capacity check cannot be raced (a query of the assignee index could).
    load: int = 0


@dataclass(frozen=True)
class AgentEdit:
    """Profile fields of an agent to change (None: leave as it is)."""

    name: str | None = None
    capacity: int | None = None
    disabled: bool | None = None
    key_hash: str | None = None

    def changes(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class StatusChange:
    """A conditional move of a conversation's ownership (applied atomically by the store)."""

    status: ConversationStatus
    # The change applies only from these statuses (and, if set, only while this agent holds it).
    from_statuses: frozenset[str]
    expected_assignee_id: str | None = None
    assignee_id: str | None = None
    assignee_name: str | None = None
    waiting_since: int | None = None
    reason: str | None = None
    preview: str | None = None
    # For an assignment: only if the agent then holds fewer than this many conversations.
    capacity: int | None = None


class Citation(CamelModel):
    """Where an answer came from, as stored with the answer, sent in ``answer.end`` and shown in
    transcripts (one model for all three: camelCase on the wire, field names in storage)."""

    document_id: str
    title: str
    snippet: str
    url: str | None = None


class AnswerUsage(BaseModel):
    """What one bot answer cost and how fast it came, stored on the answer (metering, cost per
    conversation). ``source``: "model" (asked fresh), "cache" (a cached answer) or "shared" (an
    identical question answered at the same time); tokens are None when the provider did not report
    them (and for reused answers, which cost no tokens)."""

    source: str
    provider: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    # From the generate function's start on the job to the first frame sent, and to the answer's end.
    first_token_ms: int
    total_ms: int


class StoredMessage(BaseModel):
    conversation_id: str
    message_id: str
    tenant_id: str
    role: Role
    text: str
    created_at: int
    client_message_id: str | None = None
    citations: list[Citation] = []
    # Who wrote an agent message or note (agent id and display name).
    sender_id: str | None = None
    sender_name: str | None = None
    # For role "event": what happened (handoff, assigned, transferred, resolved, returned, reopened).
    event: str | None = None
    # For bot answers: the visitor's rating, "up" or "down".
    feedback: str | None = None
    # For bot answers: tokens, model and latency.
    usage: AnswerUsage | None = None
    # For bot answers: the model failed after the first token; ``text`` is what the visitor saw.
    incomplete: bool = False


def transcript_event(conversation_id: str, tenant_id: str, event: str, text: str, at: int) -> StoredMessage:
    """A transcript line of role "event" (agents read it; the bot never does), stored at ``at``."""
    return StoredMessage(
        conversation_id=conversation_id,
        message_id=new_message_id(at),
        tenant_id=tenant_id,
        role="event",
        event=event,
        text=text,
        created_at=at,
    )
