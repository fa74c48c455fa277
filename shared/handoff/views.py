"""Records as the frames show them to agents and visitors."""

from __future__ import annotations

import hashlib

from shared.handoff.texts import notice_language
from shared.state.records import VERIFIED_USER_PREFIX, Agent, Conversation, StoredMessage
from shared.wire.protocol import (
    AgentRef,
    ChannelNoticeOut,
    ChannelOut,
    ConversationSummary,
    Frame,
    HistoryFrame,
    MessageOut,
    TicketOut,
    VisitorInfo,
)


def agent_ref(agent: Agent) -> AgentRef:
    return AgentRef(agent_id=agent.agent_id, name=agent.name)


def assignee_ref(conversation: Conversation) -> AgentRef | None:
    if conversation.assignee_id is None:
        return None
    return AgentRef(agent_id=conversation.assignee_id, name=conversation.assignee_name or conversation.assignee_id)


def visitor_info(conversation: Conversation, *, page_chars: int = 200) -> VisitorInfo:
    return VisitorInfo(
        alias=alias(conversation.visitor_id, conversation.visitor_language),
        page=conversation.visitor_page[:page_chars] if conversation.visitor_page else None,
        # Declared by the page, else that of the visitor's last words (a channel declares none).
        language=notice_language(conversation),
        first_seen=conversation.created_at,
        channel=ChannelOut(**conversation.channel.model_dump()) if conversation.channel else None,
        channel_notice=ChannelNoticeOut(**notice.model_dump()) if (notice := conversation.channel_notice) else None,
    )


def ticket_out(conversation: Conversation) -> TicketOut | None:
    ticket = conversation.ticket
    if ticket is None:
        return None
    return TicketOut(
        conversation_id=conversation.conversation_id,
        contact=ticket.contact,
        name=ticket.name,
        text=ticket.text,
        created_at=ticket.created_at,
        status=ticket.status,
        visitor=visitor_info(conversation),
    )


def summary(conversation: Conversation, *, page_chars: int = 200) -> ConversationSummary:
    """``page_chars`` keeps list entries small (the full URL is in the history's summary)."""
    return ConversationSummary(
        conversation_id=conversation.conversation_id,
        status=conversation.status,
        visitor=visitor_info(conversation, page_chars=page_chars),
        updated_at=conversation.updated_at,
        waiting_since=conversation.waiting_since,
        reason=conversation.handoff_reason,
        assignee=assignee_ref(conversation),
        preview=conversation.preview,
        visitor_read_until=conversation.visitor_read_until,
        agent_read_until=conversation.agent_read_until,
    )


def message_out(message: StoredMessage) -> MessageOut:
    agent = (
        AgentRef(agent_id=message.sender_id, name=message.sender_name or message.sender_id)
        if message.sender_id
        else None
    )
    return MessageOut(
        message_id=message.message_id,
        role=message.role,
        text=message.text,
        created_at=message.created_at,
        client_message_id=message.client_message_id,
        citations=message.citations if message.role == "bot" else None,
        agent=agent,
        event=message.event,
        feedback=message.feedback,
        complete=False if message.incomplete else None,
    )


def preview_of(text: str, limit: int = 140) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# API Gateway splits messages above 32 KB into frames; a history page stays well under one frame.
HISTORY_FRAME_BUDGET = 28 * 1024


def history_frame(
    conversation: Conversation, messages: list[StoredMessage], more: bool, *, newer: bool, agent: bool
) -> HistoryFrame:
    """A page of the transcript. Visitors never get internal notes. A page too large for one frame loses
    messages at its far end (the oldest, or the newest when paging forward) and says there is more."""
    shown = [message_out(m) for m in messages if agent or m.role != "note"]
    frame = HistoryFrame(
        conversation_id=conversation.conversation_id,
        status=conversation.status,
        messages=shown,
        has_more=more,
        agent=assignee_ref(conversation),
        visitor_read_until=conversation.visitor_read_until,
        agent_read_until=conversation.agent_read_until,
        conversation=summary(conversation, page_chars=500) if agent else None,
    )
    while len(frame.messages) > 1 and len(frame.to_json().encode()) > HISTORY_FRAME_BUDGET:
        frame.messages = frame.messages[:-1] if newer else frame.messages[1:]
        frame.has_more = True
    return frame


def fit(frame: Frame, *lists: str) -> Frame:
    """Drop entries from the ends of the named list fields until the frame fits one API Gateway frame
    (the oldest conversations stay: they have waited longest)."""
    while len(frame.to_json().encode()) > HISTORY_FRAME_BUDGET:
        longest = max(lists, key=lambda name: len(getattr(frame, name)))
        entries = getattr(frame, longest)
        if not entries:
            break
        setattr(frame, longest, entries[:-1])
    return frame


def alias(visitor_id: str, language: str | None = None) -> str:
    """What agents call a visitor: four hex digits derived from the id (the id itself is a credential's
    subject and stays off agents' screens). A user the tenant's site signed in is a "User"."""
    tag = hashlib.sha256(visitor_id.encode()).hexdigest()[:4].upper()
    chinese = (language or "").lower().startswith("zh")
    if visitor_id.startswith(VERIFIED_USER_PREFIX):
        return f"用户 {tag}" if chinese else f"User {tag}"
    return f"访客 {tag}" if chinese else f"Visitor {tag}"
