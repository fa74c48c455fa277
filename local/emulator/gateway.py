"""The WebSocket side of the API: handshake with ``$connect``, routing, limits and ``$disconnect``."""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from local.emulator.config import ApiConfig
from local.emulator.events import (
    ConnectionInfo,
    connect_event,
    disconnect_event,
    epoch_ms,
    message_event,
    new_connection_id,
    new_request_id,
)
from local.emulator.invoke import InvocationResult, LambdaRuntime
from local.emulator.routing import CONNECT, DISCONNECT, Router

logger = logging.getLogger("local.emulator.gateway")

# Headers a $connect integration may not override in the 101 response.
_PROTECTED_HANDSHAKE_HEADERS = frozenset(
    {"connection", "upgrade", "sec-websocket-accept", "sec-websocket-extensions", "content-length"}
)


class GoneError(LookupError):
    """The connection does not exist (any more): @connections answers 410."""


@dataclass
class LiveConnection:
    info: ConnectionInfo
    websocket: ServerConnection
    user_agent: str
    last_active_at: int  # epoch ms of the last frame in either direction [I]

    def touch(self) -> None:
        self.last_active_at = epoch_ms()


@dataclass
class _Handshake:
    info: ConnectionInfo
    user_agent: str
    response_headers: dict[str, str] = field(default_factory=dict)


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, LiveConnection] = {}

    def add(self, connection: LiveConnection) -> None:
        self._connections[connection.info.connection_id] = connection

    def remove(self, connection_id: str) -> LiveConnection | None:
        return self._connections.pop(connection_id, None)

    def get(self, connection_id: str) -> LiveConnection:
        connection = self._connections.get(connection_id)
        if connection is None or connection.websocket.state is not State.OPEN:
            raise GoneError(connection_id)
        return connection

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[LiveConnection]:
        return iter(list(self._connections.values()))


def _error_frame(message: str, connection_id: str, request_id: str) -> str:
    return json.dumps({"message": message, "connectionId": connection_id, "requestId": request_id})


_BAD_INTEGRATION_RESPONSE: tuple[int, dict[str, str], str] = (502, {}, json.dumps({"message": "Internal server error"}))


def _connect_response(payload: Any) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) from a $connect result; [I] no statusCode means accept."""
    if not isinstance(payload, dict):
        return 200, {}, ""
    try:
        status = int(payload.get("statusCode", 200))
    except (TypeError, ValueError):
        return _BAD_INTEGRATION_RESPONSE
    if not 200 <= status < 600:
        return _BAD_INTEGRATION_RESPONSE
    headers = payload.get("headers") or {}
    body = payload.get("body")
    return (
        status,
        {str(name): str(value) for name, value in headers.items()} if isinstance(headers, dict) else {},
        body if isinstance(body, str) else "" if body is None else json.dumps(body),
    )


def http_response(status: int, body: str, content_type: str = "application/json") -> Response:
    """A handshake refusal with any status (websockets' own helper only knows standard ones)."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    data = body.encode()
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", content_type),
        ]
    )
    return Response(status, phrase, headers, data)


def _merge_headers(response: Response, headers: dict[str, str]) -> None:
    """Integration headers replace the response's own, except those that keep the protocol valid."""
    for name, value in headers.items():
        if name.lower() in _PROTECTED_HANDSHAKE_HEADERS:
            continue
        if name in response.headers:
            del response.headers[name]  # websockets' Headers would otherwise keep both values
        response.headers[name] = value


