"""Builders of AWS-shaped Lambda events: API Gateway WebSocket CONNECT/MESSAGE/DISCONNECT and SQS.

Pure functions (no I/O): the emulator and the tests (``tests/events.py``) build events with them,
and Powertools' parser models are the conformance oracle for their shape.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from local.emulator.routing import CONNECT, DISCONNECT

# Hop-by-hop handshake headers that [I] API Gateway does not forward to the $connect integration.
_DROPPED_CONNECT_HEADERS = frozenset({"connection", "upgrade"})

# [I] Close-code descriptions used when the close frame carries no reason. 1005's wording is AWS's.
CLOSE_REASONS: Mapping[int, str] = {
    1000: "Normal closure",
    1001: "Going away",
    1003: "Unsupported data",
    1005: "Client-side close frame status not set",
    1006: "Connection closed abnormally",
    1009: "Message too big",
    1011: "Internal error",
}


def new_connection_id() -> str:
    """A 16-character base64-like ID ending in ``=``, like API Gateway's (``BFHPhfCWIAMCKlQ=``).

    The trailing ``=`` must be URL-encoded in @connections URLs, so encoding bugs show up locally.
    """
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def new_request_id() -> str:
    """Same shape as connection IDs; API Gateway's requestId/extendedRequestId/messageId look alike."""
    return new_connection_id()


def epoch_ms(now: float | None = None) -> int:
    return int((time.time() if now is None else now) * 1000)


