"""Plain records the state store hands out (no PynamoDB types leak past the adapter)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from shared.tenant_config import TenantConfig

Role = Literal["visitor", "bot", "agent"]


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


def new_message_id(at_ms: int | None = None) -> str:
    """Sortable by time: a Query on a conversation returns its messages in order."""
    return f"{at_ms if at_ms is not None else now_ms():013d}-{secrets.token_hex(4)}"


def answer_id_for(message_id: str) -> str:
    """The bot answer to a message has a derived id, so answering twice is a key collision."""
    return message_id + ".a"


class Tenant(BaseModel):
    tenant_id: str
    name: str
    widget_key: str
    created_at: int
    config: TenantConfig = Field(default_factory=TenantConfig)


class Connection(BaseModel):
    connection_id: str
    tenant_id: str
    visitor_id: str
    conversation_id: str | None = None
    connected_at: int
    domain_name: str
    stage: str


class Conversation(BaseModel):
    conversation_id: str
    tenant_id: str
    visitor_id: str
    status: str = "bot"
    created_at: int
    updated_at: int


class Citation(BaseModel):
    document_id: str
    title: str
    snippet: str
    url: str | None = None


class StoredMessage(BaseModel):
    conversation_id: str
    message_id: str
    tenant_id: str
    role: Role
    text: str
    created_at: int
    client_message_id: str | None = None
    citations: list[Citation] = []
