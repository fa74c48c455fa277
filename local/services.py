"""Backing services of the local emulation: moto's server (DynamoDB, SQS) and a redis-server process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def use_dummy_aws_credentials() -> None:
    """moto accepts any credentials; boto3 still needs some to sign requests."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _serialised_dynamodb(app: Any) -> Any:
    """moto's DynamoDB has no locks: two requests at once can interleave inside a TransactWriteItems
    or a Query. DynamoDB itself makes each request atomic, so the emulation serves DynamoDB requests
    one at a time. Other services (an SQS long poll may wait for seconds) are not serialised."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))  # the whole body, before another request runs

    return serve


def _serve_moto(server: Any) -> None:
    """moto's ThreadedMotoServer entry point, with DynamoDB requests serialised."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = _serialised_dynamodb(DomainDispatcherApplication(create_backend_app))
    server._server = make_server(server._ip_address, server._port, app, True, request_handler=MotoRequestHandler)
    server._server_ready_event.set()
    server._server.serve_forever()


@dataclass
class MotoServer:
    """moto in server mode, in this process: DynamoDB and SQS over their real wire protocols."""

    port: int = 0
    _server: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        use_dummy_aws_credentials()
        self.port = self.port or free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server._server_entry = lambda: _serve_moto(server)  # type: ignore[method-assign]
        server.start()
        self._server = server
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux kills it when the process that started it dies, so a
    crashed or killed runner never leaves a redis-server behind."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:  # not Linux/glibc: stop() still ends it on a normal exit
        pass


@dataclass
class RedisServer:
    """A real redis-server child process on loopback, with persistence off."""

    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, workdir: Path | None = None) -> RedisServer:
        self.port = self.port or free_port()
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            args,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None
