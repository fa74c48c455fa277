"""The emulator against real clients: websockets, boto3 (@connections, Lambda), moto's SQS server.

Powertools' parser models are the oracle for event shapes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    SqsModel,
)
from botocore.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.emulator import ApiConfig, Emulator, EventSourceMapping, FunctionConfig
from local.services import MotoServer
from tests.integration import emulator_handlers as handlers
from tests.integration.emulator_handlers import Call, calls

pytestmark = pytest.mark.integration

H = "tests.integration.emulator_handlers"
MAX_PAYLOAD = 128 * 1024
CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}
CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")

extra_app_state: dict[str, bool] = {}


@asynccontextmanager
async def _extra_lifespan(app: Starlette) -> AsyncIterator[None]:
    extra_app_state["started"] = True
    yield


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello from the mounted app")


def _main_config() -> ApiConfig:
    return ApiConfig(
        routes={
            "$connect": "connect",
            "$disconnect": "disconnect",
            "$default": "echo",
            "echo": "echo",
            "silent": "silent",
            "boom": "boom",
            "slow": "slow",
            "ctx": "context",
        },
        route_responses=frozenset({"$default", "echo", "boom", "slow", "ctx"}),
        functions={
            "connect": f"{H}:on_connect",
            "disconnect": f"{H}:on_disconnect",
            "echo": f"{H}:echo",
            "silent": f"{H}:silent",
            "boom": f"{H}:boom",
            "slow": f"{H}:slow",
            "context": FunctionConfig(handler=f"{H}:context_probe", memory_mb=256, timeout_seconds=20),
            "add": f"{H}:add",
            "fail": f"{H}:fail",
            "unserializable": f"{H}:unserializable",
            "missing": "tests.integration.no_such_module:handler",
        },
        integration_timeout_seconds=1.0,
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    extra = Starlette(routes=[Route("/hello", _hello)], lifespan=_extra_lifespan)
    with Emulator(_main_config(), extra_app=extra).run_in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def bare_emulator() -> Iterator[Emulator]:
    """No $connect, no $default; short idle and duration limits."""
    config = ApiConfig(
        stage="prod",
        routes={"echo": "echo", "$disconnect": "disconnect"},
        route_responses=frozenset({"echo"}),
        functions={"echo": f"{H}:echo", "disconnect": f"{H}:on_disconnect"},
        idle_timeout_seconds=0.6,
        max_connection_seconds=2.0,
    )
    with Emulator(config).run_in_thread() as running:
        yield running


def _open(emu: Emulator, query: str = "", **kwargs: Any) -> ClientConnection:
    return connect(f"{emu.ws_url}?{query}" if query else emu.ws_url, open_timeout=10, **kwargs)


def _ask(ws: ClientConnection, message: dict[str, Any] | str) -> dict[str, Any]:
    ws.send(message if isinstance(message, str) else json.dumps(message))
    reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return reply


def _whoami(ws: ClientConnection) -> str:
    return str(_ask(ws, {"action": "echo"})["connectionId"])


def _calls_for(function: str, connection_id: str) -> list[Call]:
    return [
        call
        for call in calls.snapshot()
        if call.function == function and call.event["requestContext"]["connectionId"] == connection_id
    ]


def _wait_call(function: str, connection_id: str) -> Call:
    calls.wait_for(lambda _: bool(_calls_for(function, connection_id)))
    return _calls_for(function, connection_id)[-1]


def _closed_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return int(closed.value.rcvd.code)


def _management(emu: Emulator, endpoint: str | None = None) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint or emu.connections_url,
        config=Config(retries={"max_attempts": 1}),
        **CREDENTIALS,
    )


# --- handshake and events ---


def test_connect_and_message_events_match_aws_shapes(emulator: Emulator) -> None:
    with _open(emulator, "tenant=t1&tag=a&tag=b&empty=") as ws:
        connection_id = _whoami(ws)
        reply = _ask(ws, {"action": "echo", "text": "hi"})

    assert CONNECTION_ID.match(connection_id)
    connect_event = _wait_call("connect", connection_id).event
    APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    assert connect_event["queryStringParameters"] == {"tenant": "t1", "tag": "b", "empty": ""}
    assert connect_event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert connect_event["headers"]["Host"] == emulator.gateway.domain_name
    assert connect_event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert connect_event["multiValueHeaders"]["Sec-WebSocket-Version"] == ["13"]
    context = connect_event["requestContext"]
    assert context["requestId"] == context["extendedRequestId"]
    assert context["domainName"] == f"127.0.0.1:{emulator.ws_port}"
    assert (context["stage"], context["apiId"], context["messageDirection"]) == ("local", "emulator01", "IN")
    assert "messageId" not in context

    assert reply["routeKey"] == "echo"
    message_events = [call.event for call in _calls_for("echo", connection_id)]
    assert len(message_events) == 2
    for event in message_events:
        APIGatewayWebSocketMessageEventModel.model_validate(event)
        assert "headers" not in event and "queryStringParameters" not in event
        assert event["requestContext"]["connectedAt"] == context["connectedAt"]
        assert event["isBase64Encoded"] is False
    assert message_events[0]["requestContext"]["messageId"] != message_events[1]["requestContext"]["messageId"]
    assert json.loads(message_events[1]["body"]) == {"action": "echo", "text": "hi"}


def test_connect_without_query_string_has_no_query_keys(emulator: Emulator) -> None:
    with connect(f"ws://127.0.0.1:{emulator.ws_port}/", open_timeout=10) as ws:  # no stage in the path
        connection_id = _whoami(ws)
    event = _wait_call("connect", connection_id).event
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event


@pytest.mark.parametrize("status", [401, 403])
def test_connect_refusal_status_reaches_the_client(emulator: Emulator, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _open(emulator, f"refuse={status}")
    assert refused.value.response.status_code == status


def test_connect_handler_error_refuses_with_500(emulator: Emulator) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _open(emulator, "crash=1")
    assert refused.value.response.status_code == 500


def test_connect_headers_go_into_the_handshake(emulator: Emulator) -> None:
    with _open(emulator, "protocol=chat.v1", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"


def test_unknown_path_is_refused(emulator: Emulator) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{emulator.ws_port}/otherstage", open_timeout=10)
    assert refused.value.response.status_code == 403


# --- routing and replies ---


def test_unmatched_and_non_json_messages_go_to_default(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        unmatched = _ask(ws, {"action": "nosuchroute"})
        not_json = _ask(ws, "hello there")
        no_action = _ask(ws, {"text": "no action"})
    assert [unmatched["routeKey"], not_json["routeKey"], no_action["routeKey"]] == ["$default"] * 3
    assert not_json["body"] == "hello there"
    event = _calls_for("echo", unmatched["connectionId"])[0].event
    assert event["requestContext"]["routeKey"] == "$default"


def test_route_without_route_response_sends_nothing(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        ws.send(json.dumps({"action": "silent"}))
        _wait_call("silent", connection_id)
        reply = _ask(ws, {"action": "echo", "after": "silent"})
        assert reply["routeKey"] == "echo"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


def test_handler_error_and_timeout_send_internal_server_error(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        error = _ask(ws, {"action": "boom"})
        timeout = _ask(ws, {"action": "slow", "seconds": 1.5})
    boom_event = _wait_call("boom", connection_id).event
    assert error == {
        "message": "Internal server error",
        "connectionId": connection_id,
        "requestId": boom_event["requestContext"]["requestId"],
    }
    assert timeout["message"] == "Internal server error"
    assert timeout["connectionId"] == connection_id


def test_handlers_get_a_realistic_context(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        described = _ask(ws, {"action": "ctx"})
    assert described["functionName"] == "context"
    assert described["functionVersion"] == "$LATEST"
    assert described["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:context"
    assert described["memoryLimitInMb"] == "256"
    assert described["logGroupName"] == "/aws/lambda/context"
    assert uuid.UUID(described["awsRequestId"])
    assert 0 < described["remainingMs"] <= 20_000


# --- limits and disconnects ---


def test_binary_frame_closes_with_1003(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        ws.send(b"\x00\x01\x02\xff")
        assert _closed_code(ws) == 1003
    event = _wait_call("disconnect", connection_id).event
    APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert event["requestContext"]["disconnectStatusCode"] == 1003


def test_payload_limit_is_128_kb_then_1009(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        at_limit = "x" * MAX_PAYLOAD
        assert _ask(ws, at_limit)["body"] == at_limit
        ws.send("x" * (MAX_PAYLOAD + 1))
        assert _closed_code(ws) == 1009
    event = _wait_call("disconnect", connection_id).event
    assert event["requestContext"]["disconnectStatusCode"] == 1009


def test_client_close_runs_disconnect_with_status_and_reason(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        ws.close(code=4000, reason="visitor left")
    event = _wait_call("disconnect", connection_id).event
    APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    context = event["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (4000, "visitor left")
    assert event["headers"]["Host"] == emulator.gateway.domain_name
    connect_context = _wait_call("connect", connection_id).event["requestContext"]
    assert context["connectedAt"] == connect_context["connectedAt"]
    assert context["requestId"] != connect_context["requestId"]


def test_idle_connection_closes_with_1001(bare_emulator: Emulator) -> None:
    with _open(bare_emulator) as ws:  # no $connect route: accepted anyway
        connection_id = _whoami(ws)
        assert _closed_code(ws) == 1001
    event = _wait_call("disconnect", connection_id).event
    APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert event["requestContext"]["disconnectStatusCode"] == 1001
    assert event["requestContext"]["stage"] == "prod"


def test_busy_connection_still_closes_at_max_duration(bare_emulator: Emulator) -> None:
    with _open(bare_emulator) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100):  # ~0.2 s apart: never idle for 0.6 s
                _ask(ws, {"action": "echo"})
                with pytest.raises(TimeoutError):
                    ws.recv(timeout=0.2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_no_route_and_no_default_answers_forbidden(bare_emulator: Emulator) -> None:
    with _open(bare_emulator) as ws:
        connection_id = _whoami(ws)
        unmatched = _ask(ws, {"action": "nosuchroute"})
        not_json = _ask(ws, "plain text")
    for frame in (unmatched, not_json):
        assert frame["message"] == "Forbidden"
        assert frame["connectionId"] == connection_id
        assert frame["requestId"]


# --- @connections via boto3 ---


def test_connections_api_post_get_delete(emulator: Emulator) -> None:
    client = _management(emulator)
    with _open(emulator, user_agent_header="kefu-test-agent") as ws:
        connection_id = _whoami(ws)
        data = json.dumps({"type": "ack", "text": "多语言 ✓"}).encode()
        client.post_to_connection(ConnectionId=connection_id, Data=data)
        assert ws.recv(timeout=10) == data.decode()

        described = client.get_connection(ConnectionId=connection_id)
        assert described["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "kefu-test-agent"}
        assert described["LastActiveAt"] >= described["ConnectedAt"]
        connect_context = _wait_call("connect", connection_id).event["requestContext"]
        assert int(described["ConnectedAt"].timestamp() * 1000) == connect_context["connectedAt"]

        response = client.delete_connection(ConnectionId=connection_id)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert _closed_code(ws) == 1000

    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=connection_id)


def test_connections_api_payload_limit(emulator: Emulator) -> None:
    client = _management(emulator)
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        client.post_to_connection(ConnectionId=connection_id, Data=b"y" * MAX_PAYLOAD)
        assert len(ws.recv(timeout=10)) == MAX_PAYLOAD
        with pytest.raises(client.exceptions.PayloadTooLargeException):
            client.post_to_connection(ConnectionId=connection_id, Data=b"y" * (MAX_PAYLOAD + 1))


def test_connections_api_paths_and_id_encoding(emulator: Emulator) -> None:
    with _open(emulator) as ws:
        connection_id = _whoami(ws)
        _management(emulator, endpoint=emulator.http_url).post_to_connection(
            ConnectionId=connection_id, Data=b"no stage prefix"
        )
        assert ws.recv(timeout=10) == "no stage prefix"
        encoded = connection_id.replace("=", "%3D")
        response = httpx.post(f"{emulator.http_url}/local/%40connections/{encoded}", content=b"raw encoded")
        assert response.status_code == 200
        assert ws.recv(timeout=10) == "raw encoded"
        wrong_stage = _management(emulator, endpoint=f"{emulator.http_url}/prod")
        with pytest.raises(wrong_stage.exceptions.ForbiddenException):
            wrong_stage.post_to_connection(ConnectionId=connection_id, Data=b"x")


# --- Lambda Invoke via boto3 ---


def _lambda(emu: Emulator) -> Any:
    return boto3.client("lambda", endpoint_url=emu.http_url, config=Config(retries={"max_attempts": 1}), **CREDENTIALS)


def test_lambda_invoke_returns_the_result(emulator: Emulator) -> None:
    response = _lambda(emulator).invoke(FunctionName="add", Payload=json.dumps({"a": 2, "b": 3}))
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert json.loads(response["Payload"].read()) == {"sum": 5}


def test_lambda_invoke_by_arn(emulator: Emulator) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:add"
    response = _lambda(emulator).invoke(FunctionName=arn, Payload=json.dumps({"a": 1, "b": 1}))
    assert json.loads(response["Payload"].read()) == {"sum": 2}


def test_lambda_invoke_function_error_is_unhandled(emulator: Emulator) -> None:
    client = _lambda(emulator)
    response = client.invoke(FunctionName="fail", Payload=json.dumps({"x": 1}))
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "cannot handle {'x': 1}"
    assert isinstance(error["stackTrace"], list)

    marshal = json.loads(client.invoke(FunctionName="unserializable", Payload=b"{}")["Payload"].read())
    assert marshal["errorType"] == "Runtime.MarshalError"
    missing = json.loads(client.invoke(FunctionName="missing", Payload=b"{}")["Payload"].read())
    assert missing["errorType"] == "Runtime.ImportModuleError"


def test_lambda_invoke_unknown_function_and_bad_payload(emulator: Emulator) -> None:
    client = _lambda(emulator)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="add", Payload=b"{not json")


def test_lambda_invoke_async_event_runs_later(emulator: Emulator) -> None:
    marker = uuid.uuid4().hex
    response = _lambda(emulator).invoke(
        FunctionName="add", InvocationType="Event", Payload=json.dumps({"a": 1, "b": 2, "marker": marker})
    )
    assert response["StatusCode"] == 202
    calls.wait_for(lambda seen: any(c.function == "add" and c.event.get("marker") == marker for c in seen))


def test_lambda_invoke_passes_tenant_id_to_the_context(emulator: Emulator) -> None:
    response = _lambda(emulator).invoke(FunctionName="context", Payload=b"{}", TenantId="tenant-7")
    described = json.loads(json.loads(response["Payload"].read())["body"])
    assert described["tenantId"] == "tenant-7"
    assert described["memoryLimitInMb"] == "256"


# --- HTTP extras ---


def test_chat_page_and_mounted_app(emulator: Emulator) -> None:
    page = httpx.get(f"{emulator.http_url}/chat")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "sendMessage" in page.text
    mounted = httpx.get(f"{emulator.http_url}/hello")
    assert mounted.text == "hello from the mounted app"
    assert extra_app_state.get("started") is True


# --- SQS event source mapping (moto server) ---


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: MotoServer) -> str:
    """The session's moto server (ThreadedMotoServer, see conftest.py)."""
    return moto_server.url


