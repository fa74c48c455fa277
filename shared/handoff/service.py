"""Conversation ownership: bot -> queued -> assigned -> resolved, and back to the bot.

Every move is one conditional write on the conversation (``StateStore.change_status``), so two agents
accepting at once, or a handoff racing a resolve, end with exactly one winner. Each move stores an
event in the transcript and tells the visitor's and the agents' connections.

The bot's silence while people own a conversation is enforced where answers are made: the generate
function's ``HandoffGate`` reads the status before, during and after generating.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from shared.chat.protocol import (
    AgentJoined,
    AgentPresence,
    ConversationAssigned,
    ConversationStatusFrame,
    ConversationUpdated,
    Notice,
    PresenceFrame,
    QueueUpdated,
)
from shared.errors import Conflict, Forbidden, NotFound
from shared.handoff.config import HandoffConfig
from shared.handoff.hours import describe, is_open, next_open
from shared.handoff.notify import Notifier
from shared.handoff.texts import chinese, notice_text
from shared.handoff.views import agent_ref, assignee_ref, fit, preview_of, summary
from shared.observability import logger, metrics
from shared.state.records import (
    Agent,
    Conversation,
    StatusChange,
    StoredMessage,
    monotonic_ms,
    new_message_id,
    now_ms,
)
from shared.state.store import StateStore

Reason = str  # visitor_request | no_answer | negative_feedback
_REASONS = {
    "visitor_request": "the visitor asked for a person",
    "no_answer": "the bot found no good answer",
    "negative_feedback": "the visitor rated an answer as not helpful",
}
_BOT_OWNED = frozenset({"bot", "resolved"})
_QUEUED = frozenset({"queued"})
_ASSIGNED = frozenset({"assigned"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Handoff:
    store: StateStore
    notifier: Notifier
    clock: Callable[[], datetime] = _utc_now
    _configs: dict[str, HandoffConfig] = field(default_factory=dict, repr=False)

    # --- settings and people ---

    def config(self, tenant_id: str) -> HandoffConfig:
        if tenant_id not in self._configs:
            tenant = self.store.get_tenant(tenant_id)
            self._configs[tenant_id] = tenant.config.handoff if tenant else HandoffConfig()
        return self._configs[tenant_id]

    def capacity(self, agent: Agent) -> int:
        return agent.capacity or self.config(agent.tenant_id).agent_capacity

    def presence(self, agent: Agent) -> AgentPresence:
        online = agent.agent_id in self.notifier.online_agent_ids(agent.tenant_id)
        return AgentPresence(
            agent_id=agent.agent_id,
            name=agent.name,
            presence="offline" if not online else "away" if agent.away else "online",
            load=agent.load,
            capacity=self.capacity(agent),
        )

    def team(self, tenant_id: str) -> list[AgentPresence]:
        return [self.presence(a) for a in self.store.list_agents(tenant_id) if not a.disabled]

    def open_now(self, tenant_id: str) -> bool:
        return is_open(self.config(tenant_id).hours, self.clock())

    def _available(self, tenant_id: str) -> list[Agent]:
        """Online, not away, with room for one more conversation; least recently assigned first."""
        online = self.notifier.online_agent_ids(tenant_id)
        candidates = []
        for agent in self.store.list_agents(tenant_id):
            if agent.agent_id not in online or agent.away or agent.disabled:
                continue
            if agent.load < self.capacity(agent):
                candidates.append(agent)
        return sorted(candidates, key=lambda a: (a.last_assigned_at, a.agent_id))

    # --- bot -> people ---

    def request(self, conversation: Conversation, reason: Reason, *, preview: str | None = None) -> Conversation:
        """Hand the conversation to people (idempotent: a queued or assigned one stays as it is)."""
        config = self.config(conversation.tenant_id)
        language = conversation.visitor_language
        if not config.enabled:
            self._tell_visitor(conversation, "unavailable")
            return conversation
        now = self.clock()
        queued = self.store.change_status(
            conversation,
            StatusChange(
                status="queued",
                from_statuses=_BOT_OWNED,
                waiting_since=now_ms(),
                reason=reason,
                preview=preview_of(preview) if preview else None,
            ),
        )
        if queued is None:
            current = self.store.get_conversation(conversation.conversation_id) or conversation
            if current.status in ("queued", "assigned") and reason == "visitor_request":
                self._tell_visitor(current, "already_waiting")
            return current
        metrics.add_metric(name="Handoffs", unit="Count", value=1)
        logger.info("handed off", extra={"conversation_id": conversation.conversation_id, "reason": reason})
        self._event(queued, "handoff", f"Handed off to people: {_REASONS.get(reason, reason)}", detail=reason)
        self.notifier.visitor(
            queued.conversation_id,
            ConversationStatusFrame(
                conversation_id=queued.conversation_id, status="queued", waiting_since=queued.waiting_since
            ),
        )
        opening = next_open(config.hours, now)
        if config.hours is not None and opening != now:
            when = describe(opening, config.hours, language) if opening else ("稍后" if chinese(language) else "later")
            text = config.offline_text.pick(language).replace("{next_open}", when)
            notice = Notice(
                conversation_id=queued.conversation_id,
                code="offline",
                text=text,
                next_open_at=_ms(opening) if opening else None,
            )
            self.notifier.visitor(queued.conversation_id, notice)
            self.broadcast_queue(queued.tenant_id)
            return queued
        self.notifier.visitor(
            queued.conversation_id,
            Notice(conversation_id=queued.conversation_id, code="queued", text=config.queued_text.pick(language)),
        )
        assigned = self._auto_assign(queued, config) if config.auto_assign else None
        if assigned is None:
            self.broadcast_queue(queued.tenant_id)
        return assigned or queued

    def _auto_assign(self, conversation: Conversation, config: HandoffConfig) -> Conversation | None:
        for candidate in self._available(conversation.tenant_id):
            assigned = self._assign(conversation, candidate, by="auto", capacity=self.capacity(candidate))
            if assigned is not None:
                return assigned
            # Refused: the agent filled up meanwhile (try the next one), or the conversation moved on.
            current = self.store.get_conversation(conversation.conversation_id)
            if current is None or current.status != "queued":
                return None
        return None

    def pull_queue(self, agent: Agent) -> int:
        """Give an agent who has room the longest-waiting conversations (auto-assign tenants, open hours)."""
        config = self.config(agent.tenant_id)
        if not config.auto_assign or not self.open_now(agent.tenant_id):
            return 0
        if agent.away or agent.disabled or agent.agent_id not in self.notifier.online_agent_ids(agent.tenant_id):
            return 0
        current = self.store.get_agent(agent.agent_id) or agent
        capacity = self.capacity(current)
        room = capacity - current.load
        taken = 0
        for conversation in self.store.queued_conversations(agent.tenant_id, limit=max(room, 0)):
            if taken >= room:
                break
            if self._assign(conversation, current, by="auto", capacity=capacity) is not None:
                taken += 1
        return taken

    # --- agent actions ---

    def owned(self, agent: Agent, conversation_id: str) -> Conversation:
        """The conversation, if it is this agent's tenant's (same error for absent and foreign)."""
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None or conversation.tenant_id != agent.tenant_id:
            raise NotFound(f"unknown conversation {conversation_id!r}")
        return conversation

    def accept(self, agent: Agent, conversation_id: str) -> Conversation:
        conversation = self.owned(agent, conversation_id)
        if conversation.status == "assigned" and conversation.assignee_id == agent.agent_id:
            return conversation
        if conversation.status != "queued":
            raise Conflict(self._not_queued(conversation))
        assigned = self._assign(conversation, agent, by="accept")
        if assigned is None:
            current = self.store.get_conversation(conversation_id) or conversation
            raise Conflict(self._not_queued(current))
        return assigned

    def transfer(self, agent: Agent, conversation_id: str, to_agent_id: str) -> Conversation:
        conversation = self.held(agent, conversation_id)
        target = self.store.get_agent(to_agent_id)
        if target is None or target.tenant_id != agent.tenant_id or target.disabled:
            raise NotFound(f"unknown agent {to_agent_id!r}")
        if target.agent_id == agent.agent_id:
            raise Conflict("the conversation is already yours")
        moved = self._assign(
            conversation, target, by="transfer", from_statuses=_ASSIGNED, expected_assignee_id=agent.agent_id
        )
        if moved is None:
            raise Conflict("the conversation changed meanwhile; reload it")
        self.notifier.agent(agent.tenant_id, agent.agent_id, ConversationUpdated(conversation=summary(moved)))
        self.pull_queue(agent)
        return moved

    def resolve(self, agent: Agent, conversation_id: str) -> Conversation:
        return self._release(agent, conversation_id, "resolved")

    def return_to_bot(self, agent: Agent, conversation_id: str) -> Conversation:
        return self._release(agent, conversation_id, "bot")

    def held(self, agent: Agent, conversation_id: str) -> Conversation:
        """The conversation, if this agent holds it now."""
        conversation = self.owned(agent, conversation_id)
        if conversation.status != "assigned" or conversation.assignee_id != agent.agent_id:
            raise Forbidden(f"conversation {conversation_id!r} is not assigned to you; accept it first")
        return conversation

    def _release(self, agent: Agent, conversation_id: str, status: str) -> Conversation:
        """Resolve or return to the bot: a conversation the agent holds, or one still in the queue."""
        conversation = self.owned(agent, conversation_id)
        if conversation.status == "queued":
            change = StatusChange(status="bot" if status == "bot" else "resolved", from_statuses=_QUEUED)
        elif conversation.status == "assigned" and conversation.assignee_id == agent.agent_id:
            change = StatusChange(
                status="bot" if status == "bot" else "resolved",
                from_statuses=_ASSIGNED,
                expected_assignee_id=agent.agent_id,
            )
        else:
            raise Forbidden(f"conversation {conversation_id!r} is neither queued nor assigned to you")
        released = self.store.change_status(conversation, change)
        if released is None:
            raise Conflict("the conversation changed meanwhile; reload it")
        code = "resolved" if released.status == "resolved" else "returned_to_bot"
        self._event(released, code, f"{agent.name}: {code.replace('_', ' ')}", agent=agent)
        self.notifier.visitor(
            released.conversation_id,
            ConversationStatusFrame(conversation_id=released.conversation_id, status=released.status),
        )
        self._tell_visitor(released, code, agent=agent.name)
        self.notifier.agent(agent.tenant_id, agent.agent_id, ConversationUpdated(conversation=summary(released)))
        if conversation.status == "queued":
            self.broadcast_queue(agent.tenant_id)
        self.pull_queue(agent)
        return released

    def reopen(self, conversation: Conversation) -> Conversation:
        """A visitor writes in a resolved conversation: the bot owns it again, with a fresh no-answer count
        and no leftover handoff state (no loop back into the queue)."""
        reopened = self.store.change_status(
            conversation, StatusChange(status="bot", from_statuses=frozenset({"resolved"}))
        )
        if reopened is None:
            return self.store.get_conversation(conversation.conversation_id) or conversation
        self._event(reopened, "reopened", "Reopened by the visitor")
        self.notifier.visitor(
            reopened.conversation_id,
            ConversationStatusFrame(conversation_id=reopened.conversation_id, status="bot"),
        )
        return reopened

    def agent_left(self, tenant_id: str, agent_id: str, connection_id: str) -> bool:
        """After an agent's tab closed: if it was their last one, colleagues see them go offline.
        The closed connection is left out explicitly: the index that lists connections may lag."""
        remaining = {c.agent_id for c in self.notifier.agent_connections(tenant_id) if c.connection_id != connection_id}
        agent = self.store.get_agent(agent_id)
        if agent_id in remaining or agent is None or agent.tenant_id != tenant_id:
            return False
        presence = self.presence(agent).model_copy(update={"presence": "offline"})
        for connection in self.notifier.agent_connections(tenant_id):
            if connection.connection_id != connection_id:
                self.notifier.send(connection.connection_id, PresenceFrame(agent=presence))
        return True

    def set_away(self, agent: Agent, away: bool) -> Agent:
        self.store.set_agent_away(agent.agent_id, away)
        updated = agent.model_copy(update={"away": away})
        self.notifier.agents(agent.tenant_id, PresenceFrame(agent=self.presence(updated)))
        if not away:
            self.pull_queue(updated)
        return updated

    # --- internals ---

    def _assign(
        self,
        conversation: Conversation,
        agent: Agent,
        *,
        by: Literal["auto", "accept", "transfer"],
        from_statuses: frozenset[str] = _QUEUED,
        expected_assignee_id: str | None = None,
        capacity: int | None = None,
    ) -> Conversation | None:
        """One atomic move; with ``capacity`` (automatic assignment) only while the agent has room."""
        assigned = self.store.change_status(
            conversation,
            StatusChange(
                status="assigned",
                from_statuses=from_statuses,
                expected_assignee_id=expected_assignee_id,
                assignee_id=agent.agent_id,
                assignee_name=agent.name,
                capacity=capacity,
            ),
        )
        if assigned is None:
            return None
        ref = agent_ref(agent)
        if by == "transfer":
            previous = conversation.assignee_name or conversation.assignee_id or "?"
            self._event(assigned, "transferred", f"Transferred from {previous} to {agent.name}", agent=agent)
        else:
            self._event(assigned, "assigned", f"{agent.name} joined", agent=agent)
        self.notifier.agent(
            agent.tenant_id,
            agent.agent_id,
            ConversationAssigned(conversation=summary(assigned), by=by),
        )
        self.notifier.visitor(
            assigned.conversation_id,
            ConversationStatusFrame(conversation_id=assigned.conversation_id, status="assigned", agent=ref),
        )
        if by == "transfer":
            self._tell_visitor(assigned, "transferred", agent=agent.name)
        else:
            self.notifier.visitor(
                assigned.conversation_id, AgentJoined(conversation_id=assigned.conversation_id, agent=ref)
            )
            self.broadcast_queue(agent.tenant_id)
        return assigned

    def broadcast_queue(self, tenant_id: str) -> None:
        queue = [summary(c) for c in self.store.queued_conversations(tenant_id)]
        self.notifier.agents(tenant_id, fit(QueueUpdated(queue=queue), "queue"))

    def _tell_visitor(self, conversation: Conversation, code: str, **values: str) -> None:
        notice = Notice(
            conversation_id=conversation.conversation_id,
            code=code,
            text=notice_text(code, conversation.visitor_language, **values),
            agent=assignee_ref(conversation) if code == "transferred" else None,
        )
        self.notifier.visitor(conversation.conversation_id, notice)

    def _event(
        self, conversation: Conversation, code: str, text: str, *, agent: Agent | None = None, detail: str | None = None
    ) -> None:
        """Events stay in the transcript (agents see the whole story; the bot never reads them)."""
        at = monotonic_ms()
        self.store.add_message(
            StoredMessage(
                conversation_id=conversation.conversation_id,
                message_id=new_message_id(at),
                tenant_id=conversation.tenant_id,
                role="event",
                text=text,
                created_at=at,
                event=code if detail is None else f"{code}:{detail}",
                sender_id=agent.agent_id if agent else None,
                sender_name=agent.name if agent else None,
            )
        )

    @staticmethod
    def _not_queued(conversation: Conversation) -> str:
        if conversation.status == "assigned":
            return f"already taken by {conversation.assignee_name or conversation.assignee_id}"
        return f"the conversation is not in the queue (it is {conversation.status})"
