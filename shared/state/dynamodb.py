"""DynamoDB adapter of the state store (PynamoDB), for real DynamoDB, DynamoDB Local or moto's server."""

from __future__ import annotations

from datetime import timedelta

from pynamodb.connection import Connection as PynamoConnection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from shared.settings import Settings
from shared.state.models import (
    ConnectionModel,
    ConversationModel,
    MessageModel,
    TenantModel,
    bind_models,
)
from shared.state.records import Citation, Connection, Conversation, StoredMessage, Tenant
from shared.state.store import StateStore
from shared.tenant_config import TenantConfig

_MESSAGE = "message"
_CLIENT_ID = "client-id"


def _client_key(tenant_id: str, visitor_id: str, client_message_id: str) -> str:
    return f"client#{tenant_id}#{visitor_id}#{client_message_id}"


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
        TenantModel(**tenant.model_dump(exclude={"config"}), config=tenant.config.model_dump(mode="json")).save()

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
        )

    # --- connections ---
    def put_connection(self, connection: Connection) -> None:
        ConnectionModel(**connection.model_dump(exclude_none=True), expires_at=self._connection_ttl).save()

    def get_connection(self, connection_id: str) -> Connection | None:
        try:
            item = ConnectionModel.get(connection_id, consistent_read=True)
        except DoesNotExist:
            return None
        return Connection(
            connection_id=item.connection_id,
            tenant_id=item.tenant_id,
            visitor_id=item.visitor_id,
            conversation_id=item.conversation_id,
            connected_at=item.connected_at,
            domain_name=item.domain_name,
            stage=item.stage,
        )

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

    def delete_connection(self, connection_id: str) -> None:
        ConnectionModel(connection_id).delete()

    # --- conversations ---
    def put_conversation(self, conversation: Conversation) -> None:
        ConversationModel(**conversation.model_dump(), expires_at=self._conversation_ttl).save()

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        try:
            item = ConversationModel.get(conversation_id)
        except DoesNotExist:
            return None
        return Conversation(
            conversation_id=item.conversation_id,
            tenant_id=item.tenant_id,
            visitor_id=item.visitor_id,
            status=item.status,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )

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
            created_at=message.created_at,
            expires_at=self._conversation_ttl,
        )

    def add_visitor_message(self, message: StoredMessage, visitor_id: str) -> StoredMessage:
        if message.client_message_id is None:
            raise ValueError("a visitor message needs its client message id")
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
        try:
            record = MessageModel.get(_client_key(tenant_id, visitor_id, client_message_id), "#", consistent_read=True)
        except DoesNotExist:
            return None
        if record.target_conversation_id is None or record.target_message_id is None:
            return None
        return self.get_message(record.target_conversation_id, record.target_message_id)

    def get_message(self, conversation_id: str, message_id: str) -> StoredMessage | None:
        try:
            item = MessageModel.get(conversation_id, message_id, consistent_read=True)
        except DoesNotExist:
            return None
        return _to_record(item)

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
        items = MessageModel.query(conversation_id, scan_index_forward=False, limit=limit, consistent_read=True)
        return [_to_record(item) for item in items][::-1]

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
    )
