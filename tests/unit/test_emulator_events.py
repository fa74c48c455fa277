"""Event builders against Powertools' parser models (the conformance oracle) and AWS's field rules."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent, SQSEvent
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    SqsModel,
)

from local.emulator import events as builders
from tests import events

CLF = re.compile(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")


def test_ids_look_like_api_gateway_ids() -> None:
    ids = {builders.new_connection_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{15}=", value)


def test_time_formats() -> None:
    millis = int(datetime(2024, 11, 11, 11, 35, 24, 561000, tzinfo=UTC).timestamp() * 1000)
    assert builders.clf_time(millis) == "11/Nov/2024:11:35:24 +0000"
    assert builders.iso8601(millis) == "2024-11-11T11:35:24.561Z"


def test_connect_event_passes_the_parser_and_keeps_repeated_values() -> None:
    conn = events.connection()
    event = events.connect_event([("tenant", "t1"), ("tag", "a"), ("tag", "b")], conn=conn)
    model = APIGatewayWebSocketConnectEventModel.model_validate(event)
    assert model.request_context.connection_id == conn.connection_id
    assert event["queryStringParameters"] == {"tenant": "t1", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"tenant": ["t1"], "tag": ["a", "b"]}
    context = event["requestContext"]
    assert context["requestId"] == context["extendedRequestId"]
    assert CLF.match(context["requestTime"])
    assert context["connectedAt"] == conn.connected_at
    assert "messageId" not in context
    assert event["isBase64Encoded"] is False


def test_connect_event_headers_are_forwarded_like_api_gateway() -> None:
    conn = events.connection(source_ip="10.0.0.9", domain_name="127.0.0.1:9001")
    raw = [
        ("Host", "127.0.0.1:9001"),
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("Origin", "http://example.com"),
    ]
    event = builders.connect_event(conn, headers=raw)
    headers = event["headers"]
    assert "Connection" not in headers and "Upgrade" not in headers
    assert headers["X-Forwarded-For"] == "203.0.113.7, 10.0.0.9"
    assert headers["X-Forwarded-Port"] == "9001"
    assert headers["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["multiValueHeaders"]["Origin"] == ["http://example.com"]
    assert "queryStringParameters" not in event


def test_message_event_passes_the_parser_and_the_data_class() -> None:
    conn = events.connection()
    event = events.message_event({"action": "sendMessage", "text": "hi"}, conn=conn)
    model = APIGatewayWebSocketMessageEventModel.model_validate(event)
    assert model.request_context.route_key == "sendMessage"
    assert set(event) == {"requestContext", "body", "isBase64Encoded"}
    wrapped = APIGatewayWebSocketEvent(event)
    assert wrapped.request_context.connection_id == conn.connection_id
    assert json.loads(wrapped.body or "")["text"] == "hi"


def test_message_event_route_defaults() -> None:
    assert events.message_event("plain text")["requestContext"]["routeKey"] == "$default"
    assert events.message_event({"text": "x"})["requestContext"]["routeKey"] == "$default"
    assert events.message_event({"action": "x"}, route_key="$default")["requestContext"]["routeKey"] == "$default"


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [(1005, "", "Client-side close frame status not set"), (1001, "", "Going away"), (4000, "bye", "bye")],
)
def test_disconnect_event_passes_the_parser(code: int, reason: str, expected: str) -> None:
    conn = events.connection()
    event = events.disconnect_event(status_code=code, reason=reason, conn=conn)
    model = APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert model.request_context.disconnect_status_code == code
    assert event["requestContext"]["disconnectReason"] == expected
    assert event["headers"] == {"Host": conn.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}


def test_events_of_one_connection_share_connected_at() -> None:
    conn = events.connection()
    stamps = {
        events.connect_event(conn=conn)["requestContext"]["connectedAt"],
        events.message_event("x", conn=conn)["requestContext"]["connectedAt"],
        events.disconnect_event(conn=conn)["requestContext"]["connectedAt"],
    }
    assert stamps == {conn.connected_at}


def test_sqs_event_passes_the_parser_for_fifo_and_standard_queues() -> None:
    fifo = events.sqs_event({"jobId": "1"}, events.sqs_message("raw", group_id="g-2", attributes={"k": "v"}))
    SqsModel.model_validate(fifo)
    first, second = fifo["Records"]
    assert first["attributes"]["MessageGroupId"] == "conversation-1"
    assert second["attributes"]["MessageGroupId"] == "g-2"
    assert int(second["attributes"]["SequenceNumber"]) != int(first["attributes"]["SequenceNumber"])
    assert second["messageAttributes"]["k"] == {
        "stringValue": "v",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert first["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:kefu-generate.fifo"

    standard = events.sqs_event("hello", group_id=None)
    SqsModel.model_validate(standard)
    record = standard["Records"][0]
    assert "MessageGroupId" not in record["attributes"]
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:kefu-generate"
    assert SQSEvent(standard).records
    assert next(iter(SQSEvent(standard).records)).body == "hello"


def test_sqs_record_encodes_binary_attributes_in_base64() -> None:
    message = events.sqs_message("x")
    message["MessageAttributes"] = {
        "blob": {"BinaryValue": b"\x00\xff", "DataType": "Binary"},
        "list": {"StringListValues": ["a"], "BinaryListValues": [b"z"], "DataType": "String"},
    }
    record = builders.sqs_record(message, event_source_arn="arn:aws:sqs:us-east-1:1:q", region="us-east-1")
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AP8="
    assert record["messageAttributes"]["list"]["binaryListValues"] == ["eg=="]
    SqsModel.model_validate({"Records": [record]})


def test_queue_arn_from_url() -> None:
    url = "http://127.0.0.1:5000/123456789012/jobs.fifo"
    assert builders.queue_arn(url, region="eu-west-1", account_id="000000000000") == (
        "arn:aws:sqs:eu-west-1:123456789012:jobs.fifo"
    )
    with pytest.raises(ValueError, match="no queue name"):
        builders.queue_arn("http://127.0.0.1:5000/", region="us-east-1", account_id="000000000000")


def test_lambda_context_is_realistic_and_works_with_powertools_logger() -> None:
    context = events.lambda_context("kefu-generate", timeout_seconds=60, memory_mb=512)
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:000000000000:function:kefu-generate"
    assert context.memory_limit_in_mb == "512"
    assert context.log_group_name == "/aws/lambda/kefu-generate"
    assert "[$LATEST]" in context.log_stream_name
    assert 0 < context.get_remaining_time_in_millis() <= 60_000

    logger = Logger(service="emulator-test")

    @logger.inject_lambda_context
    def handler(event: dict[str, str], ctx: object) -> str:
        return str(logger.get_current_keys()["function_request_id"])

    assert handler({}, context) == context.aws_request_id


def test_an_s3_notification_from_moto_is_completed_to_what_s3_sends_lambda() -> None:
    """moto's notification carries only the event, bucket and object; Lambda gets AWS's whole record."""
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import S3Model

    moto_record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-12-03T18:00:00.000Z",
        "eventName": "ObjectCreated:Post",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "ingest-uploads",
            "bucket": {"name": "kefu-uploads-local", "arn": "arn:aws:s3:::kefu-uploads-local"},
            "object": {"key": "uploads/t_1/up_2/Manual+%E6%89%8B%E5%86%8C.pdf", "size": 7000000, "eTag": "abc"},
        },
    }
    event = builders.s3_event([moto_record], region="us-east-1")
    [record] = parse(event=event, model=S3Model).Records
    assert record.eventName == "ObjectCreated:Post" and record.s3.configurationId == "ingest-uploads"
    assert record.s3.bucket.name == "kefu-uploads-local" and record.s3.bucket.ownerIdentity.principalId
    assert record.s3.object is not None and record.s3.object.key == moto_record["s3"]["object"]["key"]
    assert record.s3.object.size == 7000000 and record.s3.object.sequencer
    assert record.userIdentity.principalId and str(record.requestParameters.sourceIPAddress) == "127.0.0.1/32"
    # What the tests build passes the same model.
    assert parse(event=events.s3_object_created("uploads/a/b/c.md"), model=S3Model).Records[0].s3.object
