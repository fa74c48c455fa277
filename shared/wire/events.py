"""The API Gateway WebSocket events the connect and message functions receive, as Powertools parser
models extended with what kefu reads (the raw dicts are never read field by field)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    SqsRecordModel,
)
from pydantic import Field, Json, TypeAdapter, field_validator

from shared.wire.jobs import QueueJob


class ConnectEvent(APIGatewayWebSocketConnectEventModel):
    """$connect, with the query string (widget key, role, visitor id…) the base model leaves out."""

    query_string_parameters: dict[str, str] = Field(default_factory=dict, alias="queryStringParameters")
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("query_string_parameters", "headers", mode="before")
    @classmethod
    def _strings_only(cls, value: object) -> dict[str, str]:
        # API Gateway sends null for "none"; only string values are ever read.
        return {str(k): v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}

    def header(self, name: str) -> str | None:
        """A request header by its case-insensitive name."""
        return next((v for k, v in self.headers.items() if k.lower() == name), None)

    @property
    def source_ip(self) -> str | None:
        return str(self.request_context.identity.source_ip.network_address)


DisconnectEvent = APIGatewayWebSocketDisconnectEventModel
class MessageEvent(APIGatewayWebSocketMessageEventModel):
    """A frame from a client (sendMessage / $default routes): its body is the raw text."""

    body: str | None = None
_DOOR: TypeAdapter[ConnectEvent | DisconnectEvent] = TypeAdapter(ConnectEvent | DisconnectEvent)


def door_event(event: dict[str, Any]) -> ConnectEvent | DisconnectEvent:
    """What the connect function receives: a $connect or a $disconnect (told by its eventType)."""
    return _DOOR.validate_python(event)


class GenerateJobRecord(SqsRecordModel):
    """One record of the generate queue: its body is a job (JSON), told apart by its fields."""

    body: Json[QueueJob]


def generate_batch() -> SqsFifoPartialProcessor:
    """The generate function's batch processor, one per invocation. FIFO: a failed record fails the
    rest of the batch too, so a conversation's order is kept. A processor holds its batch's records and
    failures, so one shared by invocations running at once (threads of one process, as the local
    emulator runs them) would process another invocation's records and report another's failures, and
    a job could be deleted from the queue unanswered."""
    return SqsFifoPartialProcessor(model=GenerateJobRecord)
