"""A real OpenAI-compatible chat-completions server on loopback, for tests and local runs.

It is a plain ASGI app served by uvicorn (the server vLLM itself runs on) in a background thread, so
clients talk real HTTP/1.1 with chunked server-sent events. What it streams is set by a ``Script``;
what it saw (requests, headers, whether the client went away mid-stream) is recorded.

    with OpenAISSEServer(Script(tokens=["Hel", "lo"])) as server:
        server.base_url  # "http://127.0.0.1:<port>/v1"

Run it by hand for the local stack (then KEFU_LLM_PROVIDER=openai KEFU_LLM_BASE_URL=<printed url>
KEFU_LLM_MODEL=fake):

    python -m tests.support.openai_sse_server --port 8001 --echo
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.recording_server import (
    Receive,
    RecordingServer,
    Scope,
    Send,
    disconnect_watch,
    read_request,
)

__all__ = ["OpenAISSEServer", "Receive", "RecordedRequest", "Scope", "Script", "Send"]


@dataclass
class Script:
    """What the server answers to the next requests."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    # Seconds to wait before each token (sets the streaming rate).
    delay: float = 0.0
    # An error status (>= 400) answers every request with ``error_body`` instead of a completion.
    status: int = 200
    error_body: Any = field(
        default_factory=lambda: {"error": {"message": "model overloaded", "type": "server_error", "code": 503}}
    )
    # After this many tokens, send an error event inside the 200 stream (vLLM does this).
    fail_after: int | None = None
    # Send the last user message's words back as tokens instead of ``tokens``.
    echo: bool = False
    # Write each event in two halves, so clients must reassemble lines across network reads.
    split_writes: bool = False
    # While waiting ``delay``, send an SSE comment this often (servers' keep-alives): the stream is
    # never silent, yet no text comes.
    ping_every: float | None = None
    # --- faults ---
    # After this many tokens the body just ends: no finish_reason, no [DONE] (the server was killed
    # or a proxy dropped the stream; the client sees a clean end of the body).
    cut_after: int | None = None
    # Seconds to wait before the response starts (the request is accepted, nothing comes back).
    hang_before_headers: float = 0.0
    # Seconds to wait after the headers, before the first token (a model stuck in its queue).
    hang_before_first: float = 0.0
    # The first ``fail_first`` requests get ``status`` (e.g. 429, 503); later ones stream normally.
    # None: every request gets ``status``.
    fail_first: int | None = None


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    # The client's (host, port): the same port means the same pooled connection.
    client: tuple[str, int] | None
    query: str = ""
    # time.monotonic() when the request arrived and when its first token was written (benchmarks).
    received_at: float = 0.0
    first_token_at: float | None = None