def clf_time(epoch_millis: int) -> str:
    """Common Log Format time, e.g. ``11/Nov/2024:11:35:24 +0000``."""
    return datetime.fromtimestamp(epoch_millis / 1000, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def iso8601(epoch_millis: int) -> str:
    """ISO 8601 with milliseconds, as the @connections API returns timestamps."""
    moment = datetime.fromtimestamp(epoch_millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def trace_id(now: float | None = None) -> str:
    return f"Root=1-{int(time.time() if now is None else now):08x}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class ConnectionInfo:
    """What every event of one connection shares."""

    connection_id: str
    connected_at: int  # epoch ms, constant for the connection
    source_ip: str
    api_id: str
    stage: str
    domain_name: str


def _request_context(
    connection: ConnectionInfo, *, route_key: str, event_type: str, request_id: str, now_ms: int
) -> dict[str, Any]:
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": clf_time(now_ms),
        "messageDirection": "IN",
        "stage": connection.stage,
        "connectedAt": connection.connected_at,
        "requestTimeEpoch": now_ms,
        "identity": {"sourceIp": connection.source_ip},
        "requestId": request_id,
        "domainName": connection.domain_name,
        "connectionId": connection.connection_id,
        "apiId": connection.api_id,
    }


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    # [I] Like REST proxy events: the single-value map keeps the last value of a repeated name.
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def connect_event(
    connection: ConnectionInfo,
    *,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]] = (),
    forwarded_port: int | None = None,
    request_id: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The ``$connect`` event for a handshake with these (raw, ordered) headers and query pairs."""
    now_ms = epoch_ms() if now_ms is None else now_ms
    request_id = request_id or new_request_id()
    forwarded: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _DROPPED_CONNECT_HEADERS or lowered.startswith("x-forwarded-"):
            if lowered == "x-forwarded-for":
                forwarded.append((name, value))
            continue
        kept.append((name, value))
    # API Gateway appends the caller's address to any X-Forwarded-For the client sent.
    chain = [value for _, value in forwarded] + [connection.source_ip]
    kept += [
        ("X-Amzn-Trace-Id", trace_id(now_ms / 1000)),
        ("X-Forwarded-For", ", ".join(chain)),
        ("X-Forwarded-Port", str(forwarded_port or _port_of(connection.domain_name))),
        ("X-Forwarded-Proto", "http"),
    ]
    single_headers, multi_headers = _single_and_multi(kept)
    event: dict[str, Any] = {"headers": single_headers, "multiValueHeaders": multi_headers}
    if query:
        # Absent, not empty, when the URL has no query string [I].
        single_query, multi_query = _single_and_multi(query)
        event["queryStringParameters"] = single_query
        event["multiValueQueryStringParameters"] = multi_query
    event["requestContext"] = _request_context(
        connection, route_key=CONNECT, event_type="CONNECT", request_id=request_id, now_ms=now_ms
    )
    event["isBase64Encoded"] = False
    return event


def _port_of(domain_name: str) -> int:
    return urlsplit(f"//{domain_name}").port or 443


def message_event(
    connection: ConnectionInfo,
    *,
    route_key: str,
    body: str,
    request_id: str | None = None,
    message_id: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """A MESSAGE event: no headers, no query string, a ``messageId``, the body as text."""
    now_ms = epoch_ms() if now_ms is None else now_ms
    context = _request_context(
        connection,
        route_key=route_key,
        event_type="MESSAGE",
        request_id=request_id or new_request_id(),
        now_ms=now_ms,
    )
    context = {"routeKey": route_key, "messageId": message_id or new_request_id(), **context}
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(
    connection: ConnectionInfo,
    *,
    status_code: int,
    reason: str = "",
    request_id: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The ``$disconnect`` event; headers are the fixed set API Gateway sends."""
    now_ms = epoch_ms() if now_ms is None else now_ms
    headers = [("Host", connection.domain_name), ("x-api-key", ""), ("X-Forwarded-For", ""), ("x-restapi", "")]
    single_headers, multi_headers = _single_and_multi(headers)
    context = _request_context(
        connection,
        route_key=DISCONNECT,
        event_type="DISCONNECT",
        request_id=request_id or new_request_id(),
        now_ms=now_ms,
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason or CLOSE_REASONS.get(status_code, "")
    return {
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }


# --- SQS ---


def queue_arn(queue_url: str, *, region: str, account_id: str) -> str:
    """``arn:aws:sqs:{region}:{account}:{name}`` from a queue URL ``.../{account}/{name}``."""
    parts = [part for part in urlsplit(queue_url).path.split("/") if part]
    if not parts:
        raise ValueError(f"queue URL {queue_url!r} has no queue name")
    account = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else account_id
    return f"arn:aws:sqs:{region}:{account}:{parts[-1]}"


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # ReceiveMessage returns raw bytes for binary values; Lambda events carry them base64-encoded.
    attribute: dict[str, Any] = {}
    if value.get("StringValue") is not None:
        attribute["stringValue"] = value["StringValue"]
    if value.get("BinaryValue") is not None:
        attribute["binaryValue"] = _b64(value["BinaryValue"])
    attribute["stringListValues"] = list(value.get("StringListValues") or [])
    attribute["binaryListValues"] = [_b64(item) for item in value.get("BinaryListValues") or []]
    attribute["dataType"] = value["DataType"]
    return attribute


def _b64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def sqs_record(message: Mapping[str, Any], *, event_source_arn: str, region: str) -> dict[str, Any]:
    """One Lambda SQS record from one ReceiveMessage message (boto3's shape)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": event_source_arn, "awsRegion": region})
    return record


def sqs_event(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Records": [dict(record) for record in records]}


# --- S3 event notifications (S3 -> Lambda, asynchronous) ---

_S3_PRINCIPAL = "AWS:AIDAEMULATOR0000000"


def s3_record(record: Mapping[str, Any], *, region: str) -> dict[str, Any]:
    """One record of an S3 event notification as Lambda receives it (AWS's documented shape, version
    2.1), from a record that may lack what S3 adds (moto's notifications carry only the bucket, the
    object and the event): ``userIdentity``, ``requestParameters``, ``responseElements``, the bucket's
    ``ownerIdentity`` and the object's ``sequencer`` are filled in where missing."""
    s3 = dict(record.get("s3") or {})
    bucket = {"ownerIdentity": {"principalId": "A0EMULATOR0OWNER"}, **dict(s3.get("bucket") or {})}
    bucket.setdefault("arn", f"arn:aws:s3:::{bucket.get('name', '')}")
    obj = {**dict(s3.get("object") or {})}
    obj.setdefault("sequencer", f"{time.time_ns():X}")
    return {
        "eventVersion": record.get("eventVersion", "2.1"),
        "eventSource": "aws:s3",
        "awsRegion": record.get("awsRegion") or region,
        "eventTime": record.get("eventTime") or iso8601(epoch_ms()),
        "eventName": record.get("eventName", "ObjectCreated:Put"),
        "userIdentity": record.get("userIdentity") or {"principalId": _S3_PRINCIPAL},
        "requestParameters": record.get("requestParameters") or {"sourceIPAddress": "127.0.0.1"},
        "responseElements": record.get("responseElements")
        or {
            "x-amz-request-id": secrets.token_hex(8).upper(),
            "x-amz-id-2": base64.b64encode(secrets.token_bytes(48)).decode(),
        },
        "s3": {
            "s3SchemaVersion": s3.get("s3SchemaVersion", "1.0"),
            "configurationId": s3.get("configurationId") or "emulator",
            "bucket": bucket,
            "object": obj,
        },
    }


def s3_event(records: Iterable[Mapping[str, Any]], *, region: str) -> dict[str, Any]:
    return {"Records": [s3_record(record, region=region) for record in records]}


def http_api_event(
    *,
    method: str,
    route_key: str,
    raw_path: str,
    path_parameters: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    domain_name: str = "127.0.0.1",
    api_id: str = "httpapi01",
    now_ms: int | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) event, as AWS documents it: lower-case header names, repeated
    query values joined by commas, a body that is not UTF-8 text base64-encoded."""
    now_ms = epoch_ms() if now_ms is None else now_ms
    query_pairs = list(query)
    joined: dict[str, list[str]] = {}
    for name, value in query_pairs:
        joined.setdefault(name, []).append(value)
    header_map: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        header_map[key] = f"{header_map[key]},{value}" if key in header_map else value
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = _b64(body), True
    request_id = new_request_id()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "&".join(f"{quote(k)}={quote(v)}" for k, v in query_pairs),
        "headers": header_map,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": api_id,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": header_map.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": clf_time(now_ms),
            "timeEpoch": now_ms,
        },
        "pathParameters": dict(path_parameters),
        "isBase64Encoded": encoded,
    }
    if joined:
        event["queryStringParameters"] = {name: ",".join(values) for name, values in joined.items()}
    if body:
        event["body"] = text
    return event