@pytest.fixture(scope="module")
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_endpoint, **CREDENTIALS)


@pytest.fixture(scope="module")
def queues(sqs: Any, moto_endpoint: str) -> Iterator[dict[str, str]]:
    """Queues, the emulator polling them, and three messages already waiting on ``partial``."""
    suffix = uuid.uuid4().hex[:8]
    fast_retry = {"VisibilityTimeout": "1"}
    urls = {
        "fifo": sqs.create_queue(
            QueueName=f"orders-{suffix}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "5"},
        )["QueueUrl"],
        "retry": sqs.create_queue(QueueName=f"retry-{suffix}", Attributes=fast_retry)["QueueUrl"],
        "dlq": sqs.create_queue(QueueName=f"dead-{suffix}")["QueueUrl"],
        "partial": sqs.create_queue(QueueName=f"partial-{suffix}", Attributes=fast_retry)["QueueUrl"],
    }
    dlq_arn = sqs.get_queue_attributes(QueueUrl=urls["dlq"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    urls["source"] = sqs.create_queue(
        QueueName=f"source-{suffix}", Attributes={**fast_retry, "RedrivePolicy": redrive}
    )["QueueUrl"]
    urls["partial_ids"] = ",".join(f"partial-{suffix}-{index}" for index in range(3))
    for index, message_id in enumerate(urls["partial_ids"].split(",")):
        body = {"id": message_id, "mode": "partial-once" if index == 1 else "ok"}
        sqs.send_message(
            QueueUrl=urls["partial"],
            MessageBody=json.dumps(body),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )

    def mapping(queue: str, batch_size: int = 1) -> EventSourceMapping:
        return EventSourceMapping(queue_url=urls[queue], function="consume", batch_size=batch_size)

    config = ApiConfig(
        functions={"consume": FunctionConfig(handler=f"{H}:consume", timeout_seconds=10)},
        event_source_mappings=[mapping("fifo"), mapping("retry"), mapping("source"), mapping("partial", 10)],
        sqs_endpoint=moto_endpoint,
    )
    with Emulator(config).run_in_thread():
        yield urls


def _processed(prefix: str) -> list[dict[str, Any]]:
    return [c.event for c in calls.snapshot() if c.function == "processed" and c.event["id"].startswith(prefix)]


def _consume_events_for(prefix: str) -> list[dict[str, Any]]:
    return [
        c.event
        for c in calls.snapshot()
        if c.function == "consume" and any(json.loads(r["body"])["id"].startswith(prefix) for r in c.event["Records"])
    ]


def test_sqs_fifo_keeps_order_per_group_and_runs_groups_in_parallel(sqs: Any, queues: dict[str, str]) -> None:
    prefix = uuid.uuid4().hex[:8]
    groups = [f"{prefix}-A", f"{prefix}-B"]
    for index in range(4):
        for group in groups:
            body = {"id": f"{prefix}-{group}-{index}", "mode": "slow", "seconds": 0.2}
            sqs.send_message(
                QueueUrl=queues["fifo"],
                MessageBody=json.dumps(body),
                MessageGroupId=group,
                # Explicit: moto assigns a SequenceNumber only with an explicit deduplication ID.
                MessageDeduplicationId=body["id"],
            )

    calls.wait_for(lambda _: len(_processed(prefix)) == 8, timeout=20)
    for group in groups:
        order = [event["id"] for event in _processed(prefix) if event["group"] == group]
        assert order == [f"{prefix}-{group}-{index}" for index in range(4)]
        assert handlers.max_in_flight_per_group[group] == 1
    assert handlers.max_in_flight["total"] >= 2

    events = _consume_events_for(prefix)
    for event in events:
        SqsModel.model_validate(event)
        attributes = event["Records"][0]["attributes"]
        assert attributes["MessageGroupId"] in groups
        assert attributes["SequenceNumber"] and attributes["MessageDeduplicationId"]
        assert event["Records"][0]["eventSourceARN"].endswith(queues["fifo"].rsplit("/", 1)[1])


def test_sqs_failed_message_is_retried_after_visibility_timeout(sqs: Any, queues: dict[str, str]) -> None:
    message_id = f"retry-{uuid.uuid4().hex[:8]}"
    sqs.send_message(QueueUrl=queues["retry"], MessageBody=json.dumps({"id": message_id, "mode": "fail-once"}))
    calls.wait_for(lambda _: bool(_processed(message_id)), timeout=15)
    assert handlers.attempts[message_id] == 2
    receive_counts = [e["Records"][0]["attributes"]["ApproximateReceiveCount"] for e in _consume_events_for(message_id)]
    assert receive_counts == ["1", "2"]


def test_sqs_message_moves_to_dlq_after_max_receive_count(sqs: Any, queues: dict[str, str]) -> None:
    message_id = f"dlq-{uuid.uuid4().hex[:8]}"
    sqs.send_message(QueueUrl=queues["source"], MessageBody=json.dumps({"id": message_id, "mode": "always-fail"}))
    dead: list[dict[str, Any]] = []
    for _ in range(15):
        dead = sqs.receive_message(QueueUrl=queues["dlq"], WaitTimeSeconds=1).get("Messages", [])
        if dead:
            break
    assert [json.loads(m["Body"])["id"] for m in dead] == [message_id]
    assert handlers.attempts[message_id] == 2
    assert not _processed(message_id)


def test_sqs_partial_batch_response_keeps_only_failed_items(queues: dict[str, str]) -> None:
    first, failing, last = queues["partial_ids"].split(",")
    calls.wait_for(
        lambda _: {e["id"] for e in _processed(first.rsplit("-", 1)[0])} == {first, failing, last}, timeout=15
    )
    assert handlers.attempts[first] == handlers.attempts[last] == 1
    assert handlers.attempts[failing] == 2
    batches = _consume_events_for(first.rsplit("-", 1)[0])
    assert len(batches[0]["Records"]) == 3  # the three waiting messages arrived as one batch
    assert [json.loads(r["body"])["id"] for r in batches[1]["Records"]] == [failing]
    for event in batches:
        SqsModel.model_validate(event)
        record = event["Records"][0]
        assert record["messageAttributes"]["kind"]["stringValue"] == "test"
        assert record["md5OfMessageAttributes"]


# --- AWS's meters (GET /_emulator/usage) ---


def test_usage_counts_messages_in_32_kb_units_connections_and_invocations(bare_emulator: Emulator) -> None:
    usage_url = f"{bare_emulator.http_url}/_emulator/usage"
    httpx.delete(usage_url).raise_for_status()
    big = "x" * 40_000  # one frame each way, two billed messages each way
    with _open(bare_emulator) as ws:
        _ask(ws, {"action": "echo", "pad": big})
        _ask(ws, {"action": "echo"})
    calls.wait_for(lambda found: any(call.function == "disconnect" for call in found[-3:]))
    usage = httpx.get(usage_url).json()
    websocket = usage["websocket"]
    assert websocket["messagesIn"] == 3
    assert websocket["messagesOut"] == 3  # the echoes: the big one repeats its body
    assert websocket["bytesIn"] > 40_000
    assert websocket["connections"] == 1
    assert websocket["connectionMinutes"] == 1  # billed per started minute
    assert 0 < websocket["connectionMs"] < 60_000
    assert usage["lambda"]["echo"]["invocations"] == 2
    assert usage["lambda"]["echo"]["billedMs"] >= 2
    assert usage["lambda"]["disconnect"]["invocations"] == 1
    assert httpx.delete(usage_url).json()["websocket"]["messagesIn"] == 0
