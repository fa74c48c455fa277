"""The HTTP side: the @connections management API, the Lambda Invoke API and the chat page.

Errors follow AWS's rest-json shape (``x-amzn-ErrorType`` header plus a JSON message) so boto3
raises the modelled exceptions (``GoneException``, ``PayloadTooLargeException``,
``ResourceNotFoundException``...).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from local.emulator.config import FRAME_SIZE_BYTES, HTTP_METHODS, ApiConfig
from local.emulator.context import ClientContext, function_arn
from local.emulator.events import http_api_event, iso8601
from local.emulator.gateway import GoneError, WebSocketGateway
from local.emulator.invoke import CrashPlan, LambdaRuntime

logger = logging.getLogger("local.emulator.http")

WEB_DIR = Path(__file__).resolve().parents[2] / "web"  # the shipped web assets
# Synchronous Invoke request/response payload quota.
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024


class EmulatorBackend(Protocol):
    config: ApiConfig
    gateway: WebSocketGateway
    runtime: LambdaRuntime


def aws_error(status: int, error_type: str, message: str, *, lambda_style: bool = False) -> JSONResponse:
    """An error botocore maps to ``client.exceptions.<error_type>``."""
    body: dict[str, Any] = {"Type": "User", "Message": message} if lambda_style else {"message": message}
    return JSONResponse(body, status_code=status, headers={"x-amzn-ErrorType": error_type})


def _gone(connection_id: str) -> JSONResponse:
    return aws_error(410, "GoneException", f"connection {connection_id} no longer exists")


class _Handlers:
    def __init__(self, backend: EmulatorBackend) -> None:
        self.backend = backend
        self._background: set[asyncio.Task[Any]] = set()

    # --- @connections ---

    async def connection(self, request: Request) -> Response:
        stage = request.path_params.get("stage")
        if stage is not None and stage != self.backend.config.stage:
            return aws_error(403, "ForbiddenException", "Forbidden")
        connection_id: str = request.path_params["connection_id"]
        gateway = self.backend.gateway
        try:
            if request.method == "POST":
                data = await request.body()
                limit = self.backend.config.max_payload_bytes
                if len(data) > limit:
                    return aws_error(
                        413, "PayloadTooLargeException", f"Message payload of {len(data)} bytes exceeds {limit}"
                    )
                if len(data) > FRAME_SIZE_BYTES:
                    # AWS documents a 32 KB frame size; large posts may be rejected there.
                    logger.warning(
                        "post to %s is %d bytes, above API Gateway's %d-byte frame size",
                        connection_id,
                        len(data),
                        FRAME_SIZE_BYTES,
                    )
                if self.backend.runtime.crash_on_post(connection_id):
                    return aws_error(500, "InternalServerErrorException", "the sender crashed (fault injection)")
                await gateway.post(connection_id, data)
                return Response(status_code=200)
            if request.method == "GET":
                live = gateway.registry.get(connection_id)
                return JSONResponse(
                    {
                        "connectedAt": iso8601(live.info.connected_at),
                        "identity": {"sourceIp": live.info.source_ip, "userAgent": live.user_agent},
                        "lastActiveAt": iso8601(live.last_active_at),
                    }
                )
            await gateway.delete(connection_id)
            return Response(status_code=204)
        except GoneError:
            return _gone(connection_id)

    # --- Lambda Invoke ---

    async def invoke(self, request: Request) -> Response:
        runtime = self.backend.runtime
        config = self.backend.config
        name = function_name_from(request.path_params["function_name"])
        if not runtime.has(name):
            arn = function_arn(name, region=config.region, account_id=config.account_id)
            return aws_error(404, "ResourceNotFoundException", f"Function not found: {arn}", lambda_style=True)
        data = await request.body()
        if len(data) > MAX_INVOKE_PAYLOAD_BYTES:
            return aws_error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {MAX_INVOKE_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
                lambda_style=True,
            )
        try:
            event = json.loads(data) if data.strip() else {}
        except ValueError as exc:
            return aws_error(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: {exc}",
                lambda_style=True,
            )
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if invocation_type == "DryRun":
            return Response(status_code=204, headers=headers)
        try:
            client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
        except ValueError as exc:
            return aws_error(400, "InvalidRequestContentException", str(exc), lambda_style=True)
        tenant_id = request.headers.get("X-Amz-Tenant-Id")
        if invocation_type == "Event":
            task = asyncio.create_task(runtime.invoke(name, event, client_context=client_context, tenant_id=tenant_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return Response(status_code=202, headers=headers)
        if invocation_type != "RequestResponse":
            return aws_error(
                400,
                "InvalidParameterValueException",
                f"Unsupported invocation type {invocation_type!r}",
                lambda_style=True,
            )
        result = await runtime.invoke(name, event, client_context=client_context, tenant_id=tenant_id)
        headers["x-amzn-RequestId"] = result.request_id
        if result.ok:
            return Response(json.dumps(result.payload), status_code=200, headers=headers, media_type="application/json")
        headers["X-Amz-Function-Error"] = "Unhandled"
        return Response(json.dumps(result.error), status_code=200, headers=headers, media_type="application/json")

    # --- fault injection (the emulator's own API, not AWS's) ---

    async def faults(self, request: Request) -> Response:
        """``PUT /_emulator/faults`` ``{"crash": {"function", "afterPosts", "count"}}`` arms a crash plan,
        ``DELETE`` disarms it, ``GET`` shows it (with how many invocations it crashed)."""
        runtime = self.backend.runtime
        if request.method == "PUT":
            try:
                crash = (await request.json())["crash"]
                plan = CrashPlan(
                    function=str(crash["function"]),
                    after_posts=max(1, int(crash.get("afterPosts", 1))),
                    remaining=max(0, int(crash.get("count", 1))),
                )
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"message": f"bad fault plan: {exc!r}"}, status_code=400)
            if not runtime.has(plan.function):
                return JSONResponse({"message": f"unknown function {plan.function!r}"}, status_code=404)
            runtime.crash_plan = plan
        elif request.method == "DELETE":
            runtime.crash_plan = None
        plan_now = runtime.crash_plan
        return JSONResponse({"crash": plan_now.to_json() if plan_now else None})

    async def usage(self, request: Request) -> Response:
        """``GET /_emulator/usage``: what AWS would meter since the start or the last ``DELETE``
        (local/emulator/usage.py); ``DELETE`` starts the counts again."""
        meter = self.backend.runtime.usage
        if request.method == "DELETE":
            meter.reset()
        return JSONResponse(meter.snapshot())

    # --- HTTP API routes (payload format 2.0) ---

    def http_route(self, route_key: str, function: str) -> Any:
        async def endpoint(request: Request) -> Response:
            source = request.client.host if request.client else "127.0.0.1"
            event = http_api_event(
                method=request.method,
                route_key=route_key,
                raw_path=request.url.path,
                path_parameters={name: str(value) for name, value in request.path_params.items()},
                query=request.query_params.multi_items(),
                headers=request.headers.items(),
                body=await request.body(),
                source_ip=source,
                domain_name=request.url.netloc,
            )
            result = await self.backend.runtime.invoke(function, event)
            return http_api_response(result.payload if result.ok else None)

        return endpoint

    async def chat_page(self, request: Request) -> Response:
        return FileResponse(WEB_DIR / "chat.html", media_type="text/html; charset=utf-8")


def http_api_response(payload: Any) -> Response:
    """What API Gateway's HTTP API makes of a function's result (payload format 2.0): a failed or timed
    out invocation is a 500 with AWS's body; a dict with ``statusCode`` is the response; anything
    else is a JSON body."""
    if payload is None:
        return JSONResponse({"message": "Internal Server Error"}, status_code=500)
    if not isinstance(payload, dict) or "statusCode" not in payload:
        return Response(json.dumps(payload), status_code=200, media_type="application/json")
    body = payload.get("body") or ""
    raw = base64.b64decode(body) if payload.get("isBase64Encoded") else str(body).encode()
    headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
    return Response(raw, status_code=int(payload["statusCode"]), headers=headers)


def function_name_from(identifier: str) -> str:
    """The function name from a name, ``name:qualifier``, partial ARN or full ARN."""
    parts = identifier.split(":")
    if identifier.startswith("arn:") and len(parts) >= 7:
        return parts[6]
    if len(parts) >= 3 and parts[1] == "function":  # 123456789012:function:name[:qualifier]
        return parts[2]
    return parts[0]


def _client_context(header: str | None) -> ClientContext | None:
    if not header:
        return None
    try:
        document = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("X-Amz-Client-Context must be base64-encoded JSON") from None
    if not isinstance(document, dict):
        raise ValueError("X-Amz-Client-Context must be a JSON object")
    return ClientContext(client=document.get("client"), custom=document.get("custom"), env=document.get("env"))


def build_http_app(backend: EmulatorBackend, extra_app: ASGIApp | None = None) -> Starlette:
    """@connections (with and without the stage prefix), Lambda Invoke, ``/chat``; then ``extra_app``.

    ``extra_app`` is mounted at ``/`` after the emulator's own routes; if it has a Starlette/FastAPI
    lifespan, it runs with this app's.
    """
    handlers = _Handlers(backend)
    methods = ["POST", "GET", "DELETE"]
    routes: list[BaseRoute] = [
        Route("/@connections/{connection_id:path}", handlers.connection, methods=methods),
        Route("/{stage}/@connections/{connection_id:path}", handlers.connection, methods=methods),
        Route("/2015-03-31/functions/{function_name}/invocations", handlers.invoke, methods=["POST"]),
        Route("/chat", handlers.chat_page, methods=["GET"]),
        Route("/_emulator/faults", handlers.faults, methods=["GET", "PUT", "DELETE"]),
        Route("/_emulator/usage", handlers.usage, methods=["GET", "DELETE"]),
    ]
    for key, function in backend.config.http_routes.items():
        method, _, path = key.partition(" ")
        methods_of_route = sorted(HTTP_METHODS - {"ANY"}) if method == "ANY" else [method]
        routes.append(Route(path, handlers.http_route(key, function), methods=methods_of_route))
    if extra_app is not None:
        routes.append(Mount("/", app=extra_app))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        router = getattr(extra_app, "router", None)
        extra_lifespan = getattr(router, "lifespan_context", None)
        if extra_lifespan is None:
            yield
            return
        async with extra_lifespan(extra_app):
            yield

    return Starlette(routes=routes, lifespan=lifespan)
