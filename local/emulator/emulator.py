"""The emulator: WebSocket API + HTTP API (@connections, Lambda Invoke) + SQS pollers on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from local.emulator.config import ApiConfig
from local.emulator.gateway import WebSocketGateway
from local.emulator.invoke import LambdaRuntime
from local.emulator.management import build_http_app
from local.emulator.sqs import SqsClientFactory, SqsEventSource, default_sqs_client_factory
from local.emulator.usage import Usage

logger = logging.getLogger("local.emulator")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling: the process that embeds the emulator owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Emulator:
    """Everything runs on the event loop that calls ``start()``; ports 0 pick free ports."""

    def __init__(
        self,
        config: ApiConfig,
        *,
        host: str = "127.0.0.1",
        ws_port: int = 0,
        http_port: int = 0,
        extra_app: ASGIApp | None = None,
        sqs_client_factory: SqsClientFactory | None = None,
        access_log: bool = False,
        usage: Usage | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.runtime = LambdaRuntime(
            config.functions, region=config.region, account_id=config.account_id, usage=usage
        )
        # What AWS would meter (GET /_emulator/usage).
        self.usage = self.runtime.usage
        self.gateway = WebSocketGateway(config, self.runtime, host=host, port=ws_port)
        self._http_port = http_port
        self._extra_app = extra_app
        self._access_log = access_log
        client_factory = sqs_client_factory or default_sqs_client_factory(config.region, config.sqs_endpoint)
        self.event_sources = [
            SqsEventSource(
                mapping,
                self.runtime,
                region=config.region,
                account_id=config.account_id,
                client_factory=client_factory,
            )
            for mapping in config.event_source_mappings
            if mapping.enabled
        ]
        self._http_server: _EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self.http_port = 0

    # --- addresses (valid after start) ---

    @property
    def ws_port(self) -> int:
        return self.gateway.port

    @property
    def ws_url(self) -> str:
        """The WebSocket URL clients use (AWS's ``wss://{domain}/{stage}``)."""
        return f"ws://{self.gateway.domain_name}/{self.config.stage}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP side; the Lambda endpoint (``endpoint_url`` of a lambda client)."""
        return f"http://{self.gateway.advertised_host}:{self.http_port}"

    @property
    def connections_url(self) -> str:
        """``endpoint_url`` of an ``apigatewaymanagementapi`` client: ``{http_url}/{stage}``."""
        return f"{self.http_url}/{self.config.stage}"

    # --- lifecycle ---

    async def start(self) -> None:
        await self.gateway.start()
        try:
            await self._start_http()
            for source in self.event_sources:
                await source.start()
        except BaseException:
            await self.stop()
            raise
        logger.info("emulator ready: %s (HTTP %s)", self.ws_url, self.http_url)

    async def _start_http(self) -> None:
        app = build_http_app(self, self._extra_app)
        config = uvicorn.Config(
            app,
            log_config=None,  # leave the host process's logging alone
            access_log=self._access_log,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=5,
        )
        listener = socket.create_server((self.host, self._http_port))
        server = _EmbeddedServer(config)
        self._http_server = server
        self._http_task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if self._http_task.done():
                listener.close()
                try:
                    self._http_task.result()
                except SystemExit:  # uvicorn exits this way when the app's lifespan startup fails
                    pass
                raise RuntimeError("the HTTP server stopped during startup (see the log above)")
            await asyncio.sleep(0.01)
        self.http_port = int(listener.getsockname()[1])

    async def stop(self) -> None:
        # Pollers finish their current long poll; stop them together.
        await asyncio.gather(*(source.stop() for source in self.event_sources))
        await self.gateway.stop()
        if self._http_server is not None and self._http_task is not None:
            self._http_server.should_exit = True
            with contextlib.suppress(Exception, SystemExit):
                await self._http_task
            self._http_server = None
            self._http_task = None
        self.runtime.close()

    async def serve_forever(self) -> None:
        """start(), wait until cancelled, stop()."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def run_in_thread(self) -> EmulatorThread:
        """Start on a private event loop in a daemon thread (blocking until ready); for tests."""
        thread = EmulatorThread(self)
        thread.start()
        return thread


class EmulatorThread:
    """Runs an Emulator on its own loop in a background thread; use as a context manager."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator", daemon=True)

    def start(self) -> Emulator:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.emulator.start(), self._loop)
        try:
            future.result(timeout=30)
        except BaseException:
            self._shutdown_loop()
            raise
        return self.emulator

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.emulator.stop(), self._loop).result(timeout=60)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Emulator:
        if not self._thread.is_alive():
            self.start()
        return self.emulator

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
