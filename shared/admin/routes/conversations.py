from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.admin.deps import ExistingTenant, Store
from shared.chat.protocol import Citation
from shared.errors import NotFound

router = APIRouter(prefix="/v1/tenants/{tenant_id}/conversations", tags=["conversations"])


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class MessageOut(_Camel):
    message_id: str
    role: str
    text: str
    created_at: int
    client_message_id: str | None = None
    citations: list[Citation] = []


class Transcript(_Camel):
    conversation_id: str
    visitor_id: str
    status: str
    messages: list[MessageOut]


@router.get("/{conversation_id}/messages", response_model=Transcript, response_model_by_alias=True)
def transcript(conversation_id: str, tenant: ExistingTenant, store: Store) -> Transcript:
    conversation = store.get_conversation(conversation_id) if len(conversation_id) <= 64 else None
    if conversation is None or conversation.tenant_id != tenant.tenant_id:
        raise NotFound(f"unknown conversation {conversation_id!r}")
    messages = store.list_messages(conversation_id)
    return Transcript(
        conversation_id=conversation.conversation_id,
        visitor_id=conversation.visitor_id,
        status=conversation.status,
        messages=[
            MessageOut(
                message_id=m.message_id,
                role=m.role,
                text=m.text,
                created_at=m.created_at,
                client_message_id=m.client_message_id,
                citations=[Citation(**c.model_dump()) for c in m.citations],
            )
            for m in messages
        ],
    )
