"""What the message function does with a visitor's frame: validate, store once, ack, hand to generation.

It never waits for the model, so API Gateway's 29 s integration timeout cannot cut an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.chat.jobs import GenerateJob, GenerationQueue
from shared.chat.protocol import Ack, ErrorFrame, SendMessage, parse_client_frame
from shared.chat.push import ClientPush
from shared.errors import BadRequest, KefuError, NotFound
from shared.observability import logger
from shared.state.cache import ContextCache
from shared.state.records import (
    Connection,
    Conversation,
    StoredMessage,
    answer_id_for,
    new_conversation_id,
    new_message_id,
    now_ms,
)
from shared.state.store import StateStore


@dataclass(frozen=True)
class Intake:
    store: StateStore
    cache: ContextCache
    queue: GenerationQueue
    push: ClientPush
    callback_url: str
    max_message_chars: int

    def handle(self, connection_id: str, body: str | None) -> None:
        """Answer the frame with an ack or an error frame. Typed errors become error frames.

        The ack is posted before the job is queued, so it always reaches the visitor before the
        answer's first frame.
        """
        client_message_id: str | None = None
        try:
            frame = parse_client_frame(body, self.max_message_chars)
            client_message_id = frame.client_message_id
            ack, job = self._accept(connection_id, frame)
        except KefuError as exc:
            logger.info("frame refused", extra={"code": exc.code, "reason": exc.message})
            error = ErrorFrame(code=exc.code, message=exc.message, client_message_id=client_message_id)
            self.push.send(connection_id, error.to_json())
            return
        self.push.send(connection_id, ack.to_json())
        if job is None:
            return
        try:
            self.queue.enqueue(job)
        except Exception:
            # Stored but not queued: a resend with the same clientMessageId queues it again.
            logger.exception("could not queue the generation job")
            retry = ErrorFrame(
                code="retry",
                message="the message was saved but its answer could not be started; resend it unchanged",
                client_message_id=client_message_id,
            )
            self.push.send(connection_id, retry.to_json())

    def _accept(self, connection_id: str, frame: SendMessage) -> tuple[Ack, GenerateJob | None]:
        connection = self.store.get_connection(connection_id)
        if connection is None:
            raise BadRequest("this connection is not registered; reconnect and try again")
        earlier = self.store.find_by_client_id(connection.tenant_id, connection.visitor_id, frame.client_message_id)
        if earlier is not None:
            return _ack(frame, earlier), self._resume(connection, earlier)

        conversation = self._conversation(connection, frame.conversation_id)
        message = StoredMessage(
            conversation_id=conversation.conversation_id,
            message_id=new_message_id(),
            tenant_id=connection.tenant_id,
            role="visitor",
            text=frame.text.strip(),
            created_at=now_ms(),
            client_message_id=frame.client_message_id,
        )
        stored = self.store.add_visitor_message(message, connection.visitor_id)
        if stored.message_id != message.message_id:  # lost a race with a concurrent resend
            return _ack(frame, stored), self._resume(connection, stored)
        self.cache.append(stored)
        if connection.conversation_id != conversation.conversation_id:
            self.store.set_connection_conversation(connection_id, conversation.conversation_id)
        return _ack(frame, stored), self._job(connection, stored)

    def _conversation(self, connection: Connection, requested_id: str | None) -> Conversation:
        conversation_id = requested_id or connection.conversation_id
        if conversation_id:
            conversation = self.store.get_conversation(conversation_id)
            owned = (
                conversation is not None
                and conversation.tenant_id == connection.tenant_id
                and conversation.visitor_id == connection.visitor_id
            )
            if conversation is not None and owned:
                return conversation
            if requested_id:
                # Same answer for "absent" and "someone else's": ids are not probeable.
                raise NotFound(f"unknown conversation {requested_id!r}; omit conversationId to start one")
        created = now_ms()
        conversation = Conversation(
            conversation_id=new_conversation_id(),
            tenant_id=connection.tenant_id,
            visitor_id=connection.visitor_id,
            created_at=created,
            updated_at=created,
        )
        self.store.put_conversation(conversation)
        return conversation

    def _resume(self, connection: Connection, stored: StoredMessage) -> GenerateJob | None:
        """A resent message is acked again and queued again only if it has no answer yet (an earlier
        attempt may have stopped before the queue, or the visitor left mid-answer). The queue's dedup
        id and the generate function's answered-check keep it from being answered twice."""
        if self.store.get_message(stored.conversation_id, answer_id_for(stored.message_id)) is not None:
            return None
        return self._job(connection, stored)

    def _job(self, connection: Connection, message: StoredMessage) -> GenerateJob:
        return GenerateJob(
            tenant_id=connection.tenant_id,
            conversation_id=message.conversation_id,
            message_id=message.message_id,
            connection_id=connection.connection_id,
            callback_url=self.callback_url,
            text=message.text,
        )


def _ack(frame: SendMessage, message: StoredMessage) -> Ack:
    return Ack(
        client_message_id=frame.client_message_id,
        message_id=message.message_id,
        conversation_id=message.conversation_id,
    )
