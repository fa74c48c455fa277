"""A tenant with agents, visitor and agent connections, and the handoff objects over in-memory fakes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.chat.intake import Intake
from shared.handoff.agents import new_agent_key
from shared.handoff.notify import Notifier
from shared.handoff.service import Handoff
from shared.state.records import Agent, Connection, Conversation, StoredMessage, Tenant, answer_id_for
from shared.tenant_config.handoff import HandoffConfig
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore

TENANT = "t_1"
MONDAY_NOON_UTC = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Desk:
    """The world a handoff test sees: store, push, queue and a clock it can move."""

    store: InMemoryStateStore = field(default_factory=InMemoryStateStore)
    push: FakePush = field(default_factory=FakePush)
    queue: FakeQueue = field(default_factory=FakeQueue)
    cache: InMemoryContextCache = field(default_factory=InMemoryContextCache)
    now: datetime = MONDAY_NOON_UTC
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store.put_tenant(Tenant(tenant_id=TENANT, name="Shop", widget_key="wk", created_at=1))

    def configure(self, **changes: Any) -> HandoffConfig:
        tenant = self.store.tenants[TENANT]
        tenant.config.handoff = HandoffConfig.model_validate({**tenant.config.handoff.model_dump(), **changes})
        return tenant.config.handoff

    def agent(self, agent_id: str, name: str, *, capacity: int | None = None, online: bool = True) -> Agent:
        key, key_hash = new_agent_key(agent_id)
        self.keys[agent_id] = key
        agent = Agent(
            agent_id=agent_id,
            tenant_id=TENANT,
            name=name,
            key_hash=key_hash,
            created_at=len(self.store.agents) + 1,
            capacity=capacity,
        )
        self.store.put_agent(agent)
        if online:
            self.agent_tab(agent_id, f"tab-{agent_id}")
        return agent

    def agent_tab(self, agent_id: str, connection_id: str) -> None:
        self.store.put_connection(
            Connection(
                connection_id=connection_id,
                tenant_id=TENANT,
                visitor_id=agent_id,
                connected_at=1,
                domain_name="d",
                stage="s",
                role="agent",
                agent_id=agent_id,
            )
        )

    def visitor_tab(self, connection_id: str, visitor_id: str = "visitor-aaa", language: str | None = "en") -> None:
        self.store.put_connection(
            Connection(
                connection_id=connection_id,
                tenant_id=TENANT,
                visitor_id=visitor_id,
                connected_at=1,
                domain_name="d",
                stage="s",
                page="https://shop.example/chair",
                language=language,
            )
        )

    def conversation(
        self, conversation_id: str = "c_1", *, status: str = "bot", visitor_id: str = "visitor-aaa", tab: str = "v-tab"
    ) -> Conversation:
        conversation = Conversation(
            conversation_id=conversation_id,
            tenant_id=TENANT,
            visitor_id=visitor_id,
            created_at=1,
            updated_at=1,
            status=status,  # type: ignore[arg-type]
            visitor_language="en",
        )
        self.store.put_conversation(conversation)
        if tab not in self.store.connections:
            self.visitor_tab(tab, visitor_id)
        self.store.set_connection_conversation(tab, conversation_id)
        return conversation

    def bot_answer(self, ack: dict[str, Any], text: str = "2-4 days") -> str:
        """Store the bot's answer to the acked visitor message (as the generate function would); its id."""
        answer_id = answer_id_for(ack["messageId"])
        self.store.add_answer(
            StoredMessage(
                conversation_id=ack["conversationId"],
                message_id=answer_id,
                tenant_id=TENANT,
                role="bot",
                text=text,
                created_at=2,
            )
        )
        return answer_id

    def handoff(self) -> Handoff:
        return Handoff(self.store, Notifier(self.store, self.push), clock=lambda: self.now)

    def intake(self) -> Intake:
        return Intake(
            store=self.store,
            cache=self.cache,
            queue=self.queue,
            push=self.push,
            callback_url="https://d/s",
            max_message_chars=500,
            clock=lambda: self.now,
        )

    def send(self, connection_id: str, **frame: Any) -> None:
        self.intake().handle(connection_id, json.dumps(frame))

    def frames(self, connection_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [f for c, f in self.push.frames if c == connection_id and (kind is None or f["type"] == kind)]

    def types(self, connection_id: str) -> list[str]:
        return [f["type"] for f in self.frames(connection_id)]

    def clear(self) -> None:
        self.push.frames.clear()

    def status(self, conversation_id: str = "c_1") -> str:
        return self.store.conversations[conversation_id].status

    def events(self, conversation_id: str = "c_1") -> list[str]:
        return [m.event or "" for m in self.store.list_messages(conversation_id) if m.role == "event"]
