"""A real HTTP server on loopback speaking Bedrock Runtime's ConverseStream/Converse and SageMaker
Runtime's InvokeEndpointWithResponseStream, with AWS event stream bodies (tests/support/aws_eventstream).

boto3 clients reach it with ``endpoint_url=server.url`` (any credentials). What it streams is set by
a ``StreamScript``; what it saw (requests, whether the client went away mid-stream) is recorded.

    with AwsStreamServer(StreamScript(tokens=["Hel", "lo"])) as server:
        boto3.client("bedrock-runtime", endpoint_url=server.url, ...)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from tests.support import aws_eventstream as es
from tests.support.recording_server import Receive, RecordingServer, Scope, Send, disconnect_watch, read_request


@dataclass
class StreamScript:
    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    delay: float = 0.0  # seconds before each token
    # An error before streaming: HTTP status with x-amzn-ErrorType (e.g. 429 ThrottlingException).
    status: int = 200
    error_type: str = "ThrottlingException"
    error_message: str = "Too many requests"
    # After this many tokens, an exception event inside the stream.
    fail_after: int | None = None
    stream_error_type: str = "modelStreamErrorException"
    # After this many tokens the body just ends, with no end marker (Bedrock's messageStop, the
    # [DONE]/finish_reason of SageMaker's messages stream, TGI's final details): a dropped stream.
    cut_after: int | None = None
    # SageMaker bodies: "messages" streams SSE chat.completion chunks, "generate" TGI token events.
    sagemaker_format: Literal["messages", "generate"] = "messages"
    # SageMaker: split the bytes into PayloadParts of at most this size (lines cut mid-way).
    part_bytes: int = 7
    input_tokens: int = 11


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class AwsStreamServer(RecordingServer[StreamScript, RecordedRequest]):
    name = "AWS stream test server"

    def __init__(self, script: StreamScript | None = None) -> None:
        super().__init__(script or StreamScript())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the ASGI app ---

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers, body = await read_request(receive, scope)
        path = unquote(scope["path"])
        self.requests.append(RecordedRequest(method=scope["method"], path=path, headers=headers, body=body))
        script = self.script
        if script.status >= 400:
            await _aws_error(send, script.status, script.error_type, script.error_message)
            return
        if path.startswith("/model/") and path.endswith("/converse-stream"):
            await self._stream(self._bedrock_events(script), receive, send, script)
        elif path.startswith("/model/") and path.endswith("/converse"):
            await self._converse(send, script)
        elif path.startswith("/endpoints/") and path.endswith("/invocations-response-stream"):
            await self._stream(self._sagemaker_events(script), receive, send, script)
        else:
            await _aws_error(send, 404, "UnknownOperationException", f"no route {path}")

    async def _converse(self, send: Send, script: StreamScript) -> None:
        text = "".join(script.tokens)
        document = {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": script.input_tokens, "outputTokens": len(script.tokens), "totalTokens": 0},
            "metrics": {"latencyMs": 5},
        }
        await _respond(send, 200, "application/json", json.dumps(document).encode())
        self.completed.set()

    def _bedrock_events(self, script: StreamScript) -> list[tuple[bytes, bool]]:
        """(message, counts as a token) in order."""
        events = [(es.event("messageStart", {"role": "assistant"}), False)]
        # Text blocks start with their first delta (contentBlockStart comes only for tool use).
        for index, token in enumerate(script.tokens):
            if script.fail_after is not None and index == script.fail_after:
                events.append((es.exception(script.stream_error_type, "The model failed mid-stream"), False))
                return events
            if script.cut_after is not None and index == script.cut_after:
                return events
            delta = {"contentBlockIndex": 0, "delta": {"text": token}}
            events.append((es.event("contentBlockDelta", delta), True))
        events.append((es.event("contentBlockStop", {"contentBlockIndex": 0}), False))
        events.append((es.event("messageStop", {"stopReason": "end_turn"}), False))
        usage = {"inputTokens": script.input_tokens, "outputTokens": len(script.tokens), "totalTokens": 0}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        events.append((es.event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}), False))
        return events

    def _sagemaker_events(self, script: StreamScript) -> list[tuple[bytes, bool]]:
        lines: list[tuple[bytes, bool]] = []
        for index, token in enumerate(script.tokens):
            if script.fail_after is not None and index == script.fail_after:
                failure = es.exception("ModelStreamError", "CUDA out of memory")
                return [*self._parts(lines, script), (failure, False)]
            if script.cut_after is not None and index == script.cut_after:
                return self._parts(lines, script)
            lines.append((_sagemaker_line(script, token, last=False), True))
        if script.sagemaker_format == "messages":
            usage = {
                "prompt_tokens": script.input_tokens,
                "completion_tokens": len(script.tokens),
                "total_tokens": script.input_tokens + len(script.tokens),
            }
            finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            lines.append((b"data: " + json.dumps(finish).encode() + b"\n\n", False))
            lines.append((b"data: [DONE]\n\n", False))
        else:
            lines.append((_sagemaker_line(script, "", last=True), False))
        return self._parts(lines, script)

    @staticmethod
    def _parts(lines: list[tuple[bytes, bool]], script: StreamScript) -> list[tuple[bytes, bool]]:
        """Each line cut into PayloadPart events of at most ``part_bytes`` bytes."""
        parts: list[tuple[bytes, bool]] = []
        for line, is_token in lines:
            pieces = [line[i : i + script.part_bytes] for i in range(0, len(line), script.part_bytes)]
            for position, piece in enumerate(pieces):
                parts.append(
                    (
                        es.event("PayloadPart", piece, content_type="application/octet-stream"),
                        is_token and position == 0,
                    )
                )
        return parts

    async def _stream(
        self, events: list[tuple[bytes, bool]], receive: Receive, send: Send, script: StreamScript
    ) -> None:
        async with disconnect_watch(receive) as gone:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/vnd.amazon.eventstream"),
                        (b"x-amzn-requestid", b"test-request"),
                        (b"x-amzn-sagemaker-content-type", b"text/event-stream"),
                    ],
                }
            )
            for message, is_token in events:
                if is_token and script.delay:
                    try:
                        await asyncio.wait_for(gone.wait(), timeout=script.delay)
                    except TimeoutError:
                        pass
                if gone.is_set():
                    self.client_disconnected.set()
                    return
                await send({"type": "http.response.body", "body": message, "more_body": True})
                if is_token:
                    self.tokens_sent += 1
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.completed.set()


def _sagemaker_line(script: StreamScript, token: str, *, last: bool) -> bytes:
    if script.sagemaker_format == "messages":
        chunk = {
            "object": "chat.completion.chunk",
            "model": "tgi",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": token}, "finish_reason": None}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"
    # TGI's generate stream: one JSON object per line with the token, details on the last one.
    event: dict[str, Any] = {
        "token": {"id": 1, "text": token, "logprob": -0.1, "special": last},
        "generated_text": "".join(script.tokens) if last else None,
        "details": {"finish_reason": "eos_token", "generated_tokens": len(script.tokens)} if last else None,
    }
    return b"data:" + json.dumps(event).encode() + b"\n\n"


async def _respond(
    send: Send, status: int, content_type: str, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _aws_error(send: Send, status: int, error_type: str, message: str) -> None:
    """The rest-json error shape botocore maps to ``ClientError`` with ``Error.Code``."""
    body = json.dumps({"message": message}).encode()
    await _respond(send, status, "application/json", body, [(b"x-amzn-errortype", error_type.encode())])
