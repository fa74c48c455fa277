"""THE place tests get Lambda events and contexts from.

Thin wrappers with test-friendly defaults over the emulator's own builders
(``local.emulator.events``), so unit tests feed handlers exactly what the emulator (and, as far as the
Powertools parser models can tell, AWS) sends.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import uuid
from collections.abc import Mapping, Sequence
from itertools import count
from typing import Any

from local.emulator import events as builders
from local.emulator.context import LambdaContext, make_context
from local.emulator.events import ConnectionInfo

DEFAULT_STAGE = "local"
DEFAULT_API_ID = "emulator01"
DEFAULT_DOMAIN = "127.0.0.1:8081"
DEFAULT_REGION = "us-east-1"
DEFAULT_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/kefu-generate.fifo"

Pairs = Mapping[str, str] | Sequence[tuple[str, str]]

_sequence_numbers = count(18849496460467696128)


def _pairs(values: Pairs | None) -> list[tuple[str, str]]:
    if values is None:
        return []
    return list(values.items()) if isinstance(values, Mapping) else list(values)


def connection(
    connection_id: str | None = None,
    *,
    stage: str = DEFAULT_STAGE,
    api_id: str = DEFAULT_API_ID,
    domain_name: str = DEFAULT_DOMAIN,
    source_ip: str = "127.0.0.1",
    connected_at: int | None = None,
) -> ConnectionInfo:
    """What all events of one connection share; pass it to several builders to keep them consistent."""
    return ConnectionInfo(
        connection_id=connection_id or builders.new_connection_id(),
        connected_at=builders.epoch_ms() if connected_at is None else connected_at,
        source_ip=source_ip,
        api_id=api_id,
        stage=stage,
        domain_name=domain_name,
    )


def connect_event(
    query: Pairs | None = None,
    *,
    headers: Pairs | None = None,
    conn: ConnectionInfo | None = None,
) -> dict[str, Any]:
    """A ``$connect`` event; ``query`` becomes the query string (absent when None or empty)."""
    conn = conn or connection()
    base_headers = [
        ("Host", conn.domain_name),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("Sec-WebSocket-Key", "+W5xw47OHh3OTFsWKjGu9Q=="),
        ("Sec-WebSocket-Version", "13"),
        ("User-Agent", "pytest"),
    ]
    return builders.connect_event(conn, headers=base_headers + _pairs(headers), query=_pairs(query))


def message_event(
    body: str | Mapping[str, Any],
    *,
    route_key: str | None = None,
    conn: ConnectionInfo | None = None,
) -> dict[str, Any]:
    """A MESSAGE event; a mapping body is JSON-encoded. ``route_key`` defaults to the body's
    ``action`` (``$request.body.action``) or ``$default``."""
    text = body if isinstance(body, str) else json.dumps(body)
    if route_key is None:
        action = body.get("action") if isinstance(body, Mapping) else None
        route_key = action if isinstance(action, str) and action else "$default"
    return builders.message_event(conn or connection(), route_key=route_key, body=text)


def disconnect_event(
    *, status_code: int = 1001, reason: str = "", conn: ConnectionInfo | None = None
) -> dict[str, Any]:
    return builders.disconnect_event(conn or connection(), status_code=status_code, reason=reason)


def md5_of_message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """SQS's digest of message attributes (length-prefixed name, type, transport byte, value)."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        value = attributes[name]
        data_type: str = value["DataType"]
        for text in (name, data_type):
            encoded = text.encode()
            digest.update(struct.pack(">I", len(encoded)) + encoded)
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            digest.update(b"\x02" + struct.pack(">I", len(raw)) + raw)
        else:
            encoded = str(value["StringValue"]).encode()
            digest.update(b"\x01" + struct.pack(">I", len(encoded)) + encoded)
    return digest.hexdigest()


