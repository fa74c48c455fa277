"""Declarative description of the emulated API: routes, functions and SQS event source mappings.

Nothing here is specific to one application: the runner builds an ``ApiConfig`` (in code or from
JSON) and hands it to ``Emulator``.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from local.emulator.routing import CONNECT, DISCONNECT, RESERVED_ROUTES, RouteSelectionExpression

# API Gateway quotas (WebSocket APIs).
MAX_PAYLOAD_BYTES = 128 * 1024
FRAME_SIZE_BYTES = 32 * 1024
IDLE_TIMEOUT_SECONDS = 600.0
MAX_CONNECTION_SECONDS = 7200.0
INTEGRATION_TIMEOUT_SECONDS = 29.0


class FunctionConfig(BaseModel):
    """One Lambda function run in-process: ``handler`` is ``"package.module:attribute"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handler: str = Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")
    timeout_seconds: float = Field(default=30.0, gt=0, le=900)
    memory_mb: int = Field(default=128, ge=128, le=10240)


class EventSourceMapping(BaseModel):
    """SQS queue -> function, polled the way Lambda's event source mapping does.

    ``payload="s3"``: the queue receives a bucket's event notifications (S3, or moto's S3, sends them
    there), and each message's S3 event goes to the function as S3 itself invokes a Lambda function
    (asynchronously, one event per invocation, retried while it fails: here the message returns after
    the visibility timeout and the queue's RedrivePolicy bounds the retries). moto's S3 can deliver
    notifications only to its own queues, so this is how the emulation gets an S3 event source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_url: str = Field(min_length=1)
    function: str = Field(min_length=1)
    payload: Literal["sqs", "s3"] = "sqs"
    batch_size: int = Field(default=10, ge=1, le=10)
    # Batches (FIFO: message groups) processed at the same time.
    max_concurrency: int = Field(default=8, ge=1, le=100)
    # ``FunctionResponseTypes: [ReportBatchItemFailures]``: honour ``batchItemFailures`` in the result.
    report_batch_item_failures: bool = True
    # Long-poll wait of each ReceiveMessage; also bounds how long stop() waits for the poller.
    wait_time_seconds: int = Field(default=1, ge=0, le=20)
    enabled: bool = True


HTTP_METHODS = frozenset({"ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class ApiConfig(BaseModel):
    """An API Gateway WebSocket API plus the Lambda functions and SQS mappings behind it."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field(default="local", pattern=r"^[A-Za-z0-9_-]+$")
    api_id: str = Field(default="emulator01", pattern=r"^[a-z0-9]+$")
    region: str = "us-east-1"
    account_id: str = Field(default="000000000000", pattern=r"^\d{12}$")
    route_selection_expression: str = "$request.body.action"
    # Route key -> function name.
    routes: dict[str, str] = Field(default_factory=dict)
    # Route keys that have a route response: the handler's returned ``body`` is sent to the client.
    route_responses: frozenset[str] = frozenset()
    # Function name -> FunctionConfig (or just the handler path).
    functions: dict[str, FunctionConfig] = Field(default_factory=dict)
    event_source_mappings: list[EventSourceMapping] = Field(default_factory=list)
    # SQS endpoint the mappings poll (None: the public endpoint of ``region``).
    sqs_endpoint: str | None = None
    # An HTTP API beside the WebSocket API, on the emulator's HTTP port: route key ("ANY /channels/{id}",
    # "POST /x") -> function, invoked with payload format 2.0 events.
    http_routes: dict[str, str] = Field(default_factory=dict)

    integration_timeout_seconds: float = Field(default=INTEGRATION_TIMEOUT_SECONDS, ge=0.05, le=29)
    idle_timeout_seconds: float = Field(default=IDLE_TIMEOUT_SECONDS, gt=0)
    max_connection_seconds: float = Field(default=MAX_CONNECTION_SECONDS, gt=0)
    max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, gt=0)

    @field_validator("functions", mode="before")
    @classmethod
    def _handler_paths_as_functions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: {"handler": spec} if isinstance(spec, str) else spec for name, spec in value.items()}
        return value

    @field_validator("routes")
    @classmethod
    def _valid_route_keys(cls, routes: dict[str, str]) -> dict[str, str]:
        for key in routes:
            if not key or (key.startswith("$") and key not in RESERVED_ROUTES):
                raise ValueError(
                    f"route key {key!r}: custom route keys must be non-empty and must not start with '$' "
                    f"(reserved: {', '.join(sorted(RESERVED_ROUTES))})"
                )
        return routes

    @field_validator("route_selection_expression")
    @classmethod
    def _valid_expression(cls, expression: str) -> str:
        RouteSelectionExpression(expression)
        return expression

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        for key, function in self.routes.items():
            if function not in self.functions:
                raise ValueError(f"route {key!r} uses unknown function {function!r}")
        for key in self.route_responses:
            if key not in self.routes:
                raise ValueError(f"route response for {key!r}, which is not a route")
            if key in (CONNECT, DISCONNECT):
                raise ValueError(f"route {key!r} cannot have a route response in this emulator")
        for key, function in self.http_routes.items():
            method, _, path = key.partition(" ")
            if method not in HTTP_METHODS or not path.startswith("/"):
                raise ValueError(f"HTTP route {key!r}: expected '<METHOD|ANY> /path'")
            if function not in self.functions:
                raise ValueError(f"HTTP route {key!r} uses unknown function {function!r}")
        for mapping in self.event_source_mappings:
            if mapping.function not in self.functions:
                raise ValueError(
                    f"event source mapping for {mapping.queue_url!r} uses unknown function {mapping.function!r}"
                )
        return self
