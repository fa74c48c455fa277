"""What the test model servers share: a uvicorn server on a loopback port in a background thread (real
HTTP/1.1, chunked bodies), the request records, and whether a client went away mid-stream.

A server subclasses ``RecordingServer`` with its script type and implements the ASGI ``_app``; it reads
requests with ``read_request`` and streams inside ``disconnect_watch``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Generic, Self, TypeVar

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ScriptT = TypeVar("ScriptT")
RecordT = TypeVar("RecordT")


class RecordingServer(Generic[ScriptT, RecordT]):
    """Serves ``_app`` on 127.0.0.1 (a free port unless given) while the context is open. With ``tls``
    (uvicorn's ssl_* settings) it speaks HTTPS."""

    name = "test server"

    def __init__(self, script: ScriptT, *, port: int = 0, tls: dict[str, Any] | None = None) -> None:
        self.script = script
        self.requests: list[RecordT] = []
        # Set when a client closed its connection before its stream was complete.
        self.client_disconnected = threading.Event()
        # Set when a stream (or a whole answer) was written to the end.
        self.completed = threading.Event()
        self.tokens_sent = 0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self.tls = bool(tls)
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
            access_log=False,
            **(tls or {}),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def reset(self, script: ScriptT | None = None) -> None:
        """Start a new test case: new script (if given), empty records."""
        if script is not None:
            self.script = script
        self.requests.clear()
        self.client_disconnected.clear()
        self.completed.clear()
        self.tokens_sent = 0

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


async def read_request(receive: Receive, scope: Scope) -> tuple[dict[str, str], Any]:
    """The request's headers (lower-case names) and body (JSON when it parses, else text, None if empty)."""
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return headers, body


@asynccontextmanager
async def disconnect_watch(receive: Receive) -> AsyncIterator[asyncio.Event]:
    """An event set when the client disconnects, watched while the block streams."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        watcher.cancel()
