"""The state store port: tenants, connections, conversations and messages."""

from __future__ import annotations

from abc import ABC, abstractmethod

from shared.state.records import Citation, Connection, Conversation, StoredMessage, Tenant


class StateStore(ABC):
    # --- tenants ---
    @abstractmethod
    def put_tenant(self, tenant: Tenant) -> None: ...

    @abstractmethod
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    # --- connections ---
    @abstractmethod
    def put_connection(self, connection: Connection) -> None: ...

    @abstractmethod
    def get_connection(self, connection_id: str) -> Connection | None: ...

    @abstractmethod
    def set_connection_conversation(self, connection_id: str, conversation_id: str) -> None: ...

    @abstractmethod
    def delete_connection(self, connection_id: str) -> None: ...

    # --- conversations ---
    @abstractmethod
    def put_conversation(self, conversation: Conversation) -> None: ...

    @abstractmethod
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    # --- messages ---
    @abstractmethod
    def add_visitor_message(self, message: StoredMessage, visitor_id: str) -> StoredMessage:
        """Store a visitor message once per (tenant, visitor, client message id).

        Returns the stored message: the given one, or the one stored by an earlier send of the same
        client message id (the caller acks it again instead of answering twice). Atomic: either the
        message and its idempotency record are both written, or neither.
        """

    @abstractmethod
    def find_by_client_id(self, tenant_id: str, visitor_id: str, client_message_id: str) -> StoredMessage | None: ...

    @abstractmethod
    def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None: ...

    @abstractmethod
    def add_answer(self, answer: StoredMessage) -> bool:
        """Store a bot answer unless one with this id exists; False means it was already answered."""

    @abstractmethod
    def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        """The last ``limit`` messages, oldest first."""

    @abstractmethod
    def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        """The whole transcript, oldest first."""


__all__ = ["Citation", "StateStore"]