def route_response_body(payload: Any) -> str | None:
    """The frame a route response sends for a handler result; None sends nothing."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        body = payload.get("body")
        if body is None:
            return None
        return body if isinstance(body, str) else json.dumps(body)
    return json.dumps(payload)  # [I] a bare value is sent as its JSON text


def _close_status(websocket: ServerConnection) -> tuple[int, str]:
    """Who closed first decides the status the DISCONNECT event reports."""
    protocol = websocket.protocol
    sent, received = protocol.close_sent, protocol.close_rcvd
    if sent is not None and (received is None or protocol.close_rcvd_then_sent is False):
        return int(sent.code), sent.reason
    if received is not None:
        return int(received.code), received.reason
    return 1006, ""


class WebSocketGateway:
    def __init__(
        self,
        config: ApiConfig,
        runtime: LambdaRuntime,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.host = host
        self.requested_port = port
        self.registry = ConnectionRegistry()
        self.router = Router(config.route_selection_expression, config.routes)
        self._server: Server | None = None
        self._handshakes: dict[object, _Handshake] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def advertised_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def domain_name(self) -> str:
        return f"{self.advertised_host}:{self.port}"

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=self.config.max_payload_bytes,
            # API Gateway sends no pings; the idle timeout is the only liveness rule.
            ping_interval=None,
            # The handshake waits for $connect, which may take up to the integration timeout.
            open_timeout=self.config.integration_timeout_seconds + 5,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        logger.info("WebSocket API listening on ws://%s/%s", self.domain_name, self.config.stage)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- @connections operations ---

    async def post(self, connection_id: str, data: bytes) -> None:
        connection = self.registry.get(connection_id)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            await self._send(connection, data)  # [I] non-UTF-8 data goes out as a binary frame
        else:
            await self._send(connection, text)

    async def _send(self, connection: LiveConnection, message: str | bytes) -> None:
        try:
            await connection.websocket.send(message)
        except ConnectionClosed:
            raise GoneError(connection.info.connection_id) from None
        connection.touch()
        self.runtime.usage.frame_out(len(message.encode("utf-8") if isinstance(message, str) else message))

    async def delete(self, connection_id: str) -> None:
        connection = self.registry.get(connection_id)
        self.registry.remove(connection_id)
        # Answer at once, as AWS does; the closing handshake finishes in the background.
        self._spawn(connection.websocket.close(1000))

    # --- handshake ---

    def _stage_path(self, path: str) -> bool:
        return path.rstrip("/") in ("", f"/{self.config.stage}")

    async def _process_request(self, websocket: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not self._stage_path(url.path):
            response = http_response(403, json.dumps({"message": "Forbidden"}))
            response.headers["x-amzn-ErrorType"] = "ForbiddenException"
            return response
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None  # not a WebSocket handshake: websockets answers 426
        info = ConnectionInfo(
            connection_id=new_connection_id(),
            connected_at=epoch_ms(),
            source_ip=str(websocket.remote_address[0]),
            api_id=self.config.api_id,
            stage=self.config.stage,
            domain_name=self.domain_name,
        )
        handshake = _Handshake(info=info, user_agent=request.headers.get("User-Agent", ""))
        function = self.config.routes.get(CONNECT)
        if function is not None:
            event = connect_event(
                info,
                headers=list(request.headers.raw_items()),
                query=parse_qsl(url.query, keep_blank_values=True),
                forwarded_port=self.port,
            )
            result = await self._invoke(function, event)
            if not result.ok:
                # [I] 500 for an integration error, 504 when it timed out.
                status = 504 if result.timed_out else 500
                return http_response(status, json.dumps({"message": "Internal server error"}))
            status, headers, body = _connect_response(result.payload)
            if not 200 <= status < 300:
                logger.info("$connect refused %s with %s", info.connection_id, status)
                response = http_response(status, body)
                _merge_headers(response, headers)
                return response
            handshake.response_headers = headers
        self._handshakes[websocket.id] = handshake
        return None

    def _process_response(self, websocket: ServerConnection, request: Request, response: Response) -> None:
        handshake = self._handshakes.get(websocket.id)
        if handshake is None:
            return
        if response.status_code != 101:
            self._handshakes.pop(websocket.id, None)
            return
        _merge_headers(response, handshake.response_headers)

    # --- connection lifetime ---

    async def _handle(self, websocket: ServerConnection) -> None:
        handshake = self._handshakes.pop(websocket.id, None)
        if handshake is None:
            await websocket.close(1011)
            return
        connection = LiveConnection(
            info=handshake.info,
            websocket=websocket,
            user_agent=handshake.user_agent,
            last_active_at=epoch_ms(),
        )
        self.registry.add(connection)
        watchdog = asyncio.create_task(self._watchdog(connection))
        try:
            async for message in websocket:
                connection.touch()
                self.runtime.usage.frame_in(len(message.encode("utf-8") if isinstance(message, str) else message))
                if isinstance(message, bytes):
                    await websocket.close(1003, "Binary frames are not supported")
                    break
                self._spawn(self._on_message(connection, message))
        except ConnectionClosed:
            pass  # e.g. 1009 from the size limit, or the client vanished
        finally:
            watchdog.cancel()
            self.runtime.usage.connection_closed(epoch_ms() - connection.info.connected_at)
            self.registry.remove(connection.info.connection_id)
            await self._on_disconnect(connection)

    async def _watchdog(self, connection: LiveConnection) -> None:
        started = connection.info.connected_at / 1000
        while True:
            idle_deadline = connection.last_active_at / 1000 + self.config.idle_timeout_seconds
            deadline = min(idle_deadline, started + self.config.max_connection_seconds)
            remaining = deadline - time.time()
            if remaining <= 0:
                logger.info("closing %s: idle or too long", connection.info.connection_id)
                await connection.websocket.close(1001, "Going away")
                return
            await asyncio.sleep(remaining)

    async def _on_message(self, connection: LiveConnection, body: str) -> None:
        info = connection.info
        request_id = new_request_id()
        route_key = self.router.select(body)
        if route_key is None:
            await self._reply(connection, _error_frame("Forbidden", info.connection_id, request_id))
            return
        event = message_event(info, route_key=route_key, body=body, request_id=request_id)
        result = await self._invoke(self.config.routes[route_key], event)
        if not result.ok:
            await self._reply(connection, _error_frame("Internal server error", info.connection_id, request_id))
            return
        if route_key in self.config.route_responses:
            frame = route_response_body(result.payload)
            if frame is not None:
                await self._reply(connection, frame)

    async def _on_disconnect(self, connection: LiveConnection) -> None:
        status_code, reason = _close_status(connection.websocket)
        logger.info("disconnected %s (%s)", connection.info.connection_id, status_code)
        function = self.config.routes.get(DISCONNECT)
        if function is None:
            return
        event = disconnect_event(connection.info, status_code=status_code, reason=reason)
        await self._invoke(function, event)  # best effort: the result is ignored

    async def _reply(self, connection: LiveConnection, frame: str) -> None:
        try:
            await self._send(connection, frame)
        except GoneError:
            pass  # the client left before the reply

    async def _invoke(self, function: str, event: dict[str, Any]) -> InvocationResult:
        limit = min(self.config.integration_timeout_seconds, self.runtime.config(function).timeout_seconds)
        return await self.runtime.invoke(function, event, timeout_seconds=limit)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
