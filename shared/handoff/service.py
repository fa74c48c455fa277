"""Conversation ownership: bot -> queued -> assigned -> resolved, and back to the bot.

Every move is one conditional write on the conversation (``StateStore.change_status``), so two agents
accepting at once, or a handoff racing a resolve, end with exactly one winner. Each move stores an
event in the transcript and tells the visitor's and the agents' connections.

The bot's silence while people own a conversation is enforced where answers are made: the generate
function's ``HandoffGate`` reads the status before, during and after generating.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from shared.errors import Conflict, Forbidden, NotFound
from shared.handoff.hours import describe, is_open, next_open
from shared.handoff.notify import Notifier
from shared.handoff.texts import chinese, notice_language, notice_text
from shared.handoff.views import agent_ref, assignee_ref, fit, preview_of, summary, ticket_out
from shared.observability import logger, metrics
from shared.state.records import (
    Agent,
    Conversation,
    StatusChange,
    StoredMessage,
    Ticket,
    monotonic_ms,
    new_message_id,
    now_ms,
)
from shared.state.store import StateStore
from shared.tenant_config.handoff import HandoffConfig
from shared.wire.protocol import (
    AgentJoined,
    AgentPresence,
    ConversationAssigned,
    ConversationStatusFrame,
    ConversationUpdated,
    Notice,
    PresenceFrame,
    QueueRemoval,
    QueueUpdated,
    TicketOut,
    TicketsUpdated,
)

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


def _fair(agent: Agent) -> tuple[int, int, str]:
    """Who gets the next conversation: the least loaded, then the least recently assigned (round-robin)."""
    return agent.load, agent.last_assigned_at, agent.agent_id


@dataclass(frozen=True)
class Availability:
    """Who could take a conversation now.

    *On duty*: an enabled agent with the console open (at least one agent connection) who has not set
    themselves away. A handoff happens only if someone can take it: an on-duty agent with room, or,
    inside the tenant's agent hours (always, when no hours are set), any on-duty agent: then it waits
    in the queue for the first one with room. Agent hours alone, with nobody connected, are nobody.
    """

    on_duty: list[Agent]
    # On duty with room for one more conversation, fairest first.
    with_room: list[Agent]
    open_now: bool

    @property
    def someone(self) -> bool:
        return bool(self.with_room) or (self.open_now and bool(self.on_duty))


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

    def availability(self, tenant_id: str) -> Availability:
        online = self.notifier.online_agent_ids(tenant_id)
        on_duty = [
            agent
            for agent in self.store.list_agents(tenant_id)
            if agent.agent_id in online and not agent.away and not agent.disabled
        ]
        with_room = sorted((a for a in on_duty if a.load < self.capacity(a)), key=_fair)
        return Availability(on_duty=on_duty, with_room=with_room, open_now=self.open_now(tenant_id))

    # --- bot -> people ---

    def request(self, conversation: Conversation, reason: Reason, *, preview: str | None = None) -> Conversation:
        """Hand the conversation to people (idempotent: a queued or assigned one stays as it is).

        Only if someone can take it (``Availability``): otherwise an automatic handoff (no answer, 👎)
        does not happen, and a visitor who asked is told honestly and offered to leave a message; the
        bot keeps answering either way. FIFO: with auto-assignment, the queue is served oldest first, so
        a new handoff never goes ahead of conversations already waiting."""
        config = self.config(conversation.tenant_id)
        if not config.enabled:
            self._tell_visitor(conversation, "unavailable", said=preview)
            return conversation
        if conversation.status in ("queued", "assigned"):
            if reason == "visitor_request":
                self._tell_visitor(conversation, "already_waiting", said=preview)
            return conversation
        available = self.availability(conversation.tenant_id)
        if not available.someone:
            return self._nobody(conversation, reason, config, said=preview)
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
                self._tell_visitor(current, "already_waiting", said=preview)
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
        self.notifier.visitor(
            queued.conversation_id,
            Notice(
                conversation_id=queued.conversation_id,
                code="queued",
                text=config.queued_text.pick(notice_language(queued, preview)),
            ),
        )
        if not config.auto_assign:
            self.broadcast_queue(queued.tenant_id, added=[queued])
            return queued
        assigned = self.drain(queued.tenant_id, newest=queued, agents=available.with_room)
        return assigned.get(queued.conversation_id, queued)

    def _nobody(
        self, conversation: Conversation, reason: Reason, config: HandoffConfig, *, said: str | None = None
    ) -> Conversation:
        """Nobody can take the conversation now: it stays with the bot."""
        metrics.add_metric(name="HandoffsWithNobodyAvailable", unit="Count", value=1)
        extra = {"conversation_id": conversation.conversation_id, "reason": reason}
        logger.info("no handoff: nobody available", extra=extra)
        if reason != "visitor_request":
            return conversation  # the bot keeps answering; the next trigger checks again
        language = notice_language(conversation, said)
        now = self.clock()
        opening = next_open(config.hours, now) if config.hours is not None else now
        if config.hours is not None and opening != now:
            when = describe(opening, config.hours, language) if opening else ("稍后" if chinese(language) else "later")
            code, text = "offline", config.offline_text.pick(language).replace("{next_open}", when)
            next_open_at = _ms(opening) if opening else None
        else:
            code, text, next_open_at = "no_agents", config.no_agents_text.pick(language), None
        self._event(conversation, "no_agents", "Asked for a person: nobody was available", detail=reason)
        notice = Notice(
            conversation_id=conversation.conversation_id,
            code=code,
            text=text,
            next_open_at=next_open_at,
            leave_message=True,
        )
        self.notifier.visitor(conversation.conversation_id, notice)
        return conversation

    def drain(
        self, tenant_id: str, *, newest: Conversation | None = None, agents: list[Agent] | None = None
    ) -> dict[str, Conversation]:
        """Give queued conversations to on-duty agents with room (auto-assign tenants): the longest
        waiting first, each to the fairest agent (least loaded, then round-robin). Safe to run
        concurrently: every assignment is one conditional write that also checks the agent's load, so a
        conversation is taken once and no agent goes over capacity. Returns what it assigned."""
        config = self.config(tenant_id)
        if not config.auto_assign:
            return {}
        candidates = list(agents) if agents is not None else self.availability(tenant_id).with_room
        room = sum(max(self.capacity(a) - a.load, 0) for a in candidates)
        waiting = self.store.queued_conversations(tenant_id, limit=min(room + 10, 50)) if candidates else []
        if newest is not None and all(c.conversation_id != newest.conversation_id for c in waiting):
            # The queue index may not show a handoff just written; it is the newest, so it goes last.
            waiting.append(newest)
        assigned: dict[str, Conversation] = {}
        for conversation in waiting:
            while candidates:
                agent = min(candidates, key=_fair)
                capacity = self.capacity(agent)
                done = self._assign(conversation, agent, by="auto", capacity=capacity, broadcast=False)
                if done is not None:
                    assigned[conversation.conversation_id] = done
                    agent = agent.model_copy(update={"load": agent.load + 1, "last_assigned_at": monotonic_ms()})
                    candidates = [a for a in candidates if a.agent_id != agent.agent_id]
                    if agent.load < capacity:
                        candidates.append(agent)
                    break
                # Refused: the conversation moved on (next one), or the agent filled up meanwhile (next agent).
                current = self.store.get_conversation(conversation.conversation_id)
                if current is None or current.status != "queued":
                    break
                candidates = [a for a in candidates if a.agent_id != agent.agent_id]
            if not candidates:
                break
        # A new handoff is listed when nobody could take it yet; one taken at once was never listed.
        fresh = newest.conversation_id if newest is not None else None
        added = [newest] if newest is not None and fresh not in assigned else []
        removed = [c for conversation_id, c in assigned.items() if conversation_id != fresh]
        if added or removed:
            self.broadcast_queue(tenant_id, added=added, removed=removed)
        elif newest is not None:
            self.check_waits(tenant_id)
        return assigned

    # --- waiting too long ---

    def check_waits(self, tenant_id: str, queue: list[Conversation] | None = None) -> int:
        """Tell visitors who have waited in the queue longer than the tenant's limit, once per wait, that
        they are still waiting (and may leave a message). Run whenever the tenant's queue is read."""
        config = self.config(tenant_id)
        limit_ms = config.queue_notice_after_seconds * 1000
        if not limit_ms:
            return 0
        now = now_ms()
        told = 0
        waiting = queue if queue is not None else self.store.queued_conversations(tenant_id)
        for conversation in waiting:
            since = conversation.waiting_since
            if conversation.status != "queued" or since is None or conversation.wait_notified_at is not None:
                continue
            if now - since < limit_ms or not self.store.mark_wait_notified(conversation.conversation_id, since, now):
                continue
            notice = Notice(
                conversation_id=conversation.conversation_id,
                code="still_waiting",
                text=config.still_waiting_text.pick(notice_language(conversation)),
                leave_message=True,
            )
            self.notifier.visitor(conversation.conversation_id, notice)
            self._event(conversation, "still_waiting", "Told the visitor they are still waiting")
            told += 1
        return told

    # --- tickets: contact details left when nobody could chat ---

    def leave_ticket(
        self, conversation: Conversation, *, contact: str, name: str | None, text: str | None
    ) -> Conversation:
        ticket = Ticket(
            contact=contact.strip(),
            name=(name or "").strip() or None,
            text=(text or "").strip() or None,
            created_at=monotonic_ms(),
        )
        stored = self.store.leave_ticket(conversation, ticket)
        if stored is None:
            raise NotFound(f"unknown conversation {conversation.conversation_id!r}")
        detail = f" ({ticket.name})" if ticket.name else ""
        message = f": {ticket.text}" if ticket.text else ""
        self._event(stored, "ticket", f"Left contact details {ticket.contact}{detail}{message}")
        self._tell_visitor(stored, "message_left", said=ticket.text, contact=ticket.contact)
        self.broadcast_tickets(stored.tenant_id, changed=stored)
        return stored

    def close_ticket(self, agent: Agent, conversation_id: str) -> Conversation:
        self.owned(agent, conversation_id)
        closed = self.store.close_ticket(conversation_id, agent.agent_id, now_ms())
        if closed is None:
            raise Conflict("this conversation has no open ticket (someone closed it already?)")
        self._event(closed, "ticket_closed", f"{agent.name} closed the ticket", agent=agent)
        self.broadcast_tickets(agent.tenant_id, changed=closed)
        return closed

    def open_tickets(self, tenant_id: str, *, changed: Conversation | None = None) -> list[TicketOut]:
        """Open tickets, oldest first. ``changed``: a conversation whose ticket was just left or closed
        (the index that lists tickets may not show that yet)."""
        listed = [
            c
            for c in self.store.open_tickets(tenant_id)
            if changed is None or c.conversation_id != changed.conversation_id
        ]
        if changed is not None and changed.ticket is not None and changed.ticket.status == "open":
            listed.append(changed)
        listed.sort(key=lambda c: c.ticket.created_at if c.ticket else 0)
        return [t for t in (ticket_out(c) for c in listed) if t is not None]

    def broadcast_tickets(self, tenant_id: str, *, changed: Conversation | None = None) -> None:
        tickets = self.open_tickets(tenant_id, changed=changed)
        self.notifier.agents(tenant_id, fit(TicketsUpdated(tickets=tickets), "tickets"))

    # --- agent actions ---

    def owned(self, agent: Agent, conversation_id: str) -> Conversation:
        """The conversation, if it is this agent's tenant's (same error for absent and foreign)."""
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None or conversation.tenant_id != agent.tenant_id:
            raise NotFound(f"unknown conversation {conversation_id!r}")
        return conversation

    def visible(self, agent: Agent, conversation_id: str) -> Conversation:
        """The conversation, if this agent may read it: queued, theirs, one they handed back to the
        bot or resolved (and nobody held since: their console follows what the bot says next), with
        an open ticket (every agent of the tenant lists those), or any of the tenant's with
        ``handoff.agentsSeeAll``. Others look absent, as foreign ones do."""
        conversation = self.owned(agent, conversation_id)
        if (
            conversation.status == "queued"
            or conversation.assignee_id == agent.agent_id
            or (conversation.status in _BOT_OWNED and conversation.last_assignee_id == agent.agent_id)
            or (conversation.ticket is not None and conversation.ticket.status == "open")
            or self.config(agent.tenant_id).agents_see_all
        ):
            return conversation
        raise NotFound(f"unknown conversation {conversation_id!r}")

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
        self.drain(agent.tenant_id)
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
            self.broadcast_queue(agent.tenant_id, removed=[released])
        self.drain(agent.tenant_id)
        return released

    def released_by_platform(self, conversation: Conversation, text: str) -> Conversation | None:
        """A channel's own staff (WeCom's reception) ended a session kefu had handed to them: the
        conversation, still waiting in kefu's queue, goes back to the bot (the customer's next message
        is answered). None when it was not queued (a kefu agent holds it, or it is the bot's already)."""
        released = self.store.change_status(conversation, StatusChange(status="bot", from_statuses=_QUEUED))
        if released is None:
            return None
        self._event(released, "returned_to_bot", text, detail="platform")
        self.notifier.visitor(
            released.conversation_id,
            ConversationStatusFrame(conversation_id=released.conversation_id, status="bot"),
        )
        self.broadcast_queue(released.tenant_id, removed=[released])
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
            self.drain(agent.tenant_id)
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
        broadcast: bool = True,
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
            if broadcast:
                self.broadcast_queue(agent.tenant_id, removed=[assigned])
        return assigned

    def broadcast_queue(
        self, tenant_id: str, *, added: Sequence[Conversation] = (), removed: Sequence[Conversation] = ()
    ) -> None:
        """Tell every agent of the tenant what entered and left the queue (docs/protocol.md)."""
        frame = QueueUpdated(
            added=[summary(c) for c in added],
            removed=[QueueRemoval(conversation_id=c.conversation_id, updated_at=c.updated_at) for c in removed],
        )
        self.notifier.agents(tenant_id, fit(frame, "added"))
        self.check_waits(tenant_id)

    def _tell_visitor(self, conversation: Conversation, code: str, *, said: str | None = None, **values: str) -> None:
        notice = Notice(
            conversation_id=conversation.conversation_id,
            code=code,
            text=notice_text(code, notice_language(conversation, said), **values),
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
