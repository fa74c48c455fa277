"""The state store port: tenants, agents, connections, conversations and messages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

from shared.state.records import (
    Agent,
    AgentEdit,
    ChannelNotice,
    Citation,
    Connection,
    Conversation,
    StatusChange,
    StoredMessage,
    Tenant,
    Ticket,
)
from shared.tenant_config import TenantConfig

ReadSide = Literal["visitor", "agent"]


class StateStore(ABC):
    # --- tenants ---
    @abstractmethod
    def put_tenant(self, tenant: Tenant) -> None: ...

    @abstractmethod
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def tenant_config(self, tenant_id: str) -> TenantConfig | None:
        """The tenant's settings; None when there is no such tenant."""
        tenant = self.get_tenant(tenant_id)
        return tenant.config if tenant is not None else None

    # --- agents ---
    @abstractmethod
    def put_agent(self, agent: Agent) -> None: ...

    @abstractmethod
    def get_agent(self, agent_id: str) -> Agent | None: ...

    @abstractmethod
    def list_agents(self, tenant_id: str) -> list[Agent]:
        """The tenant's agents, oldest first."""

    @abstractmethod
    def delete_agent(self, agent_id: str) -> None: ...

    @abstractmethod
    def set_agent_away(self, agent_id: str, away: bool) -> None: ...

    @abstractmethod
    def update_agent(self, agent_id: str, edit: AgentEdit) -> Agent | None:
        """Change an agent's profile fields only (a read-modify-put could undo a concurrent assignment's
        load or the agent's away flag). None when there is no such agent."""

    # --- connections ---
    @abstractmethod
    def put_connection(self, connection: Connection) -> None: ...

    @abstractmethod
    def add_connection(self, connection: Connection) -> bool:
        """Store the connection only if no connection has its id; False when one had (a channel
        customer's first messages arriving together must not reset each other's conversation)."""

    @abstractmethod
    def get_connection(self, connection_id: str) -> Connection | None: ...

    @abstractmethod
    def set_connection_conversation(self, connection_id: str, conversation_id: str) -> None: ...

    @abstractmethod
    def claim_connection_conversation(self, connection_id: str, conversation_id: str, expected: str | None) -> bool:
        """Point the connection at ``conversation_id`` only if it still points at ``expected`` (None:
        at no conversation). False when another frame got there first, or the connection is gone."""

    @abstractmethod
    def delete_connection(self, connection_id: str, *, connected_before: int | None = None) -> None:
        """Forget a connection. With ``connected_before`` (epoch ms), only if it connected earlier than
        that: a connection still inside its $connect looks gone to @connections but is not."""

    @abstractmethod
    def conversation_connections(self, conversation_id: str) -> list[Connection]:
        """The open connections attached to a conversation (a visitor may have several tabs)."""

    @abstractmethod
    def agent_connections(self, tenant_id: str) -> list[Connection]:
        """Every open agent connection of a tenant (presence and fan-out to agents)."""

    # --- conversations ---
    @abstractmethod
    def put_conversation(self, conversation: Conversation) -> None: ...

    @abstractmethod
    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """A strongly consistent read: ownership decisions rely on it."""

    @abstractmethod
    def change_status(self, conversation: Conversation, change: StatusChange) -> Conversation | None:
        """Apply ``change`` if the stored conversation is in one of ``change.from_statuses`` (and held by
        ``change.expected_assignee_id`` when set). Returns the updated conversation, or None when the
        condition did not hold (someone else changed it first, or the new assignee is at
        ``change.capacity``). Any change resets the no-answer streak. Atomically with it, the agent who
        gets the conversation counts one more in ``Agent.load`` (and is stamped for round-robin), the
        agent who loses it one fewer."""

    @abstractmethod
    def queued_conversations(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        """The tenant's queue, longest waiting first."""

    @abstractmethod
    def assigned_conversations(self, agent_id: str, limit: int = 50) -> list[Conversation]:
        """Conversations the agent holds now."""

    @abstractmethod
    def mark_wait_notified(self, conversation_id: str, waiting_since: int, at: int) -> bool:
        """Claim the one "still waiting" notice of a queued conversation's current wait: True for the
        first caller only (the conversation must still be queued since ``waiting_since``)."""

    # --- tickets (contact details left when nobody could chat) ---
    @abstractmethod
    def leave_ticket(self, conversation: Conversation, ticket: Ticket) -> Conversation | None:
        """Store (or replace) the conversation's open ticket; None when there is no such conversation."""

    @abstractmethod
    def close_ticket(self, conversation_id: str, agent_id: str, at: int) -> Conversation | None:
        """Close the conversation's open ticket; None when it has none open (closed already, or never)."""

    @abstractmethod
    def open_tickets(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        """Conversations of the tenant with an open ticket, oldest ticket first."""

    @abstractmethod
    def record_grounding(self, conversation_id: str, grounded: bool) -> int:
        """Count bot answers without a good source in a row; a grounded answer resets it. Returns the count."""

    @abstractmethod
    def set_preview(self, conversation_id: str, preview: str, at: int) -> None:
        """The last visitor message (for the agents' lists) and the activity time."""

    @abstractmethod
    def set_channel_notice(self, conversation_id: str, notice: ChannelNotice | None) -> None:
        """Record (or clear) a channel's refusal to deliver in this conversation (shown to agents)."""

    @abstractmethod
    def advance_read(self, conversation_id: str, side: ReadSide, message_id: str) -> bool:
        """Move a side's last-read watermark forward (never back). False when it was already there."""

    # --- messages ---
    def add_visitor_message(self, message: StoredMessage, visitor_id: str) -> StoredMessage:
        """Store a visitor message once per (tenant, visitor, client message id).

        Returns the stored message: the given one, or the one stored by an earlier send of the same
        client message id (the caller acks it again instead of answering twice). Atomic: either the
        message and its idempotency record are both written, or neither.
        """
        return self.add_client_message(message, visitor_id)

    @abstractmethod
    def add_client_message(self, message: StoredMessage, sender_key: str) -> StoredMessage:
        """Store a message once per (tenant, sender, client message id); see ``add_visitor_message``.

        ``sender_key`` scopes client ids: the visitor id, or ``agent:{agent_id}`` for agents."""

    @abstractmethod
    def find_by_client_id(self, tenant_id: str, visitor_id: str, client_message_id: str) -> StoredMessage | None:
        """The message stored for a client message id; ``visitor_id`` is the sender key."""

    @abstractmethod
    def add_message(self, message: StoredMessage) -> None:
        """Store a message with a fresh id (events): no idempotency record."""

    @abstractmethod
    def set_feedback(self, conversation_id: str, message_id: str, rating: str) -> bool:
        """Record the visitor's rating of a bot answer; False when there is no such answer."""

    @abstractmethod
    def messages_page(
        self, conversation_id: str, *, before: str | None = None, after: str | None = None, limit: int = 50
    ) -> tuple[list[StoredMessage], bool]:
        """Up to ``limit`` messages, oldest first: the newest ones before ``before`` (or the newest of all),
        or the oldest ones after ``after``. The flag says whether more exist in that direction."""

    @abstractmethod
    def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None: ...

    @abstractmethod
    def add_answer(self, answer: StoredMessage) -> bool:
        """Store a bot answer unless one with this id exists; False means it was already answered."""

    @abstractmethod
    def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        """The last ``limit`` dialogue messages (visitor, bot, agent; no notes or events), oldest first."""

    @abstractmethod
    def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        """The whole transcript, oldest first."""


__all__ = ["Citation", "ReadSide", "StateStore", "Ticket"]
