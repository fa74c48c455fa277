"""In-memory fakes of the ports, for unit tests only (no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from shared.chat.jobs import GenerateJob, GenerationQueue
from shared.chat.push import ClientPush
from shared.chat.retriever import Retriever
from shared.errors import ConnectionGone
from shared.knowledge.base import Passage
from shared.model.base import Answer, AnswerModel, Turn
from shared.state.cache import ContextCache
from shared.state.records import Connection, Conversation, StoredMessage, Tenant
from shared.state.store import StateStore


class InMemoryStateStore(StateStore):
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.connections: dict[str, Connection] = {}
        self.conversations: dict[str, Conversation] = {}
        self.messages: dict[tuple[str, str], StoredMessage] = {}
        self.client_ids: dict[tuple[str, str, str], tuple[str, str]] = {}

    def put_tenant(self, tenant: Tenant) -> None:
        self.tenants[tenant.tenant_id] = tenant

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def put_connection(self, connection: Connection) -> None:
        self.connections[connection.connection_id] = connection

    def get_connection(self, connection_id: str) -> Connection | None:
        return self.connections.get(connection_id)

    def set_connection_conversation(self, connection_id: str, conversation_id: str) -> None:
        if connection_id in self.connections:
            self.connections[connection_id].conversation_id = conversation_id

    def delete_connection(self, connection_id: str) -> None:
        self.connections.pop(connection_id, None)

    def put_conversation(self, conversation: Conversation) -> None:
        self.conversations[conversation.conversation_id] = conversation

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        return self.conversations.get(conversation_id)

    def add_visitor_message(self, message: StoredMessage, visitor_id: str) -> StoredMessage:
        assert message.client_message_id
        key = (message.tenant_id, visitor_id, message.client_message_id)
        if key in self.client_ids:
            return self.messages[self.client_ids[key]]
        self.client_ids[key] = (message.conversation_id, message.message_id)
        self.messages[(message.conversation_id, message.message_id)] = message
        return message

    def find_by_client_id(self, tenant_id: str, visitor_id: str, client_message_id: str) -> StoredMessage | None:
        target = self.client_ids.get((tenant_id, visitor_id, client_message_id))
        return self.messages[target] if target else None

    def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None:
        return self.messages.get((conversation_id, message_id))

    def add_answer(self, answer: StoredMessage) -> bool:
        key = (answer.conversation_id, answer.message_id)
        if key in self.messages:
            return False
        self.messages[key] = answer
        return True

    def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        return sorted(
            (m for (c, _), m in self.messages.items() if c == conversation_id), key=lambda m: m.message_id
        )

    def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        return self.list_messages(conversation_id)[-limit:] if limit > 0 else []


class InMemoryContextCache(ContextCache):
    def __init__(self) -> None:
        self.lists: dict[str, list[StoredMessage]] = {}

    def recent(self, conversation_id: str) -> list[StoredMessage] | None:
        return list(self.lists[conversation_id]) if conversation_id in self.lists else None

    def append(self, message: StoredMessage) -> None:
        if message.conversation_id in self.lists:
            self.lists[message.conversation_id].append(message)

    def replace(self, conversation_id: str, messages: list[StoredMessage]) -> None:
        self.lists[conversation_id] = list(messages)


class FakePush(ClientPush):
    """Records frames per connection; connections listed in ``gone`` raise ConnectionGone."""

    def __init__(self, gone_after: int | None = None) -> None:
        self.frames: list[tuple[str, dict]] = []
        self.gone: set[str] = set()
        self._gone_after = gone_after

    def send(self, connection_id: str, frame: str) -> None:
        if connection_id in self.gone:
            raise ConnectionGone(connection_id)
        self.frames.append((connection_id, json.loads(frame)))
        if self._gone_after is not None and len(self.frames) >= self._gone_after:
            self.gone.add(connection_id)

    def close(self, connection_id: str) -> None:
        self.gone.add(connection_id)

    def types(self) -> list[str]:
        return [f["type"] for _, f in self.frames]


class FakeQueue(GenerationQueue):
    def __init__(self, fail: bool = False) -> None:
        self.jobs: list[GenerateJob] = []
        self.fail = fail

    def enqueue(self, job: GenerateJob) -> None:
        if self.fail:
            raise RuntimeError("queue unavailable")
        self.jobs.append(job)


class FakeRetriever(Retriever):
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.queries: list[tuple[str, str, int]] = []

    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        self.queries.append((tenant_id, query, k))
        return self.passages[:k]


class FakeAnswerModel(AnswerModel):
    """Cites every passage and streams fixed pieces; records the history it was given."""

    def __init__(self, pieces: list[str], fail_after: int | None = None) -> None:
        self.pieces = pieces
        self.fail_after = fail_after
        self.histories: list[list[Turn]] = []
        self.consumed = 0
        self.closed = False

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        return Answer(citations=passages)

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        self.histories.append(history)
        try:
            for i, piece in enumerate(self.pieces):
                if self.fail_after is not None and i >= self.fail_after:
                    raise RuntimeError("model server dropped the stream")
                self.consumed += 1
                yield piece
        finally:
            self.closed = True
