"""What the message function does with an agent's frame (the agent console's actions)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequest, Forbidden
from shared.handoff.notify import Notifier
from shared.handoff.service import Handoff
from shared.handoff.views import agent_ref, fit, history_frame, summary
from shared.state.cache import ContextCache
from shared.state.records import Agent, Connection, Conversation, StoredMessage, new_message_id, now_ms
from shared.state.store import StateStore
from shared.wire.protocol import (
    Accept,
    Ack,
    AgentFrame,
    AgentMessage,
    AgentMessageFrame,
    AgentState,
    AgentSync,
    CannedReplyOut,
    CloseTicket,
    Heartbeat,
    History,
    Note,
    NoteFrame,
    PresenceFrame,
    Read,
    ReadFrame,
    Resolve,
    ReturnToBot,
    SetPresence,
    Transfer,
    Typing,
    TypingFrame,
)

# Any agent frame (the console sends a heartbeat every minute) also checks the tenant's queue for
# visitors waiting past the limit: a conversation is queued only while someone is on duty, so their
# console is the clock. The queue is read at most this often per tenant per warm container; queue
# changes and syncs check it anyway.
WAIT_CHECK_SECONDS = 30.0
_waits_checked_at: dict[str, float] = {}


@dataclass(frozen=True)
class AgentDesk:
    store: StateStore
    cache: ContextCache
    notifier: Notifier
    handoff: Handoff

    def handle(self, connection: Connection, frame: AgentFrame) -> None:
        """Carry out one agent frame; typed errors propagate (the caller answers them with an error frame)."""
        agent = self.store.get_agent(connection.agent_id or "")
        if agent is None or agent.disabled or agent.tenant_id != connection.tenant_id:
            raise Forbidden("this agent no longer exists or is disabled; log in again")
        origin = connection.connection_id
        match frame:
            case AgentSync():
                self._sync(agent, origin)
            case Accept():
                self.handoff.accept(agent, frame.conversation_id)
            case AgentMessage():
                self._message(agent, origin, frame)
            case Note():
                self._note(agent, origin, frame)
            case Transfer():
                self.handoff.transfer(agent, frame.conversation_id, frame.agent_id)
            case Resolve():
                self.handoff.resolve(agent, frame.conversation_id)
            case ReturnToBot():
                self.handoff.return_to_bot(agent, frame.conversation_id)
            case SetPresence():
                self.handoff.set_away(agent, frame.status == "away")
            case CloseTicket():
                self.handoff.close_ticket(agent, frame.conversation_id)
            case Heartbeat():
                pass  # its work is the queue check below
            case Typing():
                conversation = self.handoff.held(agent, self._required(frame.conversation_id))
                typing = TypingFrame(
                    conversation_id=conversation.conversation_id, sender="agent", typing=frame.typing, name=agent.name
                )
                self.notifier.visitor(conversation.conversation_id, typing)
            case Read():
                conversation = self.handoff.visible(agent, self._required(frame.conversation_id))
                if self.store.advance_read(conversation.conversation_id, "agent", frame.message_id):
                    read = ReadFrame(
                        conversation_id=conversation.conversation_id, by="agent", message_id=frame.message_id
                    )
                    self.notifier.visitor(conversation.conversation_id, read)
            case History():
                self._history(agent, origin, frame)
        if not isinstance(frame, AgentSync):  # a sync checks the queue it lists
            self._check_waits_now_and_then(agent.tenant_id)

    def _check_waits_now_and_then(self, tenant_id: str) -> None:
        now = time.monotonic()
        if now - _waits_checked_at.get(tenant_id, float("-inf")) < WAIT_CHECK_SECONDS:
            return
        _waits_checked_at[tenant_id] = now
        self.handoff.check_waits(tenant_id)

    @staticmethod
    def _required(conversation_id: str | None) -> str:
        if not conversation_id:
            raise BadRequest("conversationId: required for agents")
        return conversation_id

    def _sync(self, agent: Agent, origin: str) -> None:
        # An agent coming online takes the longest-waiting conversations first (they get
        # conversation.assigned frames before the state, which lists them as theirs).
        taken = self.handoff.drain(agent.tenant_id)
        agent = self.store.get_agent(agent.agent_id) or agent
        presence = self.handoff.presence(agent)
        config = self.handoff.config(agent.tenant_id)
        # The queue index may still list what was just assigned.
        queue = [c for c in self.store.queued_conversations(agent.tenant_id) if c.conversation_id not in taken]
        state = AgentState(
            agent=presence,
            queue=[summary(c) for c in queue],
            mine=[summary(c) for c in self.store.assigned_conversations(agent.agent_id)],
            agents=self.handoff.team(agent.tenant_id),
            canned_replies=[CannedReplyOut(title=r.title, text=r.text) for r in config.canned_replies],
            open_now=self.handoff.open_now(agent.tenant_id),
            tickets=self.handoff.open_tickets(agent.tenant_id),
        )
        self.notifier.send(origin, fit(state, "queue", "mine", "agents", "tickets"))
        _waits_checked_at[agent.tenant_id] = time.monotonic()
        self.handoff.check_waits(agent.tenant_id, queue)
        # Colleagues see this agent come online.
        for connection in self.notifier.agent_connections(agent.tenant_id):
            if connection.agent_id != agent.agent_id:
                self.notifier.send(connection.connection_id, PresenceFrame(agent=presence))

    def _store_once(
        self, agent: Agent, conversation: Conversation, frame: AgentMessage | Note
    ) -> tuple[StoredMessage, bool]:
        """Store by client message id: a resend after a reconnect gets the first copy back (and False)."""
        message = StoredMessage(
            conversation_id=conversation.conversation_id,
            message_id=new_message_id(),
            tenant_id=agent.tenant_id,
            role="agent" if isinstance(frame, AgentMessage) else "note",
            text=frame.text.strip(),
            created_at=now_ms(),
            client_message_id=frame.client_message_id,
            sender_id=agent.agent_id,
            sender_name=agent.name,
        )
        stored = self.store.add_client_message(message, f"agent:{agent.agent_id}")
        return stored, stored.message_id == message.message_id

    def _message(self, agent: Agent, origin: str, frame: AgentMessage) -> None:
        conversation = self.handoff.held(agent, frame.conversation_id)
        stored, new = self._store_once(agent, conversation, frame)
        self.notifier.send(origin, _ack(frame.client_message_id, stored))
        if not new:
            return
        self.cache.append(stored)  # the bot's context, should the conversation return to it
        out = AgentMessageFrame(**_written_by(agent, stored))
        self.notifier.visitor(stored.conversation_id, out)
        self.notifier.agent(agent.tenant_id, agent.agent_id, out, skip=origin)

    def _note(self, agent: Agent, origin: str, frame: Note) -> None:
        conversation = self.handoff.owned(agent, frame.conversation_id)
        stored, new = self._store_once(agent, conversation, frame)
        self.notifier.send(origin, _ack(frame.client_message_id, stored))
        if not new:
            return
        note = NoteFrame(**_written_by(agent, stored))
        # Agents only: the author's other tabs and whoever holds the conversation. Never the visitor.
        self.notifier.agent(agent.tenant_id, agent.agent_id, note, skip=origin)
        if conversation.assignee_id and conversation.assignee_id != agent.agent_id:
            self.notifier.agent(agent.tenant_id, conversation.assignee_id, note)

    def _history(self, agent: Agent, origin: str, frame: History) -> None:
        conversation = self.handoff.visible(agent, self._required(frame.conversation_id))
        messages, more = self.store.messages_page(
            conversation.conversation_id, before=frame.before, after=frame.after, limit=frame.limit
        )
        self.notifier.send(
            origin, history_frame(conversation, messages, more, newer=frame.after is not None, agent=True)
        )


def _written_by(agent: Agent, stored: StoredMessage) -> dict[str, Any]:
    """The fields of an agent's message or note frame."""
    return {
        "conversation_id": stored.conversation_id,
        "message_id": stored.message_id,
        "text": stored.text,
        "agent": agent_ref(agent),
        "created_at": stored.created_at,
        "client_message_id": stored.client_message_id,
    }


def _ack(client_message_id: str, stored: StoredMessage) -> Ack:
    return Ack(
        client_message_id=client_message_id, message_id=stored.message_id, conversation_id=stored.conversation_id
    )