def sqs_message(
    body: str | Mapping[str, Any],
    *,
    message_id: str | None = None,
    group_id: str | None = None,
    deduplication_id: str | None = None,
    receive_count: int = 1,
    attributes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One message as boto3's ReceiveMessage returns it (``group_id`` makes it a FIFO message)."""
    text = body if isinstance(body, str) else json.dumps(body)
    now = str(builders.epoch_ms())
    system: dict[str, str] = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": now,
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": now,
    }
    if group_id is not None:
        system["SequenceNumber"] = str(next(_sequence_numbers))
        system["MessageGroupId"] = group_id
        system["MessageDeduplicationId"] = deduplication_id or hashlib.sha256(text.encode()).hexdigest()
    message: dict[str, Any] = {
        "MessageId": message_id or str(uuid.uuid4()),
        "ReceiptHandle": secrets.token_urlsafe(48),
        "MD5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "Body": text,
        "Attributes": system,
    }
    if attributes:
        message_attributes = {name: {"StringValue": value, "DataType": "String"} for name, value in attributes.items()}
        message["MessageAttributes"] = message_attributes
        message["MD5OfMessageAttributes"] = md5_of_message_attributes(message_attributes)
    return message


def sqs_event(
    *messages: str | Mapping[str, Any],
    queue_url: str = DEFAULT_QUEUE_URL,
    region: str = DEFAULT_REGION,
    group_id: str | None = "conversation-1",
) -> dict[str, Any]:
    """An SQS event; each item is a body (str, or a mapping that is JSON-encoded unless it is
    already a ``sqs_message(...)``). Bodies share ``group_id`` (None: a standard queue)."""
    if group_id is None and queue_url.endswith(".fifo"):
        queue_url = queue_url.removesuffix(".fifo")
    arn = builders.queue_arn(queue_url, region=region, account_id="000000000000")
    received = [
        dict(item) if isinstance(item, Mapping) and "ReceiptHandle" in item else sqs_message(item, group_id=group_id)
        for item in messages
    ]
    return builders.sqs_event(builders.sqs_record(m, event_source_arn=arn, region=region) for m in received)


def lambda_context(
    function_name: str = "kefu-test",
    *,
    timeout_seconds: float = 30.0,
    memory_mb: int = 128,
    region: str = DEFAULT_REGION,
) -> LambdaContext:
    """A realistic context (remaining time counts down from now)."""
    return make_context(
        function_name,
        region=region,
        memory_mb=memory_mb,
        timeout_seconds=timeout_seconds,
        request_id=str(uuid.UUID(int=secrets.randbits(128), version=4)),
    )


__all__ = [
    "connect_event",
    "connection",
    "disconnect_event",
    "lambda_context",
    "md5_of_message_attributes",
    "message_event",
    "sqs_event",
    "s3_object_created",
    "sqs_message",
]


def http_api_event(
    method: str, path: str, *, headers: Mapping[str, str] | None = None, body: Any = None
) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) request, as the admin function receives it; a non-str body is
    JSON-encoded."""
    text = body if body is None or isinstance(body, str) else json.dumps(body)
    now = builders.epoch_ms()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "admin.example.com", **(headers or {})},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "adminapi01",
            "domainName": "admin.example.com",
            "domainPrefix": "admin",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": builders.new_request_id(),
            "routeKey": "$default",
            "stage": "$default",
            "time": builders.clf_time(now),
            "timeEpoch": now,
        },
        "body": text,
        "isBase64Encoded": False,
    }


def s3_object_created(
    key: str, *, bucket: str = "kefu-uploads-test", size: int = 1, region: str = DEFAULT_REGION
) -> dict[str, Any]:
    """The uploads bucket's ObjectCreated:Post event for one object (``key`` as S3 sends it: URL-encoded)."""
    record = {
        "eventName": "ObjectCreated:Post",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": "0" * 32}},
    }
    return builders.s3_event([record], region=region)


def channel_request_event(
    channel_id: str,
    *,
    method: str = "POST",
    query: Pairs | None = None,
    headers: Pairs | None = None,
    body: bytes | str = b"",
) -> dict[str, Any]:
    """A platform's request to the channels function (``ANY /channels/{channelId}``, HTTP API 2.0)."""
    return builders.http_api_event(
        method=method,
        route_key="ANY /channels/{channelId}",
        raw_path=f"/channels/{channel_id}",
        path_parameters={"channelId": channel_id},
        query=_pairs(query),
        headers=_pairs(headers),
        body=body.encode() if isinstance(body, str) else body,
    )
