"""The channel destination of the client-push port: frames meant for a channel's customer go out
through the channel (WeChat, WeCom, an app) instead of a WebSocket.

A channel customer is attached to their conversation as a "connection" whose id names the channel and
the customer (``channel_connection_id``), so everything that already pushes frames to a conversation's
visitor — the generate function's answer, an agent's reply, handoff notices — reaches the customer
without knowing about channels. Nothing streams: deltas are dropped, and the terminal ``answer.end``
(which carries the whole answer and its citations) is sent whole, split under the platform's limit.

A platform's refusal (a closed window, a session WeCom's staff hold) is stored on the conversation and
in its transcript for the agents, never raised: the job would retry a message the platform keeps
refusing. A failure worth retrying (the platform unreachable) is raised, so the job is retried; each
message is sent at most once per channel customer, so a retried job does not send it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.channels.base import Channel, ChannelError, OutboundCitation, OutboundKind, WindowState
from shared.channels.directory import ChannelDirectory, ChannelRecord
from shared.channels.outbound import SendOutcome, send_answer
from shared.channels.state import ChannelState
from shared.errors import ConnectionGone
from shared.observability import count_failed_channel_send, logger
from shared.state.records import ChannelNotice, ChannelRef, now_ms, transcript_event
from shared.state.store import StateStore
from shared.wire.push import ClientPush, channel_customer

# Error frames a customer should read (the others are about widget actions a channel never sends).
_TOLD_ERRORS = frozenset({"model_unavailable", "rate_limited", "quota_exceeded", "message_too_large", "bad_request"})
_SENT_TTL_SECONDS = 7 * 24 * 3600.0
# Notices that say nobody can chat now (shared/handoff/service.py's ``_nobody``).
_NOBODY_CODES = frozenset({"no_agents", "offline"})
_NO_WINDOW = WindowState(open=False, expires_at=None, remaining=None)
# Outcomes that left the customer without the message (counted by the ``ChannelSendsFailed`` metric).
_FAILED = frozenset({"not_delivered", "window_closed"})
# Counts a failed send: (tenant, channel id, kind, status, conversation id).
CountFailed = Callable[[str, str, str, str, str | None], None]


@dataclass(frozen=True)
class Outgoing:
    """What a frame says to a channel customer."""

    conversation_id: str | None
    text: str
    citations: list[OutboundCitation]
    # The stored message it carries (answers, agent messages): sent at most once.
    message_id: str | None
    kind: OutboundKind = "answer"


def outgoing(frame: dict[str, Any]) -> Outgoing | None:
    """The text a frame carries for a channel customer, or None for frames only a widget uses."""
    kind = frame.get("type")
    conversation_id = frame.get("conversationId")
    if kind == "answer.end":
        citations = [OutboundCitation(title=c.get("title", ""), url=c.get("url")) for c in frame.get("citations", [])]
        return Outgoing(conversation_id, str(frame.get("text", "")), citations, frame.get("messageId"))
    if kind == "agent.message":
        return Outgoing(conversation_id, str(frame.get("text", "")), [], frame.get("messageId"), "agent_message")
    if kind == "notice":
        return Outgoing(conversation_id, str(frame.get("text", "")), [], None, "notice")
    if kind == "error" and frame.get("code") in _TOLD_ERRORS:
        text = frame.get("text") or frame.get("message") or ""
        return Outgoing(conversation_id, str(text), [], frame.get("messageId"), "notice")
    return None


class ChannelPush(ClientPush):
    def __init__(
        self,
        directory: ChannelDirectory,
        adapter_for: Callable[[ChannelRecord], Channel],
        store: StateStore,
        state: ChannelState,
        tell_agents: Callable[[str], None] | None = None,
        count_failed: CountFailed = count_failed_channel_send,
    ) -> None:
        self._count_failed = count_failed
        self._directory = directory
        self._adapter_for = adapter_for
        self._store = store
        self._state = state
        # Shows a refusal to the conversation's agent at once (by conversation id); None: on next open.
        self._tell_agents = tell_agents

    def send(self, connection_id: str, frame: str) -> None:
        payload = json.loads(frame)
        kind = payload.get("type")
        handed_off = kind == "conversation.status" and payload.get("status") == "queued"
        # A customer who asked for a person while none of kefu's agents could chat: a channel with its
        # own staff (WeCom's reception) hands them over instead of telling them nobody is there.
        nobody_here = kind == "notice" and payload.get("code") in _NOBODY_CODES
        message = outgoing(payload)
        if not handed_off and (message is None or not message.text.strip()):
            return
        channel_id, customer_id = channel_customer(connection_id)
        record = self._directory.get(channel_id)
        if record is None or not record.enabled:
            raise ConnectionGone(f"channel {channel_id} is gone or disabled")
        if handed_off or nobody_here:
            if self._hand_off(record, customer_id, payload.get("conversationId")) or handed_off:
                return
        if message is None:
            return
        sent_key = f"chan:sent:{channel_id}:{customer_id}:{message.message_id}" if message.message_id else None
        if sent_key is not None and not self._state.put_if_absent(sent_key, {"at": now_ms()}, _SENT_TTL_SECONDS):
            logger.info("already sent through the channel", extra={"message_id": message.message_id})
            return
        channel: Channel = self._adapter_for(record)
        try:
            outcome = send_answer(channel, customer_id, message.text, message.citations or None, message.kind)
        except BaseException as exc:
            if sent_key is not None:  # not sent: the job's retry may send it
                self._state.delete(sent_key)
            if isinstance(exc, ChannelError):
                # The agents see it (an agent's reply is not retried by a queue); a later send clears it.
                failed = SendOutcome("not_delivered", 0, 0, exc.reason, _NO_WINDOW)
                try:
                    self._note(record, customer_id, message.conversation_id, failed)
                except Exception:
                    logger.exception("could not record a failed channel send")
            raise
        self._note(record, customer_id, message.conversation_id, outcome)

    def close(self, connection_id: str) -> None:
        """A channel customer has no socket to close."""

    def _hand_off(self, record: ChannelRecord, customer_id: str, conversation_id: str | None) -> bool:
        """The customer goes to people: a channel set to use the platform's own staff hands them there.
        False when the channel has no such staff (kefu's agents take the conversation)."""
        servicer = self._adapter_for(record).hand_off(customer_id)
        if servicer is None:
            return False
        reason = f"handed to the platform's own staff ({servicer}); replies here are not delivered"
        outcome = SendOutcome("session_elsewhere", 0, 0, reason, _NO_WINDOW)
        self._note(record, customer_id, conversation_id, outcome, handing_off=True)
        return True

    def _note(
        self,
        record: ChannelRecord,
        customer_id: str,
        conversation_id: str | None,
        outcome: SendOutcome,
        handing_off: bool = False,
    ) -> None:
        """Tell the agents when the platform refused (on the conversation and in its transcript)."""
        logger.info(
            "sent through the channel",
            extra={"channel_id": record.channel_id, "status": outcome.status, "parts": outcome.parts_sent},
        )
        status = outcome.status
        if status == "partial" and not outcome.window.open:
            status = "window_closed"
        if status in _FAILED:
            try:
                self._count_failed(record.tenant_id, record.channel_id, record.kind, status, conversation_id)
            except Exception:  # a metric never costs the customer their message
                logger.exception("could not count a failed channel send")
        if conversation_id is None:
            return
        if status == "sent":
            self._store.set_channel_notice(conversation_id, None)
            return
        if status == "session_elsewhere" and not handing_off:
            current = self._store.get_conversation(conversation_id)
            if current is not None and current.channel_notice and current.channel_notice.status == status:
                return  # already said (with who holds the session): a refused notice adds nothing
        at = now_ms()
        self._store.set_channel_notice(conversation_id, ChannelNotice(status=status, reason=outcome.reason, at=at))
        self._store.add_message(
            transcript_event(
                conversation_id,
                record.tenant_id,
                f"channel_{status}",
                f"not delivered through {record.kind}: {outcome.reason or status.replace('_', ' ')}",
                at,
            )
        )
        if self._tell_agents is not None:
            try:
                self._tell_agents(conversation_id)
            except Exception:  # the refusal is on the record; the console shows it on the next open
                logger.exception("could not tell the agents about a channel refusal")


def channel_ref(record: ChannelRecord, customer_id: str) -> ChannelRef:
    return ChannelRef(kind=record.kind, channel_id=record.channel_id, customer_id=customer_id)
