"""In-process Lambda runtime, configuration and the pure helpers of the emulator (no network)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import pytest
from pydantic import ValidationError

from local.emulator.config import ApiConfig, EventSourceMapping, FunctionConfig
from local.emulator.context import ClientContext
from local.emulator.gateway import _connect_response, route_response_body
from local.emulator.invoke import CrashPlan, LambdaRuntime, run_handler
from local.emulator.management import _client_context, function_name_from
from local.emulator.sqs import failed_message_ids, split_batches
from tests import events

HERE = "tests.unit.test_emulator_runtime"
release_slow_handler = threading.Event()


def returns_event(event: Any, context: Any) -> Any:
    event["mutated"] = True  # must not leak back to the caller
    return {"event": event, "function": context.function_name, "tenant": context.tenant_id}


def raises(event: Any, context: Any) -> Any:
    raise KeyError("missing thing")


def returns_set(event: Any, context: Any) -> Any:
    return {1, 2}


def blocks(event: Any, context: Any) -> Any:
    release_slow_handler.wait(5)
    return "finally"


not_callable = 42


# --- run_handler (sync core) ---


def test_run_handler_passes_a_copy_and_marshals_the_result() -> None:
    event = {"a": 1}
    payload, error = run_handler(f"{HERE}:returns_event", event, events.lambda_context("f1"))
    assert error is None
    assert payload == {"event": {"a": 1, "mutated": True}, "function": "f1", "tenant": None}
    assert event == {"a": 1}


def test_run_handler_reports_exceptions_like_the_python_runtime() -> None:
    context = events.lambda_context()
    payload, error = run_handler(f"{HERE}:raises", {}, context)
    assert payload is None and error is not None
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'missing thing'"
    assert error["requestId"] == context.aws_request_id
    assert "in raises" in error["stackTrace"][0]


@pytest.mark.parametrize(
    ("path", "error_type"),
    [
        (f"{HERE}:returns_set", "Runtime.MarshalError"),
        ("tests.unit.no_such_module:handler", "Runtime.ImportModuleError"),
        (f"{HERE}:absent", "Runtime.HandlerNotFound"),
        (f"{HERE}:not_callable", "Runtime.HandlerNotFound"),
    ],
)
def test_run_handler_runtime_errors(path: str, error_type: str) -> None:
    _, error = run_handler(path, {}, events.lambda_context())
    assert error is not None and error["errorType"] == error_type


# --- LambdaRuntime (async, worker threads) ---


def _runtime(**functions: FunctionConfig) -> LambdaRuntime:
    return LambdaRuntime(functions, region="eu-west-1", account_id="123456789012")


def test_runtime_invokes_with_a_context_of_the_function() -> None:
    runtime = _runtime(echo=FunctionConfig(handler=f"{HERE}:returns_event", memory_mb=512))
    try:
        result = asyncio.run(runtime.invoke("echo", {"x": 1}, tenant_id="t-1"))
    finally:
        runtime.close()
    assert result.ok and not result.timed_out
    assert result.payload["function"] == "echo"
    assert result.payload["tenant"] == "t-1"
    context = runtime.new_context("echo")
    assert context.invoked_function_arn == "arn:aws:lambda:eu-west-1:123456789012:function:echo"
    assert context.memory_limit_in_mb == "512"


def test_runtime_times_out_without_waiting_for_the_handler() -> None:
    runtime = _runtime(slow=FunctionConfig(handler=f"{HERE}:blocks"))
    release_slow_handler.clear()
    try:
        result = asyncio.run(runtime.invoke("slow", {}, timeout_seconds=0.1))
    finally:
        release_slow_handler.set()
        runtime.close()
    assert result.timed_out and not result.ok
    assert result.error is not None
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.10 seconds" in result.error["errorMessage"]


def test_runtime_rejects_unknown_functions() -> None:
    runtime = _runtime()
    with pytest.raises(LookupError):
        asyncio.run(runtime.invoke("nope", {}))
    runtime.close()


# --- configuration ---


def test_config_accepts_handler_paths_and_validates_references() -> None:
    config = ApiConfig(
        routes={"$connect": "connect", "sendMessage": "message", "$default": "message"},
        route_responses=frozenset({"$default"}),
        functions={"connect": "functions.connect.handler:handler", "message": "functions.message.handler:handler"},
        event_source_mappings=[EventSourceMapping(queue_url="http://q/1/jobs.fifo", function="message")],
    )
    assert config.functions["connect"] == FunctionConfig(handler="functions.connect.handler:handler")
    assert config.stage == "local" and config.integration_timeout_seconds == 29
    assert ApiConfig.model_validate_json(config.model_dump_json()) == config


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"routes": {"chat": "nope"}}, "unknown function 'nope'"),
        ({"routes": {"$custom": "f"}, "functions": {"f": "a.b:c"}}, "must not start with"),
        ({"route_responses": frozenset({"chat"})}, "not a route"),
        (
            {"routes": {"$connect": "f"}, "functions": {"f": "a:b"}, "route_responses": frozenset({"$connect"})},
            "cannot have a route response",
        ),
        ({"functions": {"f": "no_colon"}}, "String should match pattern"),
        ({"route_selection_expression": "$request.header.x"}, "only \\$request.body"),
        ({"event_source_mappings": [{"queue_url": "q", "function": "g"}]}, "unknown function 'g'"),
        ({"integration_timeout_seconds": 30}, "less than or equal to 29"),
    ],
)
def test_config_errors_say_what_is_wrong(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        ApiConfig(**fields)


# --- integration responses ---


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, (200, {}, "")),
        ({"statusCode": 200}, (200, {}, "")),
        ({"statusCode": "403", "body": "no"}, (403, {}, "no")),
        ({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "v1"}}, (200, {"Sec-WebSocket-Protocol": "v1"}, "")),
        ({"statusCode": "oops"}, (502, {}, json.dumps({"message": "Internal server error"}))),
        ({"statusCode": 101}, (502, {}, json.dumps({"message": "Internal server error"}))),
    ],
)
def test_connect_response(payload: Any, expected: tuple[int, dict[str, str], str]) -> None:
    assert _connect_response(payload) == expected


@pytest.mark.parametrize(
    ("payload", "frame"),
    [
        ({"statusCode": 200, "body": "text"}, "text"),
        ({"statusCode": 200, "body": {"a": 1}}, '{"a": 1}'),
        ({"statusCode": 200}, None),
        (None, None),
        (["x"], '["x"]'),
    ],
)
def test_route_response_body(payload: Any, frame: str | None) -> None:
    assert route_response_body(payload) == frame


# --- Lambda Invoke helpers ---


@pytest.mark.parametrize(
    "identifier",
    [
        "kefu-retrieve",
        "kefu-retrieve:live",
        "123456789012:function:kefu-retrieve",
        "arn:aws:lambda:us-east-1:123456789012:function:kefu-retrieve:$LATEST",
    ],
)
def test_function_name_from_any_identifier(identifier: str) -> None:
    assert function_name_from(identifier) == "kefu-retrieve"


def test_client_context_header() -> None:
    header = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    assert _client_context(header) == ClientContext(custom={"k": "v"})
    assert _client_context(None) is None
    with pytest.raises(ValueError, match="base64-encoded JSON"):
        _client_context("%%%")


# --- SQS helpers ---


@pytest.mark.parametrize(
    ("payload", "failed"),
    [
        (None, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b", "c"}),
        ({"batchItemFailures": [{"wrongKey": "a"}]}, {"a", "b", "c"}),
        ({"batchItemFailures": "a"}, {"a", "b", "c"}),
    ],
)
def test_failed_message_ids_follow_lambda_rules(payload: Any, failed: set[str]) -> None:
    assert failed_message_ids(payload, ["a", "b", "c"]) == failed


def test_split_batches_groups_fifo_messages_in_order() -> None:
    messages = [
        events.sqs_message("1", group_id="A"),
        events.sqs_message("2", group_id="B"),
        events.sqs_message("3", group_id="A"),
    ]
    batches = split_batches(messages, fifo=True)
    assert [[m["Body"] for m in batch] for batch in batches] == [["1", "3"], ["2"]]
    assert split_batches(messages, fifo=False) == [messages]
    assert split_batches([], fifo=True) == []


# --- fault injection: a crash plan kills the invocation that posts ---

posting_runtime: dict[str, LambdaRuntime] = {}


def posts_until_stopped(event: Any, context: Any) -> Any:
    """Posts to its connection (as the management API would see it) and absorbs every Exception."""
    runtime = posting_runtime["runtime"]
    posted = 0
    for _ in range(200):
        try:
            if runtime.crash_on_post(event["connectionId"]):
                raise ConnectionError("the post was dropped")  # what the sender sees: a 500
            posted += 1
        except Exception:  # noqa: S112 - the point: a crash is not an Exception the handler can absorb
            continue
    return {"posted": posted}


def test_a_crash_plan_kills_the_posting_invocation_once_per_connection() -> None:
    runtime = LambdaRuntime({"gen": FunctionConfig(handler=f"{HERE}:posts_until_stopped")}, region="r", account_id="1")
    posting_runtime["runtime"] = runtime
    runtime.crash_plan = CrashPlan(function="gen", after_posts=3, remaining=5)

    async def scenario() -> tuple[Any, Any, Any]:
        first = await runtime.invoke("gen", {"connectionId": "conn-A"})
        again = await runtime.invoke("gen", {"connectionId": "conn-A"})  # its redelivery: not crashed again
        other = await runtime.invoke("gen", {"connectionId": "conn-B"})
        return first, again, other

    try:
        first, again, other = asyncio.run(scenario())
    finally:
        runtime.close()
    assert first.error is not None and first.error["errorType"] == "Runtime.ExitError"
    assert again.ok and again.payload == {"posted": 200}
    assert other.error is not None and other.error["errorType"] == "Runtime.ExitError"
    assert runtime.crash_plan.remaining == 3 and len(runtime.crash_plan.crashed) == 2
