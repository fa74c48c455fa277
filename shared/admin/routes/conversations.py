from __future__ import annotations

from fastapi import APIRouter

from shared.admin.deps import ExistingTenant, Store
from shared.config_section import CamelModel
from shared.errors import NotFound
from shared.state.records import AnswerUsage, ChannelNotice, ChannelRef, Citation, StoredMessage

router = APIRouter(prefix="/v1/tenants/{tenant_id}/conversations", tags=["conversations"])


class UsageOut(AnswerUsage, CamelModel):
    """A bot answer's cost and speed: ``AnswerUsage`` in the API's camelCase."""


class MessageOut(CamelModel):
    message_id: str
    role: str
    text: str
    created_at: int
    client_message_id: str | None = None
    citations: list[Citation] = []
    # Bot answers only.
    usage: UsageOut | None = None
    # Bot answers cut by a model failure: false.
    complete: bool = True
    # Events (handoff, model_unavailable, ...).
    event: str | None = None


class ConversationUsage(CamelModel):
    """Totals over the conversation's bot answers (tokens the providers reported)."""

    answers: int
    model_answers: int
    input_tokens: int
    output_tokens: int


class ChannelRefOut(ChannelRef, CamelModel):
    """The messaging channel and the customer's platform id, for conversations from a channel."""


class ChannelNoticeOut(ChannelNotice, CamelModel):
    """The platform's last refusal to deliver (``window_closed``, ``session_elsewhere``)."""


class Transcript(CamelModel):
    conversation_id: str
    visitor_id: str
    status: str
    channel: ChannelRefOut | None = None
    channel_notice: ChannelNoticeOut | None = None
    messages: list[MessageOut]
    usage: ConversationUsage


def _totals(messages: list[StoredMessage]) -> ConversationUsage:
    usages = [m.usage for m in messages if m.role == "bot" and m.usage is not None]
    return ConversationUsage(
        answers=len(usages),
        model_answers=sum(1 for u in usages if u.source == "model"),
        input_tokens=sum(u.input_tokens or 0 for u in usages),
        output_tokens=sum(u.output_tokens or 0 for u in usages),
    )


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
        channel=ChannelRefOut(**conversation.channel.model_dump()) if conversation.channel else None,
        channel_notice=(
            ChannelNoticeOut(**conversation.channel_notice.model_dump()) if conversation.channel_notice else None
        ),
        messages=[
            MessageOut(
                message_id=m.message_id,
                role=m.role,
                text=m.text,
                created_at=m.created_at,
                client_message_id=m.client_message_id,
                citations=m.citations,
                usage=UsageOut(**m.usage.model_dump()) if m.usage is not None else None,
                complete=not m.incomplete,
                event=m.event,
            )
            for m in messages
        ],
        usage=_totals(messages),
    )
