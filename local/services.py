"""Backing services of the local emulation: moto's server (DynamoDB, SQS) and a redis-server process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
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


def _moto_app() -> Any:
    """moto's WSGI app, with DynamoDB and SQS requests (what kefu calls) routed straight to their
    backends: moto's dispatcher works out the service of every request anew (it lists its own
    package directory each time, under a global lock), a sixth of its time per request here."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dispatcher = DomainDispatcherApplication(create_backend_app)
    dynamodb, sqs = create_backend_app("dynamodb"), create_backend_app("sqs")

    def route(environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            return dynamodb(environ, start_response)
        if target.startswith("AmazonSQS."):
            return sqs(environ, start_response)
        return dispatcher(environ, start_response)

    return _serialised_dynamodb(route)


def _cheap_dynamodb_transactions() -> None:
    """moto's TransactWriteItems deep-copies every table it writes to, to roll back a cancelled
    transaction: its cost grows with the table (~3.5 ms per 100 items on this machine), so a long
    ``make run`` slowed down with every message, which DynamoDB does not. This backs up only the items
    the transaction names and restores them on failure (DynamoDB requests are served one at a time,
    see ``_serialised_dynamodb``, so nothing else sees the partial state)."""
    import copy

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "kefu_cheap", False):
        return
    module_globals = original.__globals__

    class TablesNotCopied:
        """The module's ``copy`` while a transaction runs: tables are not copied, everything else is."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            operation = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            table = self.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
            key = (operation.get("Key") or operation.get("Item")) if isinstance(operation, dict) else None
            if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
                continue
            if table.range_key_attr is not None and table.range_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            backups.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        module_copy = module_globals["copy"]
        module_globals["copy"] = TablesNotCopied()
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(backups):
                if item is None:
                    table.delete_item(hash_value, range_value)
                elif range_value is not None:
                    table.items[hash_value][range_value] = item
                else:
                    table.items[hash_value] = item
            raise
        finally:
            module_globals["copy"] = module_copy

    transact_write_items.kefu_cheap = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


@dataclass
class MotoServer:
    """moto in server mode: DynamoDB and SQS over their real wire protocols.

    In a child process of its own: moto is pure Python, and in the caller's process its request
    handling would compete with the handlers for one interpreter lock (the emulator runs every handler
    in one process; in AWS DynamoDB and SQS are services). The child dies with the thread that started
    it (start it from one that outlives it, as the runner's main thread does)."""

    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        use_dummy_aws_credentials()
        self.port = self.port or free_port()
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.services", "moto", "--port", str(self.port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None


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


def _main() -> None:
    """``python -m local.services moto --port N``: the moto server ``MotoServer`` starts."""
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m local.services")
    parser.add_argument("service", choices=["moto"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from waitress import serve

    _cheap_dynamodb_transactions()
    app = _moto_app()
    # waitress keeps HTTP/1.1 connections open (werkzeug's development server closes every one, so
    # each DynamoDB or SQS call paid a new TCP connection and a new server thread).
    logging.getLogger("waitress").setLevel(logging.ERROR)
    serve(app, host="127.0.0.1", port=args.port, threads=8, ident=None, _quiet=True)


if __name__ == "__main__":
    _main()
