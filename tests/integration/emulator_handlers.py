"""Small Lambda handlers the emulator's integration tests run in-process.

They record every call (event + context) in ``calls``, which the tests read from another thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    function: str
    event: dict[str, Any]
    context: Any


class Recorder:
    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._changed = threading.Condition()

    def add(self, function: str, event: dict[str, Any], context: Any) -> None:
        with self._changed:
            self._calls.append(Call(function, event, context))
            self._changed.notify_all()

    def snapshot(self) -> list[Call]:
        with self._changed:
            return list(self._calls)

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0) -> list[Call]:
        """Block until ``predicate(calls)`` holds; fails the test with the calls seen so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self._calls):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met; calls: {[c.function for c in self._calls]}")
                self._changed.wait(remaining)
            return list(self._calls)


calls = Recorder()


def _connection_id(event: dict[str, Any]) -> str:
    return str(event["requestContext"]["connectionId"])


# --- WebSocket routes ---


def on_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("connect", event, context)
    query = event.get("queryStringParameters") or {}
    if "refuse" in query:
        return {"statusCode": int(query["refuse"]), "body": "refused by $connect"}
    if "crash" in query:
        raise RuntimeError("connect crashed")
    if "protocol" in query:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["protocol"]}}
    return {"statusCode": 200}


def on_disconnect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("disconnect", event, context)
    return {"statusCode": 200}


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("echo", event, context)
    reply = {
        "routeKey": event["requestContext"]["routeKey"],
        "connectionId": _connection_id(event),
        "body": event["body"],
    }
    return {"statusCode": 200, "body": json.dumps(reply)}


def silent(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("silent", event, context)
    return {"statusCode": 200, "body": "this route has no route response"}


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("boom", event, context)
    raise ValueError("boom")


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("slow", event, context)
    time.sleep(float(json.loads(event["body"]).get("seconds", 2)))
    return {"statusCode": 200, "body": "too late"}


def context_probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("context", event, context)
    described = {
        "functionName": context.function_name,
        "functionVersion": context.function_version,
        "invokedFunctionArn": context.invoked_function_arn,
        "memoryLimitInMb": context.memory_limit_in_mb,
        "awsRequestId": context.aws_request_id,
        "logGroupName": context.log_group_name,
        "logStreamName": context.log_stream_name,
        "remainingMs": context.get_remaining_time_in_millis(),
        "tenantId": context.tenant_id,
    }
    return {"statusCode": 200, "body": json.dumps(described)}


# --- Lambda Invoke ---


def add(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("add", event, context)
    return {"sum": event["a"] + event["b"]}


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.add("fail", event, context)
    raise ValueError(f"cannot handle {event!r}")


def unserializable(event: dict[str, Any], context: Any) -> Any:
    return {"when": object()}


# --- SQS ---

attempts: Counter[str] = Counter()
_attempts_lock = threading.Lock()
_in_flight: Counter[str] = Counter()
max_in_flight: dict[str, int] = {"total": 0}
max_in_flight_per_group: Counter[str] = Counter()


def consume(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Body ``{"id", "mode"}``; mode: ok | fail-once | always-fail | partial-once | slow."""
    calls.add("consume", event, context)
    records = event["Records"]
    group = records[0]["attributes"].get("MessageGroupId", "")
    with _attempts_lock:
        _in_flight["total"] += 1
        _in_flight[group] += 1
        max_in_flight["total"] = max(max_in_flight["total"], _in_flight["total"])
        max_in_flight_per_group[group] = max(max_in_flight_per_group[group], _in_flight[group])
    try:
        failures = []
        for record in records:
            body = json.loads(record["body"])
            with _attempts_lock:
                attempts[body["id"]] += 1
                attempt = attempts[body["id"]]
            mode = body.get("mode", "ok")
            if mode == "always-fail" or (mode == "fail-once" and attempt == 1):
                raise RuntimeError(f"failing {body['id']} (attempt {attempt})")
            if mode == "partial-once" and attempt == 1:
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            if mode == "slow":
                time.sleep(float(body.get("seconds", 0.3)))
            # One "processed" call per message that succeeded, in processing order.
            calls.add("processed", {"id": body["id"], "group": group}, context)
        return {"batchItemFailures": failures}
    finally:
        with _attempts_lock:
            _in_flight["total"] -= 1
            _in_flight[group] -= 1
