"""The visitor side of the message function (the agent side is shared/handoff/desk.py): a visitor's
message stored once, acked, then queued for the bot while it owns the conversation or passed to the
people who own it; the widget's other actions (session, history, typing, read, feedback, a request
for a human, a message left when nobody can chat)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from shared.chat.identity import VisitorTokens
from shared.errors import BadRequest, NotFound
from shared.handoff.notify import Notifier
from shared.handoff.service import Handoff
from shared.handoff.triggers import asks_for_human
from shared.handoff.views import history_frame, preview_of
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
from shared.tenant_config import TenantConfigCache
from shared.tenant_config.handoff import HandoffConfig
from shared.wire.jobs import GenerateJob, GenerationQueue
from shared.wire.protocol import (
    Ack,
    ErrorFrame,
    Feedback,
    FeedbackSaved,
    History,
    LeaveMessage,
    Read,
    ReadFrame,
    RequestHuman,
    SendMessage,
    Session,
    SessionFrame,
    Typing,
    TypingFrame,
    VisitorFrame,
    VisitorMessageFrame,
)
from shared.wire.push import ClientPush

# Work to do after the ack went out (so the ack is always the first frame about a message).
FollowUp = Callable[[], None]

# Independent DynamoDB/Redis/SQS calls of one message run side by side (boto3 and redis clients are
# thread-safe); reused by every invocation of a warm container.
IO = ThreadPoolExecutor(max_workers=16, thread_name_prefix="intake")
# A frame that lost the race to start the connection's conversation waits this long for the winner's.
_CLAIM_POLLS = 20
_CLAIM_POLL_SECONDS = 0.05




@dataclass(frozen=True)
class VisitorDesk:
    """What one visitor frame needs: the adapters Intake holds, bound to the frame's stage."""

    store: StateStore
    cache: ContextCache
    queue: GenerationQueue
    push: ClientPush
    callback_url: str
    tenant_configs: TenantConfigCache | None = None
    visitor_tokens: VisitorTokens | None = None

    def handle(
        self,
        connection: Connection,
        frame: VisitorFrame,
        notifier: Notifier,
        handoff: Handoff,
        requested_soon: Future[Conversation | None] | None = None,
    ) -> None:
        match frame:
            case SendMessage():
                self._send_message(connection, frame, notifier, handoff, requested_soon)
            case RequestHuman():
                conversation = self._conversation(connection, frame.conversation_id, notifier)
                preview = self._last_visitor_text(conversation)
                handoff.request(conversation, "visitor_request", preview=preview)
            case Feedback():
                self._feedback(connection, frame, notifier, handoff)
            case LeaveMessage():
                conversation = self._conversation(connection, frame.conversation_id, notifier)
                handoff.leave_ticket(conversation, contact=frame.contact, name=frame.name, text=frame.text)
            case Typing():
                conversation = self._existing(connection, frame.conversation_id)
                if conversation.status == "assigned" and conversation.assignee_id:
                    typing = TypingFrame(
                        conversation_id=conversation.conversation_id, sender="visitor", typing=frame.typing
                    )
                    notifier.agent(conversation.tenant_id, conversation.assignee_id, typing)
            case Read():
                conversation = self._existing(connection, frame.conversation_id)
                advanced = self.store.advance_read(conversation.conversation_id, "visitor", frame.message_id)
                if advanced and conversation.status == "assigned" and conversation.assignee_id:
                    read = ReadFrame(
                        conversation_id=conversation.conversation_id, by="visitor", message_id=frame.message_id
                    )
                    notifier.agent(conversation.tenant_id, conversation.assignee_id, read)
            case History():
                self._history(connection, frame, notifier)
            case Session():
                if self.visitor_tokens is None:
                    raise BadRequest("this deployment issues no visitor tokens")
                token = self.visitor_tokens.issue(connection.tenant_id, connection.visitor_id)
                session = SessionFrame(visitor_id=connection.visitor_id, visitor_token=token)
                self.push.send(connection.connection_id, session.to_json())

    def _send_message(
        self,
        connection: Connection,
        frame: SendMessage,
        notifier: Notifier,
        handoff: Handoff,
        requested_soon: Future[Conversation | None] | None,
    ) -> None:
        ack, follow_up, job, cached = self._accept(connection, frame, notifier, handoff, requested_soon)
        # The message is stored, so the job may be queued while the ack is posted; a follow-up
        # (reopen, hand off) must run before the job, so it keeps the order ack, follow-up, job.
        queued = IO.submit(self.queue.enqueue, job) if job is not None and follow_up is None else None
        try:
            self.push.send(connection.connection_id, ack.to_json())
            if follow_up is not None:
                follow_up()
            if job is None:
                return
            try:
                if queued is not None:
                    queued.result()
                else:
                    self.queue.enqueue(job)
            except Exception:
                # Stored but not queued: a resend with the same clientMessageId queues it again.
                logger.exception("could not queue the generation job")
                retry = ErrorFrame(
                    code="retry",
                    message="the message was saved but its answer could not be started; resend it unchanged",
                    client_message_id=frame.client_message_id,
                )
                self.push.send(connection.connection_id, retry.to_json())
        finally:
            # Nothing may still run when the invocation returns: Lambda freezes the container. (The
            # cache append is best effort; a queue failure is handled above, or, if the ack failed
            # because the visitor left, left to the resend after reconnecting.)
            wait([pending for pending in (queued, cached) if pending is not None])

    def _accept(
        self,
        connection: Connection,
        frame: SendMessage,
        notifier: Notifier,
        handoff: Handoff,
        requested_soon: Future[Conversation | None] | None,
    ) -> tuple[Ack, FollowUp | None, GenerateJob | None, Future[None] | None]:
        # The tenant's handoff settings (for the routing below) are read while the conversation is.
        config_soon = self._handoff_config_soon(connection.tenant_id, handoff)
        conversation_id = frame.conversation_id or connection.conversation_id
        if requested_soon is not None:
            owned = self._if_owned(connection, requested_soon.result())
        else:
            owned = self._owned(connection, conversation_id) if conversation_id else None
        if owned is None:
            # A new conversation would be made for this message: first make sure it is not a resend
            # (from a new connection). Into an existing conversation, the idempotent write below finds
            # a resend itself, so the common path skips this read.
            earlier = self.store.find_by_client_id(connection.tenant_id, connection.visitor_id, frame.client_message_id)
            if earlier is not None:
                config_soon.result()
                return _ack(frame, earlier), None, self._resume(connection, earlier), None
        config = config_soon.result()

        conversation = self._conversation(
            connection, frame.conversation_id, notifier, owned=owned, prefetched=bool(conversation_id)
        )
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
            return _ack(frame, stored), None, self._resume(connection, stored), None
        cached = IO.submit(self.cache.append, stored)
        routed = self._route(connection, conversation, stored, handoff, notifier, config)
        return _ack(frame, stored), *routed, cached

    def _handoff_config_soon(self, tenant_id: str, handoff: Handoff) -> Future[HandoffConfig]:
        configs = self.tenant_configs
        if configs is None:
            return IO.submit(handoff.config, tenant_id)

        def read() -> HandoffConfig:
            config = configs.get(tenant_id)
            return config.handoff if config is not None else HandoffConfig()

        return IO.submit(read)

    def _route(
        self,
        connection: Connection,
        conversation: Conversation,
        message: StoredMessage,
        handoff: Handoff,
        notifier: Notifier,
        config: HandoffConfig,
    ) -> tuple[FollowUp | None, GenerateJob | None]:
        """Who answers a new visitor message (``config``: the tenant's handoff settings): the bot, or
        the people who own the conversation."""
        if conversation.status in ("bot", "resolved"):
            wants_human = config.enabled and asks_for_human(message.text, config.phrases)
            if conversation.status == "bot" and not wants_human:
                return None, self._job(connection, message)
            bot_owned = conversation

            def reopen_or_hand_off() -> None:
                # A resolved conversation goes back to the bot first (before the answer is queued).
                current = handoff.reopen(bot_owned) if bot_owned.status == "resolved" else bot_owned
                if wants_human:
                    handoff.request(current, "visitor_request", preview=message.text)

            return reopen_or_hand_off, None if wants_human else self._job(connection, message)
        # Queued or assigned: people answer; the bot stays silent.
        self.store.set_preview(conversation.conversation_id, preview_of(message.text), message.created_at)
        assignee = conversation.assignee_id
        if conversation.status != "assigned" or assignee is None:
            waiting = conversation

            def check_wait() -> None:
                # A visitor still waiting is told so once they have waited past the tenant's limit.
                handoff.check_waits(waiting.tenant_id, [waiting])

            return check_wait, None
        forward = VisitorMessageFrame(
            conversation_id=message.conversation_id,
            message_id=message.message_id,
            text=message.text,
            created_at=message.created_at,
        )
        tenant_id = conversation.tenant_id

        def tell_agent() -> None:
            notifier.agent(tenant_id, assignee, forward)

        return tell_agent, None

    def _conversation(
        self,
        connection: Connection,
        requested_id: str | None,
        notifier: Notifier,
        *,
        owned: Conversation | None = None,
        prefetched: bool = False,
    ) -> Conversation:
        """The visitor's conversation (the requested one, or the connection's), else a new one. The
        connection is attached to it, so frames about the conversation reach this tab. With
        ``prefetched``, ``owned`` is what ``_owned`` already returned for it."""
        conversation_id = requested_id or connection.conversation_id
        conversation: Conversation | None = None
        if conversation_id:
            conversation = owned if prefetched else self._owned(connection, conversation_id)
            if conversation is None and requested_id:
                # Same answer for "absent" and "someone else's": ids are not probeable.
                raise NotFound(f"unknown conversation {requested_id!r}; omit conversationId to start one")
        if conversation is None:
            return self._start(connection, notifier)
        self._attach(connection, conversation.conversation_id, notifier)
        return conversation

    def _start(self, connection: Connection, notifier: Notifier) -> Conversation:
        """A new conversation for this connection. Frames sent back to back (before the first ack)
        are handled side by side: the connection is claimed for the new conversation on the
        condition that it still points where it did, and a frame that loses the claim joins the
        winner's conversation instead of starting one of its own."""
        started = now_ms()
        conversation = Conversation(
            conversation_id=new_conversation_id(),
            tenant_id=connection.tenant_id,
            visitor_id=connection.visitor_id,
            created_at=started,
            updated_at=started,
            visitor_page=connection.page,
            visitor_language=connection.language,
            channel=connection.channel,
        )
        previous = connection.conversation_id
        if not self.store.claim_connection_conversation(
            connection.connection_id, conversation.conversation_id, previous
        ):
            winner = self._claimed_meanwhile(connection, previous)
            if winner is not None:
                connection.conversation_id = winner.conversation_id
                notifier.attached(winner.conversation_id, connection.connection_id)
                return winner
        self.store.put_conversation(conversation)
        connection.conversation_id = conversation.conversation_id
        notifier.attached(conversation.conversation_id, connection.connection_id)
        return conversation

    def _claimed_meanwhile(self, connection: Connection, previous: str | None) -> Conversation | None:
        """The conversation another frame just started for this connection (its item is written
        right after its claim, so it may take a moment to appear); None if there is none."""
        for _ in range(_CLAIM_POLLS):
            current = self.store.get_connection(connection.connection_id)
            if current is None or current.conversation_id in (None, previous):
                return None
            found = self._owned(connection, current.conversation_id)
            if found is not None:
                return found
            time.sleep(_CLAIM_POLL_SECONDS)
        return None

    def _existing(self, connection: Connection, requested_id: str | None) -> Conversation:
        conversation_id = requested_id or connection.conversation_id
        conversation = self._owned(connection, conversation_id) if conversation_id else None
        if conversation is None:
            raise NotFound(f"unknown conversation {conversation_id!r}; send a message first")
        return conversation

    def _owned(self, connection: Connection, conversation_id: str) -> Conversation | None:
        return self._if_owned(connection, self.store.get_conversation(conversation_id))

    @staticmethod
    def _if_owned(connection: Connection, conversation: Conversation | None) -> Conversation | None:
        """The conversation if it is this visitor's (same tenant and visitor), else None."""
        if (
            conversation is None
            or conversation.tenant_id != connection.tenant_id
            or conversation.visitor_id != connection.visitor_id
        ):
            return None
        return conversation

    def _attach(self, connection: Connection, conversation_id: str, notifier: Notifier) -> None:
        if connection.conversation_id != conversation_id:
            self.store.set_connection_conversation(connection.connection_id, conversation_id)
            connection.conversation_id = conversation_id
        notifier.attached(conversation_id, connection.connection_id)

    def _last_visitor_text(self, conversation: Conversation) -> str | None:
        for message in reversed(self.store.recent_messages(conversation.conversation_id, 5)):
            if message.role == "visitor":
                return message.text
        return None

    def _feedback(self, connection: Connection, frame: Feedback, notifier: Notifier, handoff: Handoff) -> None:
        conversation = self._existing(connection, frame.conversation_id)
        if not self.store.set_feedback(conversation.conversation_id, frame.message_id, frame.rating):
            raise NotFound(f"no bot answer {frame.message_id!r} in this conversation")
        saved = FeedbackSaved(
            conversation_id=conversation.conversation_id, message_id=frame.message_id, rating=frame.rating
        )
        notifier.send(connection.connection_id, saved)
        config = handoff.config(conversation.tenant_id)
        if frame.rating == "down" and config.handoff_on_negative_feedback and conversation.status == "bot":
            handoff.request(conversation, "negative_feedback", preview=self._last_visitor_text(conversation))

    def _history(self, connection: Connection, frame: History, notifier: Notifier) -> None:
        """A returning visitor's transcript; attaches this connection so later frames reach it."""
        conversation = self._existing(connection, frame.conversation_id)
        # Attach first, then read: a message stored in between is pushed to this connection or in the page.
        self._attach(connection, conversation.conversation_id, notifier)
        messages, more = self.store.messages_page(
            conversation.conversation_id, before=frame.before, after=frame.after, limit=frame.limit
        )
        page = history_frame(conversation, messages, more, newer=frame.after is not None, agent=False)
        notifier.send(connection.connection_id, page)

    def _resume(self, connection: Connection, stored: StoredMessage) -> GenerateJob | None:
        """A resent message is acked again and queued again only if the bot still owns the conversation
        and the message has no answer yet (an earlier attempt may have stopped before the queue, or the
        visitor left mid-answer). The queue's dedup id and the generate function's answered-check keep
        it from being answered twice."""
        if self.store.get_message(stored.conversation_id, answer_id_for(stored.message_id)) is not None:
            return None
        conversation = self.store.get_conversation(stored.conversation_id)
        if conversation is not None and conversation.status != "bot":
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
