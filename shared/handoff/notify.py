"""Fan-out of frames to every connection that should see them: a visitor's tabs, an agent's tabs, all
agents of a tenant. Best effort per connection: a gone connection is forgotten, others still get it."""

from __future__ import annotations

from shared.errors import ConnectionGone
from shared.observability import logger
from shared.state.records import Connection, now_ms
from shared.state.store import StateStore
from shared.wire.protocol import Frame
from shared.wire.push import ClientPush

# A post to a connection whose $connect has not finished (its record is already stored) fails as gone,
# and $connect may take up to the 29 s integration timeout: only a connection older
# than this is forgotten when a post finds it gone (younger ones are left to $disconnect and the TTL).
CONNECT_GRACE_MS = 60_000


class Notifier:
    """One per invocation: it caches the tenant's agent connections for the invocation's fan-outs."""

    def __init__(self, store: StateStore, push: ClientPush) -> None:
        self._store = store
        self._push = push
        self._agent_connections: dict[str, list[Connection]] = {}
        # Connections attached to a conversation during this invocation: the index that finds them
        # (a DynamoDB GSI) may not show them yet.
        self._attached: dict[str, set[str]] = {}

    def attached(self, conversation_id: str, connection_id: str) -> None:
        self._attached.setdefault(conversation_id, set()).add(connection_id)

    def send(self, connection_id: str, frame: Frame) -> bool:
        try:
            self._push.send(connection_id, frame.to_json())
        except ConnectionGone:
            self._store.delete_connection(connection_id, connected_before=now_ms() - CONNECT_GRACE_MS)
            return False
        except Exception:
            logger.exception("could not push a frame", extra={"connection_id": connection_id})
            return False
        return True

    def visitor(self, conversation_id: str, frame: Frame, *, skip: str | None = None) -> int:
        """To every visitor connection attached to the conversation. Returns how many got it."""
        targets = {
            c.connection_id for c in self._store.conversation_connections(conversation_id) if c.role == "visitor"
        }
        targets |= self._attached.get(conversation_id, set())
        targets.discard(skip or "")
        return sum(self.send(connection_id, frame) for connection_id in sorted(targets))

    def agent_connections(self, tenant_id: str) -> list[Connection]:
        if tenant_id not in self._agent_connections:
            self._agent_connections[tenant_id] = self._store.agent_connections(tenant_id)
        return self._agent_connections[tenant_id]

    def online_agent_ids(self, tenant_id: str) -> set[str]:
        return {c.agent_id for c in self.agent_connections(tenant_id) if c.agent_id}

    def agent(self, tenant_id: str, agent_id: str, frame: Frame, *, skip: str | None = None) -> int:
        """To every tab of one agent."""
        targets = [
            c.connection_id
            for c in self.agent_connections(tenant_id)
            if c.agent_id == agent_id and c.connection_id != skip
        ]
        return sum(self.send(connection_id, frame) for connection_id in targets)

    def agents(self, tenant_id: str, frame: Frame) -> int:
        """To every agent connection of the tenant."""
        return sum(self.send(c.connection_id, frame) for c in self.agent_connections(tenant_id))


def tell_assignee(store: StateStore, push: ClientPush, conversation_id: str) -> None:
    """Send the conversation's agent its current summary (``conversation.updated``): something about it
    changed that no other frame carries (a channel's refusal to deliver). Best effort."""
    from shared.handoff.views import summary
    from shared.wire.protocol import ConversationUpdated

    conversation = store.get_conversation(conversation_id)
    if conversation is None or conversation.status != "assigned" or conversation.assignee_id is None:
        return
    frame = ConversationUpdated(conversation=summary(conversation))
    Notifier(store, push).agent(conversation.tenant_id, conversation.assignee_id, frame)
