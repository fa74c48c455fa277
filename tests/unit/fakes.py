"""In-memory fakes of the ports, for unit tests only (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

from shared.errors import ConnectionGone
from shared.ingest.uploads import UploadBucket
from shared.knowledge.base import Passage
from shared.knowledge.retrieve_client import Retriever
from shared.model.answer_model import Answer, AnswerModel, Turn
from shared.state.cache import ContextCache
from shared.state.records import (
    DIALOGUE_ROLES,
    Agent,
    AgentEdit,
    ChannelNotice,
    Connection,
    Conversation,
    StatusChange,
    StoredMessage,
    Tenant,
    Ticket,
    monotonic_ms,
    now_ms,
)
from shared.state.store import ReadSide, StateStore
from shared.state.uploads import UploadLedger, UploadRecord
from shared.wire.jobs import ChannelPullJob, GenerateJob, GenerationQueue, QueueJob
from shared.wire.push import ClientPush


class InMemoryStateStore(StateStore):
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.connections: dict[str, Connection] = {}
        self.conversations: dict[str, Conversation] = {}
        self.messages: dict[tuple[str, str], StoredMessage] = {}
        self.client_ids: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.agents: dict[str, Agent] = {}
        self._claims = threading.Lock()

    # --- agents ---
    def put_agent(self, agent: Agent) -> None:
        self.agents[agent.agent_id] = agent.model_copy()

    def get_agent(self, agent_id: str) -> Agent | None:
        agent = self.agents.get(agent_id)
        return agent.model_copy() if agent else None

    def list_agents(self, tenant_id: str) -> list[Agent]:
        return sorted(
            (a.model_copy() for a in self.agents.values() if a.tenant_id == tenant_id), key=lambda a: a.created_at
        )

    def delete_agent(self, agent_id: str) -> None:
        self.agents.pop(agent_id, None)

    def set_agent_away(self, agent_id: str, away: bool) -> None:
        if agent_id in self.agents:
            self.agents[agent_id].away = away

    def update_agent(self, agent_id: str, edit: AgentEdit) -> Agent | None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return None
        self.agents[agent_id] = agent.model_copy(update=edit.changes())
        return self.agents[agent_id].model_copy()

    def conversation_connections(self, conversation_id: str) -> list[Connection]:
        return [c.model_copy() for c in self.connections.values() if c.conversation_id == conversation_id]

    def agent_connections(self, tenant_id: str) -> list[Connection]:
        return [c.model_copy() for c in self.connections.values() if c.role == "agent" and c.tenant_id == tenant_id]

    # --- conversation ownership ---
    def change_status(self, conversation: Conversation, change: StatusChange) -> Conversation | None:
        current = self.conversations.get(conversation.conversation_id)
        if current is None or current.status not in change.from_statuses:
            return None
        if change.expected_assignee_id is not None and current.assignee_id != change.expected_assignee_id:
            return None
        gains = self.agents.get(change.assignee_id or "") if change.status == "assigned" else None
        loses = self.agents.get(change.expected_assignee_id or "")
        if (change.status == "assigned" and gains is None) or (change.expected_assignee_id and loses is None):
            return None  # the store's conditions: both agents exist
        if gains is not None and gains is loses:
            gains = loses = None
        if gains is not None and change.capacity is not None and gains.load >= change.capacity:
            return None
        if gains is not None:
            gains.load += 1
            gains.last_assigned_at = monotonic_ms()
        if loses is not None:
            loses.load -= 1
        updated = current.model_copy(update={"status": change.status, "updated_at": now_ms(), "no_answer_streak": 0})
        if change.status == "queued":
            updated.waiting_since = change.waiting_since or updated.updated_at
            updated.assignee_id = updated.assignee_name = None
            updated.wait_notified_at = None
        elif change.status == "assigned":
            updated.assignee_id, updated.assignee_name = change.assignee_id, change.assignee_name
        else:
            updated.assignee_id = updated.assignee_name = None
            if change.expected_assignee_id is not None:
                updated.last_assignee_id = change.expected_assignee_id
        if change.reason is not None:
            updated.handoff_reason = change.reason
        if change.preview is not None:
            updated.preview = change.preview
        self.conversations[conversation.conversation_id] = updated
        return updated.model_copy()

    def queued_conversations(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        queued = [c for c in self.conversations.values() if c.tenant_id == tenant_id and c.status == "queued"]
        return [c.model_copy() for c in sorted(queued, key=lambda c: c.waiting_since or 0)[:limit]]

    def assigned_conversations(self, agent_id: str, limit: int = 50) -> list[Conversation]:
        mine = [c for c in self.conversations.values() if c.status == "assigned" and c.assignee_id == agent_id]
        return [c.model_copy() for c in sorted(mine, key=lambda c: -c.updated_at)[:limit]]

    def mark_wait_notified(self, conversation_id: str, waiting_since: int, at: int) -> bool:
        conversation = self.conversations.get(conversation_id)
        if (
            conversation is None
            or conversation.status != "queued"
            or conversation.waiting_since != waiting_since
            or conversation.wait_notified_at is not None
        ):
            return False
        conversation.wait_notified_at = at
        return True

    def leave_ticket(self, conversation: Conversation, ticket: Ticket) -> Conversation | None:
        current = self.conversations.get(conversation.conversation_id)
        if current is None:
            return None
        current.ticket = ticket.model_copy()
        return current.model_copy(deep=True)

    def close_ticket(self, conversation_id: str, agent_id: str, at: int) -> Conversation | None:
        current = self.conversations.get(conversation_id)
        if current is None or current.ticket is None or current.ticket.status != "open":
            return None
        current.ticket = current.ticket.model_copy(update={"status": "closed", "closed_by": agent_id, "closed_at": at})
        return current.model_copy(deep=True)

    def open_tickets(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        found = [
            c
            for c in self.conversations.values()
            if c.tenant_id == tenant_id and c.ticket is not None and c.ticket.status == "open"
        ]
        return [c.model_copy(deep=True) for c in sorted(found, key=lambda c: c.ticket.created_at if c.ticket else 0)][
            :limit
        ]

    def record_grounding(self, conversation_id: str, grounded: bool) -> int:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return 0
        conversation.no_answer_streak = 0 if grounded else conversation.no_answer_streak + 1
        return conversation.no_answer_streak

    def set_preview(self, conversation_id: str, preview: str, at: int) -> None:
        if conversation_id in self.conversations:
            self.conversations[conversation_id].preview = preview
            self.conversations[conversation_id].updated_at = at

    def set_channel_notice(self, conversation_id: str, notice: ChannelNotice | None) -> None:
        if conversation_id in self.conversations:
            self.conversations[conversation_id].channel_notice = notice

    def advance_read(self, conversation_id: str, side: ReadSide, message_id: str) -> bool:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return False
        field = "visitor_read_until" if side == "visitor" else "agent_read_until"
        current = getattr(conversation, field)
        if current is not None and current >= message_id:
            return False
        setattr(conversation, field, message_id)
        return True

    def put_tenant(self, tenant: Tenant) -> None:
        self.tenants[tenant.tenant_id] = tenant.model_copy(deep=True)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        tenant = self.tenants.get(tenant_id)
        return tenant.model_copy(deep=True) if tenant is not None else None

    def put_connection(self, connection: Connection) -> None:
        self.connections[connection.connection_id] = connection

    def add_connection(self, connection: Connection) -> bool:
        with self._claims:
            if connection.connection_id in self.connections:
                return False
            self.connections[connection.connection_id] = connection
            return True

    def get_connection(self, connection_id: str) -> Connection | None:
        # A copy, as a database read is: callers change their connection object while others read theirs.
        connection = self.connections.get(connection_id)
        return connection.model_copy() if connection is not None else None

    def set_connection_conversation(self, connection_id: str, conversation_id: str) -> None:
        if connection_id in self.connections:
            self.connections[connection_id].conversation_id = conversation_id

    def claim_connection_conversation(self, connection_id: str, conversation_id: str, expected: str | None) -> bool:
        with self._claims:
            connection = self.connections.get(connection_id)
            if connection is None or connection.conversation_id != expected:
                return False
            connection.conversation_id = conversation_id
            return True

    def delete_connection(self, connection_id: str, *, connected_before: int | None = None) -> None:
        connection = self.connections.get(connection_id)
        if connection is not None and (connected_before is None or connection.connected_at < connected_before):
            del self.connections[connection_id]

    def put_conversation(self, conversation: Conversation) -> None:
        self.conversations[conversation.conversation_id] = conversation

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        conversation = self.conversations.get(conversation_id)
        return conversation.model_copy() if conversation else None

    def add_message(self, message: StoredMessage) -> None:
        self.messages[(message.conversation_id, message.message_id)] = message

    def set_feedback(self, conversation_id: str, message_id: str, rating: str) -> bool:
        message = self.messages.get((conversation_id, message_id))
        if message is None or message.role != "bot":
            return False
        message.feedback = rating
        return True

    def messages_page(
        self, conversation_id: str, *, before: str | None = None, after: str | None = None, limit: int = 50
    ) -> tuple[list[StoredMessage], bool]:
        every = self.list_messages(conversation_id)
        if after is not None:
            newer = [m for m in every if m.message_id > after]
            return newer[:limit], len(newer) > limit
        older = [m for m in every if before is None or m.message_id < before]
        return older[-limit:] if limit else [], len(older) > limit

    def add_client_message(self, message: StoredMessage, sender_key: str) -> StoredMessage:
        assert message.client_message_id
        key = (message.tenant_id, sender_key, message.client_message_id)
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
        return sorted((m for (c, _), m in self.messages.items() if c == conversation_id), key=lambda m: m.message_id)

    def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        dialogue = [m for m in self.list_messages(conversation_id) if m.role in DIALOGUE_ROLES]
        return dialogue[-limit:] if limit > 0 else []


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
        self.pulls: list[ChannelPullJob] = []
        self.fail = fail

    def enqueue(self, job: QueueJob) -> None:
        if self.fail:
            raise RuntimeError("queue unavailable")
        if isinstance(job, GenerateJob):
            self.jobs.append(job)
        else:
            self.pulls.append(job)


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


class InMemoryUploadLedger(UploadLedger):
    """The uploads ledger in a dict, with the same compare-and-set on ``revision`` as DynamoDB's."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], UploadRecord] = {}
        self._lock = threading.Lock()

    def create(self, record: UploadRecord, ttl_seconds: float) -> None:
        with self._lock:
            key = (record.tenant_id, record.upload_id)
            assert key not in self.records, "upload ids are fresh"
            self.records[key] = record

    def get(self, tenant_id: str, upload_id: str) -> UploadRecord | None:
        return self.records.get((tenant_id, upload_id))

    def replace(self, record: UploadRecord, ttl_seconds: float) -> UploadRecord | None:
        with self._lock:
            key = (record.tenant_id, record.upload_id)
            current = self.records.get(key)
            if current is None or current.revision != record.revision:
                return None
            moved = record.model_copy(update={"revision": record.revision + 1})
            self.records[key] = moved
            return moved


class FakeUploadBucket(UploadBucket):
    """Raw uploads in a dict; ``presign_post`` hands out a fake URL and records what it allowed."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.allowed: dict[str, tuple[str, int]] = {}
        self.deleted: list[str] = []

    def presign_post(
        self, key: str, content_type: str, max_bytes: int, expires_seconds: int
    ) -> tuple[str, dict[str, str]]:
        self.allowed[key] = (content_type, max_bytes)
        return "https://uploads.example/", {"key": key, "Content-Type": content_type, "policy": "fake"}

    def post(self, key: str, data: bytes) -> None:
        """What S3 does with a presigned POST: only the allowed key, at most the allowed size."""
        assert key in self.allowed and len(data) <= self.allowed[key][1]
        self.objects[key] = data

    def read(self, key: str, max_bytes: int) -> bytes | None:
        data = self.objects.get(key)
        return None if data is None else data[: max_bytes + 1]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.deleted.append(key)
