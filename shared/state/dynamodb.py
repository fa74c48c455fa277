"""DynamoDB adapter of the state store (PynamoDB), for real DynamoDB, DynamoDB Local or moto's server."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from pynamodb.connection import Connection as PynamoConnection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from shared.settings import Settings
from shared.state.records import (
    DIALOGUE_ROLES,
    AdminKeyRecord,
    Agent,
    AgentEdit,
    AnswerUsage,
    ChannelNotice,
    ChannelRef,
    Citation,
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
from shared.state.tables import (
    AgentModel,
    ConnectionModel,
    ConversationModel,
    MessageModel,
    TenantModel,
    bind_models,
)
from shared.tenant_config import TenantConfig

_M = TypeVar("_M", bound=Model)
_MESSAGE = "message"
_CLIENT_ID = "client-id"


def _client_key(tenant_id: str, visitor_id: str, client_message_id: str) -> str:
    return f"client#{tenant_id}#{visitor_id}#{client_message_id}"


def _get(model: type[_M], hash_key: str, range_key: str | None = None) -> _M | None:
    """One item by key, read consistently (state changes are read right after they are written)."""
    try:
        return model.get(hash_key, range_key, consistent_read=True)
    except DoesNotExist:
        return None


def _condition_failed(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    if cause == "ConditionalCheckFailedException":
        return True
    # A cancelled transaction lists a reason per item.
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)


class DynamoStateStore(StateStore):
    def __init__(self, settings: Settings) -> None:
        bind_models(settings)
        self._connection_ttl = timedelta(seconds=settings.connection_ttl_seconds)
        self._conversation_ttl = timedelta(days=settings.conversation_ttl_days)
        # Transactions take an explicit low-level connection; one per store, reused.
        self._transactions = PynamoConnection(
            region=settings.aws_region,
            host=settings.dynamodb_endpoint,
            connect_timeout_seconds=3,
            read_timeout_seconds=5,
            max_retry_attempts=2,
        )

    # --- tenants ---
    def put_tenant(self, tenant: Tenant) -> None:
        fields = tenant.model_dump(exclude={"config", "admin_keys"}, exclude_none=True)
        admin_keys = {key_id: record.model_dump() for key_id, record in tenant.admin_keys.items()}
        TenantModel(**fields, config=tenant.config.model_dump(mode="json"), admin_keys=admin_keys or None).save()

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        try:
            item = TenantModel.get(tenant_id)
        except DoesNotExist:
            return None
        return Tenant(
            tenant_id=item.tenant_id,
            name=item.name,
            widget_key=item.widget_key,
            created_at=item.created_at,
            config=TenantConfig.model_validate(item.config or {}),
            previous_widget_key=item.previous_widget_key,
            previous_widget_key_until=item.previous_widget_key_until,
            suspended=bool(item.suspended),
            suspended_reason=item.suspended_reason,
            identity_secret=item.identity_secret,
            admin_keys={key_id: AdminKeyRecord.model_validate(v) for key_id, v in (item.admin_keys or {}).items()},
        )

    # --- agents ---
    def put_agent(self, agent: Agent) -> None:
        AgentModel(**agent.model_dump(exclude_none=True)).save()

    def get_agent(self, agent_id: str) -> Agent | None:
        item = _get(AgentModel, agent_id)
        return _to_agent(item) if item else None

    def list_agents(self, tenant_id: str) -> list[Agent]:
        return [_to_agent(item) for item in AgentModel.by_tenant.query(tenant_id)]

    def delete_agent(self, agent_id: str) -> None:
        AgentModel(agent_id).delete()

    def set_agent_away(self, agent_id: str, away: bool) -> None:
        self._update_agent(agent_id, [AgentModel.away.set(away)])

    def update_agent(self, agent_id: str, edit: AgentEdit) -> Agent | None:
        actions: list[Action] = [getattr(AgentModel, name).set(value) for name, value in edit.changes().items()]
        item = AgentModel(agent_id)
        try:
            if not actions:
                return self.get_agent(agent_id)
            item.update(actions=actions, condition=AgentModel.agent_id.exists())
        except Exception as exc:
            if _condition_failed(exc):
                return None
            raise
        return _to_agent(item)

    @staticmethod
    def _update_agent(agent_id: str, actions: list[Action]) -> None:
        try:
            AgentModel(agent_id).update(actions=actions, condition=AgentModel.agent_id.exists())
        except Exception as exc:  # deleted meanwhile: nothing to update
            if not _condition_failed(exc):
                raise

    # --- connections ---
    def put_connection(self, connection: Connection) -> None:
        # A channel's customer has no socket to close: it is reachable as long as its conversation is kept.
        ttl = self._conversation_ttl if connection.channel is not None else self._connection_ttl
        item = ConnectionModel(**connection.model_dump(exclude_none=True), expires_at=ttl)
        if connection.role == "agent":
            item.agent_tenant_id = connection.tenant_id  # the sparse index of agent connections
        item.save()

    def add_connection(self, connection: Connection) -> bool:
        ttl = self._conversation_ttl if connection.channel is not None else self._connection_ttl
        item = ConnectionModel(**connection.model_dump(exclude_none=True), expires_at=ttl)
        try:
            item.save(condition=ConnectionModel.connection_id.does_not_exist())
        except PutError as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    def get_connection(self, connection_id: str) -> Connection | None:
        item = _get(ConnectionModel, connection_id)
        return _to_connection(item) if item else None

    def conversation_connections(self, conversation_id: str) -> list[Connection]:
        return [_to_connection(item) for item in ConnectionModel.by_conversation.query(conversation_id)]

    def agent_connections(self, tenant_id: str) -> list[Connection]:
        return [_to_connection(item) for item in ConnectionModel.agent_connections.query(tenant_id)]

    def set_connection_conversation(self, connection_id: str, conversation_id: str) -> None:
        item = ConnectionModel(connection_id)
        try:
            item.update(
                actions=[ConnectionModel.conversation_id.set(conversation_id)],
                condition=ConnectionModel.connection_id.exists(),
            )
        except Exception as exc:  # the visitor disconnected meanwhile: nothing to point
            if not _condition_failed(exc):
                raise

    def claim_connection_conversation(self, connection_id: str, conversation_id: str, expected: str | None) -> bool:
        unchanged = (
            ConnectionModel.conversation_id.does_not_exist()
            if expected is None
            else ConnectionModel.conversation_id == expected
        )
        try:
            ConnectionModel(connection_id).update(
                actions=[ConnectionModel.conversation_id.set(conversation_id)],
                condition=ConnectionModel.connection_id.exists() & unchanged,
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    def delete_connection(self, connection_id: str, *, connected_before: int | None = None) -> None:
        if connected_before is None:
            ConnectionModel(connection_id).delete()
            return
        try:
            ConnectionModel(connection_id).delete(condition=ConnectionModel.connected_at < connected_before)
        except DeleteError as exc:  # absent, or too young to be judged gone
            if not _condition_failed(exc):
                raise

    # --- conversations ---
    def put_conversation(self, conversation: Conversation) -> None:
        fields = conversation.model_dump(exclude_none=True, exclude={"ticket"})
        item = ConversationModel(**fields, expires_at=self._conversation_ttl)
        if conversation.status == "queued":
            item.queued_tenant_id = conversation.tenant_id  # the sparse queue index
        if conversation.ticket is not None:
            item.ticket = conversation.ticket.model_dump(mode="json")
            if conversation.ticket.status == "open":
                item.ticket_tenant_id, item.ticket_at = conversation.tenant_id, conversation.ticket.created_at
        item.save()

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        item = _get(ConversationModel, conversation_id)
        return _to_conversation(item) if item else None

    def change_status(self, conversation: Conversation, change: StatusChange) -> Conversation | None:
        model = ConversationModel
        now = now_ms()
        actions: list[Action] = [
            model.status.set(change.status),
            model.updated_at.set(now),
            model.no_answer_streak.set(0),
        ]
        if change.status == "queued":
            actions += [model.queued_tenant_id.set(conversation.tenant_id), model.assignee_id.remove()]
            actions += [model.assignee_name.remove()]
            actions.append(model.waiting_since.set(change.waiting_since or now))
            actions.append(model.wait_notified_at.remove())
        elif change.status == "assigned":
            if not change.assignee_id:
                raise ValueError("an assignment needs the agent")
            actions += [model.queued_tenant_id.remove(), model.assignee_id.set(change.assignee_id)]
            actions.append(model.assignee_name.set(change.assignee_name or change.assignee_id))
        else:
            actions += [model.queued_tenant_id.remove(), model.assignee_id.remove(), model.assignee_name.remove()]
            if change.expected_assignee_id is not None:
                actions.append(model.last_assignee_id.set(change.expected_assignee_id))
        if change.reason is not None:
            actions.append(model.handoff_reason.set(change.reason))
        if change.preview is not None:
            actions.append(model.preview.set(change.preview))
        condition = model.status.is_in(*sorted(change.from_statuses))
        if change.expected_assignee_id is not None:
            condition = condition & (model.assignee_id == change.expected_assignee_id)
        condition = condition & model.conversation_id.exists()
        gains = change.assignee_id if change.status == "assigned" else None
        loses = change.expected_assignee_id  # every move away from "assigned" names who holds it
        if gains == loses:  # kept by the same agent: no count changes (and one item per transaction)
            gains = loses = None
        item = model(conversation.conversation_id)
        try:
            if gains is None and loses is None:
                item.update(actions=actions, condition=condition)
                return _to_conversation(item)
            with TransactWrite(connection=self._transactions) as transaction:
                transaction.update(item, actions=actions, condition=condition)
                if loses is not None:
                    release: list[Action] = [AgentModel.load.add(-1)]
                    transaction.update(AgentModel(loses), actions=release, condition=AgentModel.agent_id.exists())
                if gains is not None:
                    has_room = AgentModel.agent_id.exists()
                    if change.capacity is not None:
                        has_room = has_room & (AgentModel.load.does_not_exist() | (AgentModel.load < change.capacity))
                    stamp: list[Action] = [AgentModel.load.add(1), AgentModel.last_assigned_at.set(monotonic_ms())]
                    transaction.update(AgentModel(gains), actions=stamp, condition=has_room)
        except Exception as exc:
            if _condition_failed(exc):
                return None
            raise
        return self.get_conversation(conversation.conversation_id)

    def queued_conversations(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        items = ConversationModel.queued.query(tenant_id, scan_index_forward=True, limit=limit)
        # The index is eventually consistent: drop entries whose status already moved on.
        return [c for c in (_to_conversation(item) for item in items) if c.status == "queued"]

    def assigned_conversations(self, agent_id: str, limit: int = 50) -> list[Conversation]:
        items = ConversationModel.by_assignee.query(agent_id, scan_index_forward=False, limit=limit)
        return [c for c in (_to_conversation(item) for item in items) if c.assignee_id == agent_id]

    def mark_wait_notified(self, conversation_id: str, waiting_since: int, at: int) -> bool:
        model = ConversationModel
        try:
            model(conversation_id).update(
                actions=[model.wait_notified_at.set(at)],
                condition=(model.status == "queued")
                & (model.waiting_since == waiting_since)
                & model.wait_notified_at.does_not_exist(),
            )
        except Exception as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def leave_ticket(self, conversation: Conversation, ticket: Ticket) -> Conversation | None:
        model = ConversationModel
        conversation_id = conversation.conversation_id
        item = model(conversation_id)
        try:
            item.update(
                actions=[
                    model.ticket.set(ticket.model_dump(mode="json")),
                    model.ticket_tenant_id.set(conversation.tenant_id),
                    model.ticket_at.set(ticket.created_at),
                ],
                condition=model.conversation_id.exists(),
            )
        except Exception as exc:
            if _condition_failed(exc):
                return None
            raise
        return self.get_conversation(conversation_id)

    def close_ticket(self, conversation_id: str, agent_id: str, at: int) -> Conversation | None:
        model = ConversationModel
        current = self.get_conversation(conversation_id)
        if current is None or current.ticket is None or current.ticket.status != "open":
            return None
        closed = current.ticket.model_copy(update={"status": "closed", "closed_by": agent_id, "closed_at": at})
        try:
            # Only the ticket that was read: one left again meanwhile stays open.
            model(conversation_id).update(
                actions=[
                    model.ticket.set(closed.model_dump(mode="json")),
                    model.ticket_tenant_id.remove(),
                    model.ticket_at.remove(),
                ],
                condition=model.ticket_tenant_id.exists() & (model.ticket_at == current.ticket.created_at),
            )
        except Exception as exc:
            if _condition_failed(exc):
                return None
            raise
        return current.model_copy(update={"ticket": closed})

    def open_tickets(self, tenant_id: str, limit: int = 50) -> list[Conversation]:
        items = ConversationModel.open_tickets.query(tenant_id, scan_index_forward=True, limit=limit)
        # The index is eventually consistent: drop entries closed meanwhile.
        found = (_to_conversation(item) for item in items)
        return [c for c in found if c.ticket is not None and c.ticket.status == "open"]

    def record_grounding(self, conversation_id: str, grounded: bool) -> int:
        item = ConversationModel(conversation_id)
        action = ConversationModel.no_answer_streak.set(0) if grounded else ConversationModel.no_answer_streak.add(1)
        try:
            item.update(actions=[action], condition=ConversationModel.conversation_id.exists())
        except Exception as exc:
            if _condition_failed(exc):
                return 0
            raise
        return int(item.no_answer_streak or 0)

    def set_preview(self, conversation_id: str, preview: str, at: int) -> None:
        item = ConversationModel(conversation_id)
        try:
            item.update(
                actions=[ConversationModel.preview.set(preview), ConversationModel.updated_at.set(at)],
                condition=ConversationModel.conversation_id.exists(),
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise

    def set_channel_notice(self, conversation_id: str, notice: ChannelNotice | None) -> None:
        attribute = ConversationModel.channel_notice
        condition = ConversationModel.conversation_id.exists()
        if notice is None:  # conditional: most sends find nothing to clear, and then write nothing
            action: Action = attribute.remove()
            condition &= attribute.exists()
        else:
            action = attribute.set(notice.model_dump())
        try:
            ConversationModel(conversation_id).update(actions=[action], condition=condition)
        except Exception as exc:
            if not _condition_failed(exc):
                raise

    def advance_read(self, conversation_id: str, side: ReadSide, message_id: str) -> bool:
        attribute = ConversationModel.visitor_read_until if side == "visitor" else ConversationModel.agent_read_until
        try:
            ConversationModel(conversation_id).update(
                actions=[attribute.set(message_id)],
                condition=ConversationModel.conversation_id.exists()
                & (attribute.does_not_exist() | (attribute < message_id)),
            )
        except Exception as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    # --- messages ---
    def _message_item(self, message: StoredMessage) -> MessageModel:
        return MessageModel(
            message.conversation_id,
            message.message_id,
            kind=_MESSAGE,
            tenant_id=message.tenant_id,
            role=message.role,
            text=message.text,
            client_message_id=message.client_message_id,
            citations=[c.model_dump() for c in message.citations] or None,
            sender_id=message.sender_id,
            sender_name=message.sender_name,
            event=message.event,
            feedback=message.feedback,
            usage=message.usage.model_dump() if message.usage is not None else None,
            incomplete=True if message.incomplete else None,
            created_at=message.created_at,
            expires_at=self._conversation_ttl,
        )

    def add_message(self, message: StoredMessage) -> None:
        self._message_item(message).save()

    def set_feedback(self, conversation_id: str, message_id: str, rating: str) -> bool:
        try:
            MessageModel(conversation_id, message_id).update(
                actions=[MessageModel.feedback.set(rating)],
                condition=MessageModel.message_id.exists() & (MessageModel.role == "bot"),
            )
        except Exception as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def messages_page(
        self, conversation_id: str, *, before: str | None = None, after: str | None = None, limit: int = 50
    ) -> tuple[list[StoredMessage], bool]:
        if after is not None:
            items = MessageModel.query(
                conversation_id,
                MessageModel.message_id > after,
                scan_index_forward=True,
                limit=limit + 1,
                consistent_read=True,
            )
            page = [_to_record(item) for item in items]
            return page[:limit], len(page) > limit
        condition = MessageModel.message_id < before if before is not None else None
        items = MessageModel.query(
            conversation_id, condition, scan_index_forward=False, limit=limit + 1, consistent_read=True
        )
        newest_first = [_to_record(item) for item in items]
        return newest_first[:limit][::-1], len(newest_first) > limit

    def add_client_message(self, message: StoredMessage, sender_key: str) -> StoredMessage:
        if message.client_message_id is None:
            raise ValueError("a client message needs its client message id")
        visitor_id = sender_key
        client_record = MessageModel(
            _client_key(message.tenant_id, visitor_id, message.client_message_id),
            "#",
            kind=_CLIENT_ID,
            tenant_id=message.tenant_id,
            target_conversation_id=message.conversation_id,
            target_message_id=message.message_id,
            created_at=message.created_at,
            expires_at=self._conversation_ttl,
        )
        try:
            with TransactWrite(connection=self._transactions) as transaction:
                transaction.save(client_record, condition=MessageModel.conversation_id.does_not_exist())
                transaction.save(self._message_item(message))
        except TransactWriteError as exc:
            if not _condition_failed(exc):
                raise
            earlier = self.find_by_client_id(message.tenant_id, visitor_id, message.client_message_id)
            if earlier is None:  # the record exists but its message does not: never half-stored
                raise
            return earlier
        return message

    def find_by_client_id(self, tenant_id: str, visitor_id: str, client_message_id: str) -> StoredMessage | None:
        record = _get(MessageModel, _client_key(tenant_id, visitor_id, client_message_id), "#")
        if record is None or record.target_conversation_id is None or record.target_message_id is None:
            return None
        return self.get_message(record.target_conversation_id, record.target_message_id)

    def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None:
        item = _get(MessageModel, conversation_id, message_id)
        return _to_record(item) if item else None

    def add_answer(self, answer: StoredMessage) -> bool:
        try:
            self._message_item(answer).save(condition=MessageModel.message_id.does_not_exist())
        except PutError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def recent_messages(self, conversation_id: str, limit: int) -> list[StoredMessage]:
        if limit <= 0:
            return []
        # Notes and events sit between dialogue messages: read a few more and skip them.
        items = MessageModel.query(
            conversation_id, scan_index_forward=False, limit=limit * 2 + 10, consistent_read=True
        )
        dialogue = [_to_record(item) for item in items if item.role in DIALOGUE_ROLES]
        return dialogue[:limit][::-1]

    def list_messages(self, conversation_id: str) -> list[StoredMessage]:
        return [_to_record(item) for item in MessageModel.query(conversation_id, consistent_read=True)]


def _to_record(item: MessageModel) -> StoredMessage:
    return StoredMessage(
        conversation_id=item.conversation_id,
        message_id=item.message_id,
        tenant_id=item.tenant_id,
        role=item.role,
        text=item.text or "",
        created_at=item.created_at,
        client_message_id=item.client_message_id,
        citations=[Citation.model_validate(c) for c in item.citations or []],
        sender_id=item.sender_id,
        sender_name=item.sender_name,
        event=item.event,
        feedback=item.feedback,
        usage=AnswerUsage.model_validate(item.usage) if item.usage else None,
        incomplete=bool(item.incomplete),
    )


def _to_agent(item: AgentModel) -> Agent:
    return Agent(
        agent_id=item.agent_id,
        tenant_id=item.tenant_id,
        name=item.name,
        key_hash=item.key_hash,
        created_at=item.created_at,
        capacity=int(item.capacity) if item.capacity is not None else None,
        away=bool(item.away),
        disabled=bool(item.disabled),
        last_assigned_at=int(item.last_assigned_at or 0),
        load=max(int(item.load or 0), 0),
    )


def _to_connection(item: ConnectionModel) -> Connection:
    return Connection(
        connection_id=item.connection_id,
        tenant_id=item.tenant_id,
        visitor_id=item.visitor_id,
        conversation_id=item.conversation_id,
        connected_at=item.connected_at,
        domain_name=item.domain_name,
        stage=item.stage,
        role="agent" if item.role == "agent" else "visitor",
        agent_id=item.agent_id,
        page=item.page,
        language=item.language,
        source_ip=item.source_ip,
        channel=ChannelRef.model_validate(item.channel) if item.channel else None,
    )


def _to_conversation(item: ConversationModel) -> Conversation:
    return Conversation(
        conversation_id=item.conversation_id,
        tenant_id=item.tenant_id,
        visitor_id=item.visitor_id,
        status=item.status,
        created_at=item.created_at,
        updated_at=item.updated_at,
        waiting_since=item.waiting_since,
        handoff_reason=item.handoff_reason,
        assignee_id=item.assignee_id,
        assignee_name=item.assignee_name,
        last_assignee_id=item.last_assignee_id,
        no_answer_streak=int(item.no_answer_streak or 0),
        visitor_page=item.visitor_page,
        visitor_language=item.visitor_language,
        preview=item.preview,
        visitor_read_until=item.visitor_read_until,
        agent_read_until=item.agent_read_until,
        wait_notified_at=item.wait_notified_at,
        ticket=Ticket.model_validate(item.ticket) if item.ticket else None,
        channel=ChannelRef.model_validate(item.channel) if item.channel else None,
        channel_notice=ChannelNotice.model_validate(item.channel_notice) if item.channel_notice else None,
    )