class OpenAISSEServer(RecordingServer[Script, RecordedRequest]):
    """Serves ``POST .../chat/completions`` (``/v1/...``, Azure's ``/openai/deployments/<name>/...``) on
    127.0.0.1 at a free port while the context is open. With ``tls`` (uvicorn's ssl_* settings) it
    speaks HTTPS, and can require client certificates (mTLS)."""

    name = "OpenAI-compatible test server"

    def __init__(
        self,
        script: Script | None = None,
        *,
        port: int = 0,
        model: str = "fake-model",
        tls: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(script or Script(), port=port, tls=tls)
        self.model = model

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    # --- the ASGI app ---

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers, body = await read_request(receive, scope)
        client = scope.get("client")
        record = RecordedRequest(
            path=scope["path"],
            headers=headers,
            body=body,
            client=tuple(client) if client else None,
            query=scope.get("query_string", b"").decode(),
            received_at=time.monotonic(),
        )
        self.requests.append(record)

        script = self.script
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await _respond_json(send, 404, {"error": {"message": f"no route {scope['path']}", "code": 404}})
            return
        failing = script.fail_first is None or len(self.requests) <= script.fail_first
        if script.status >= 400 and failing:
            await _respond_json(send, script.status, script.error_body)
            return
        if script.hang_before_headers:
            async with disconnect_watch(receive) as gone:
                try:
                    await asyncio.wait_for(gone.wait(), timeout=script.hang_before_headers)
                    self.client_disconnected.set()
                    return
                except TimeoutError:
                    pass
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await _respond_json(send, 400, {"object": "error", "message": "messages is required", "code": 400})
            return
        tokens = _echo_tokens(body) if script.echo else list(script.tokens)
        if body.get("stream"):
            await self._stream(tokens, script, receive, send, record)
        else:
            await asyncio.sleep(script.delay * len(tokens))
            await _respond_json(send, 200, self._completion("".join(tokens)))
            self.completed.set()

    async def _stream(
        self, tokens: list[str], script: Script, receive: Receive, send: Send, record: RecordedRequest
    ) -> None:
        async with disconnect_watch(receive) as gone:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
                }
            )
            # What real servers interleave: a keep-alive comment, a role-only delta, named-field noise.
            await self._write(send, script, b": keep-alive\n\n")
            await self._write(send, script, _event(self._chunk({"role": "assistant"})))
            if script.hang_before_first:
                try:
                    await asyncio.wait_for(gone.wait(), timeout=script.hang_before_first)
                except TimeoutError:
                    pass
            for index, token in enumerate(tokens):
                if script.cut_after is not None and index == script.cut_after:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if script.fail_after is not None and index == script.fail_after:
                    error = {"error": {"message": "CUDA out of memory", "type": "internal_error", "code": 500}}
                    await self._write(send, script, _event(error))
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if script.delay:
                    await self._wait(script, gone, send)
                if gone.is_set():
                    self.client_disconnected.set()
                    return
                await self._write(send, script, _event(self._chunk({"content": token})))
                if record.first_token_at is None:
                    record.first_token_at = time.monotonic()
                self.tokens_sent += 1
                if index % 3 == 2:
                    await self._write(send, script, b": ping\n\n")
            await self._write(send, script, _event(self._chunk({}, finish_reason="stop")))
            usage = {"prompt_tokens": 7, "completion_tokens": len(tokens), "total_tokens": 7 + len(tokens)}
            await self._write(send, script, _event({**self._chunk({}), "choices": [], "usage": usage}))
            await self._write(send, script, b"data: [DONE]\n\n")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.completed.set()

    async def _wait(self, script: Script, gone: asyncio.Event, send: Send) -> None:
        """``script.delay`` seconds (less if the client leaves), with keep-alives if scripted."""
        deadline = time.monotonic() + script.delay
        while not gone.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            step = min(left, script.ping_every) if script.ping_every else left
            try:
                await asyncio.wait_for(gone.wait(), timeout=step)
            except TimeoutError:
                if script.ping_every and deadline - time.monotonic() > 0:
                    await self._write(send, script, b": keep-alive\n\n")

    async def _write(self, send: Send, script: Script, data: bytes) -> None:
        parts = [data[: len(data) // 2], data[len(data) // 2 :]] if script.split_writes else [data]
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            if script.split_writes:
                await asyncio.sleep(0.001)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _completion(self, text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


async def _respond_json(send: Send, status: int, body: Any) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    content_type = b"text/plain" if isinstance(body, str) else b"application/json"
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


def _echo_tokens(body: dict[str, Any]) -> list[str]:
    users = [m.get("content", "") for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    text = str(users[-1]) if users else ""
    words = text.split(" ")
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--delay", type=float, default=0.03, help="seconds between tokens")
    parser.add_argument("--text", default="Hello! This is the fake model speaking. [1]")
    parser.add_argument("--echo", action="store_true", help="stream back the last user message")
    args = parser.parse_args()
    tokens = [word if i == 0 else " " + word for i, word in enumerate(args.text.split(" "))]
    with OpenAISSEServer(Script(tokens=tokens, delay=args.delay, echo=args.echo), port=args.port) as server:
        print(f"OpenAI-compatible fake model at {server.base_url} (Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
