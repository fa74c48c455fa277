"""Backing services of the local emulation: moto's server (DynamoDB, SQS, S3) and a redis-server process."""

from __future__ import annotations

import copyreg
import io
import logging
import os
import pickle
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


# DynamoDB requests are served one at a time under this lock (``_serialised_dynamodb``); a snapshot
# of moto's state (``MotoSnapshots``) is taken under it too, so it never holds half a request.
_DYNAMODB_LOCK = threading.Lock()

# Requests that change nothing: they do not make the state dirty (an idle queue's long polls are
# ReceiveMessage calls that find nothing; a receive that finds a message is covered by its delete).
_READ_ONLY_TARGETS = frozenset(
    {
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.BatchGetItem",
        "DynamoDB_20120810.Query",
        "DynamoDB_20120810.Scan",
        "DynamoDB_20120810.TransactGetItems",
        "DynamoDB_20120810.DescribeTable",
        "DynamoDB_20120810.ListTables",
        "DynamoDB_20120810.DescribeTimeToLive",
        "AmazonSQS.ReceiveMessage",
        "AmazonSQS.GetQueueAttributes",
        "AmazonSQS.GetQueueUrl",
        "AmazonSQS.ListQueues",
    }
)


def _serialised_dynamodb(app: Any, snapshots: MotoSnapshots | None = None) -> Any:
    """moto's DynamoDB has no locks: two requests at once can interleave inside a TransactWriteItems
    or a Query. DynamoDB itself makes each request atomic, so the emulation serves DynamoDB requests
    one at a time. Other services (an SQS long poll may wait for seconds) are not serialised.
    With ``snapshots``, every request that may change state marks it dirty, and ``POST /_kefu/snapshot``
    writes a snapshot at once."""

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        # S3 (REST: no target header) reads change nothing either.
        read_only = target in _READ_ONLY_TARGETS or (not target and environ.get("REQUEST_METHOD") in ("GET", "HEAD"))
        if snapshots is not None:
            if environ.get("PATH_INFO") == "/_kefu/snapshot" and environ.get("REQUEST_METHOD") == "POST":
                snapshots.save()
                start_response("204 No Content", [])
                return [b""]
            if not snapshots.admit():
                # Shutting down: the last snapshot is being taken, so nothing may change after it.
                # Clients see what a restarting service answers, and retry.
                start_response("503 Service Unavailable", [("Content-Type", "application/x-amz-json-1.0")])
                return [b'{"__type":"ServiceUnavailable","message":"moto is restarting"}']
            try:
                if not read_only:
                    snapshots.changed()
                return _serve(environ, start_response, target)
            finally:
                snapshots.done()
        return _serve(environ, start_response, target)

    def _serve(environ: dict[str, Any], start_response: Any, target: str) -> Any:
        if not target.startswith("DynamoDB_"):
            return list(app(environ, start_response))
        with _DYNAMODB_LOCK:
            return list(app(environ, start_response))  # the whole body, before another request runs

    return serve


def _fresh_lock(lock: Any) -> Any:
    """Locks cannot be pickled; a restored object gets a new one of the same kind."""
    return (type(lock), ())


def _fresh_condition(_: threading.Condition) -> Any:
    return (threading.Condition, ())


class MotoSnapshots:
    """moto's DynamoDB, SQS and S3 state, pickled to one file and restored from it.

    moto keeps its state in per-service backend objects (``dynamodb_backends[account][region]``); they
    are plain Python objects apart from their locks (re-created on restore), so a pickle of them is a
    faithful copy: tables with their items, indexes and TTL settings, queues with their messages,
    attributes and FIFO deduplication records. The handlers keep talking to moto over the real
    DynamoDB and SQS wire protocols; only moto's process loads and saves.

    A snapshot is written to a temporary file, flushed to disk and renamed over the previous one, so a
    crash while writing leaves the previous snapshot whole. It is taken under the lock that serialises
    DynamoDB requests; SQS requests are not serialised (a long poll may wait), so an SQS message
    received or deleted during a snapshot may be caught before or after that change, never half."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version = 0
        self._saved_version = 0
        self._save_lock = threading.Lock()
        self._requests = threading.Condition()
        self._in_flight = 0
        self._closing = False

    def admit(self) -> bool:
        """A request starts (False once closing: it must be refused)."""
        with self._requests:
            if self._closing:
                return False
            self._in_flight += 1
            return True

    def done(self) -> None:
        with self._requests:
            self._in_flight -= 1
            self._requests.notify_all()

    def close(self, timeout: float = 25.0) -> None:
        """Refuse new requests, wait for those in flight (an SQS long poll may take a while), then
        take the last snapshot: an acknowledged write is never left out of it."""
        with self._requests:
            self._closing = True
            self._requests.wait_for(lambda: self._in_flight == 0, timeout)
        self.save()

    @staticmethod
    def _backends(with_s3: bool) -> dict[str, Any]:
        """moto's backends; S3's only when asked (its import costs a restart ~0.2 s: S3 is imported
        when the first S3 request arrives, so a moto that never served S3 has no S3 state)."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.sqs.models import sqs_backends

        backends = {"dynamodb": dynamodb_backends, "sqs": sqs_backends}
        if with_s3:
            from moto.s3.models import s3_backends

            backends["s3"] = s3_backends
        return backends

    def changed(self) -> None:
        self._version += 1

    @property
    def dirty(self) -> bool:
        return self._version != self._saved_version

    def _dump(self) -> bytes:
        state = {
            service: {account: dict(regions.items()) for account, regions in backends.items()}
            for service, backends in self._backends(with_s3="moto.s3.models" in sys.modules).items()
        }
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        table = copyreg.dispatch_table.copy()
        table[threading.Condition] = _fresh_condition
        table[type(threading.Lock())] = _fresh_lock
        table[type(threading.RLock())] = _fresh_lock
        pickler.dispatch_table = table
        pickler.dump(state)
        return buffer.getvalue()

    def save(self) -> None:
        with self._save_lock:
            version = self._version
            for attempt in range(5):
                try:
                    with _DYNAMODB_LOCK:
                        data = self._dump()
                    break
                except RuntimeError:  # an SQS request changed a dict while it was pickled: again
                    if attempt == 4:
                        raise
            partial = self.path.with_name(self.path.name + ".tmp")
            with partial.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            partial.replace(self.path)
            self._saved_version = version

    def restore(self, release_in_flight: bool) -> bool:
        """Load the snapshot if there is one. ``release_in_flight``: SQS messages received by a
        consumer that no longer exists (the whole stack restarted) become visible at once, instead of
        after their visibility timeout."""
        if not self.path.exists():
            return False
        try:
            with self.path.open("rb") as file:
                state = pickle.load(file)  # noqa: S301 - our own file, in the state directory
        except Exception:  # e.g. written by another moto version: keep it aside, start empty
            aside = self.path.with_name(self.path.name + ".unreadable")
            self.path.replace(aside)
            logging.getLogger("kefu.local.moto").exception("cannot restore %s (kept as %s)", self.path, aside)
            return False
        backends = self._backends(with_s3="s3" in state)
        for service, accounts in state.items():
            for account, regions in accounts.items():
                for region, backend in regions.items():
                    backends[service][account][region] = backend
        if release_in_flight:
            for regions in state.get("sqs", {}).values():
                for backend in regions.values():
                    for queue in backend.queues.values():
                        for message in queue._messages:
                            message.visible_at = 0.0
                        queue._pending_messages.clear()
        return True

    def save_periodically(self, interval_seconds: float) -> None:
        """A daemon thread that saves the state every ``interval_seconds`` when it changed, so that a
        killed moto (``kill -9``, a crash) loses at most that much."""

        def loop() -> None:
            while True:
                time.sleep(interval_seconds)
                if self.dirty:
                    try:
                        self.save()
                    except Exception:  # the next round tries again; the last good snapshot stays
                        logging.getLogger("kefu.local.moto").exception("snapshot failed")

        threading.Thread(target=loop, name="moto-snapshots", daemon=True).start()


def _moto_app(snapshots: MotoSnapshots | None = None) -> Any:
    """moto's WSGI app, with DynamoDB, SQS and S3 requests (what kefu calls) routed straight to their
    backends: moto's dispatcher works out the service of every request anew (it lists its own
    package directory each time, under a global lock), a sixth of its time per request here."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    dispatcher = DomainDispatcherApplication(create_backend_app)
    dynamodb, sqs = create_backend_app("dynamodb"), create_backend_app("sqs")
    s3: list[Any] = []  # created by the first S3 request (see MotoSnapshots._backends)

    def route(environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            return dynamodb(environ, start_response)
        if target.startswith("AmazonSQS."):
            return sqs(environ, start_response)
        if "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):  # SigV4's credential scope
            if not s3:
                s3.append(create_backend_app("s3"))
            return s3[0](environ, start_response)
        return dispatcher(environ, start_response)

    return _serialised_dynamodb(route, snapshots)


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
    """moto in server mode: DynamoDB, SQS and S3 over their real wire protocols.

    In a child process of its own: moto is pure Python, and in the caller's process its request
    handling would compete with the handlers for one interpreter lock (the emulator runs every handler
    in one process; in AWS DynamoDB and SQS are services). The child dies with the thread that started
    it (start it from one that outlives it, as the runner's main thread does)."""

    port: int = 0
    # With a state file: restored from it on start, saved to it every ``snapshot_seconds`` when it
    # changed and on a normal stop (SIGTERM). Without: in memory only.
    state_file: Path | None = None
    snapshot_seconds: float = 2.0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def launch(self, release_in_flight: bool = False) -> MotoServer:
        """Start moto's process (``release_in_flight``: see ``MotoSnapshots.restore``)."""
        use_dummy_aws_credentials()
        self.port = self.port or free_port()
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "local.services", "moto", "--port", str(self.port)]
        if self.state_file is not None:
            command += ["--state-file", str(self.state_file), "--snapshot-seconds", str(self.snapshot_seconds)]
            if release_in_flight:
                command.append("--release-in-flight")
        self._process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self) -> MotoServer:
        """Until moto listens (any thread may wait; ``launch`` must run on one that outlives moto)."""
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError:
            self.stop()
            raise
        return self

    def start(self, release_in_flight: bool = False) -> MotoServer:
        return self.launch(release_in_flight).wait_ready()

    def snapshot(self) -> None:
        """Write the state file now (no-op without one)."""
        if self.state_file is not None and self.running:
            import urllib.request

            urllib.request.urlopen(urllib.request.Request(f"{self.url}/_kefu/snapshot", method="POST"), timeout=30)

    def stop(self) -> None:
        """SIGTERM: moto saves its state file (if any) and exits."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
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

    parser = argparse.ArgumentParser(prog="python -m local.services")
    parser.add_argument("service", choices=["moto"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, default=None, help="restore from / save to this file")
    parser.add_argument("--snapshot-seconds", type=float, default=2.0)
    parser.add_argument("--release-in-flight", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from waitress import serve

    _cheap_dynamodb_transactions()
    snapshots = MotoSnapshots(args.state_file) if args.state_file else None
    if snapshots is not None:
        snapshots.restore(release_in_flight=args.release_in_flight)
        snapshots.save_periodically(args.snapshot_seconds)
    app = _moto_app(snapshots)
    # waitress keeps HTTP/1.1 connections open (werkzeug's development server closes every one, so
    # each DynamoDB or SQS call paid a new TCP connection and a new server thread).
    logging.getLogger("waitress").setLevel(logging.ERROR)
    try:
        serve(app, host="127.0.0.1", port=args.port, threads=8, ident=None, _quiet=True)
    finally:
        if snapshots is not None:
            snapshots.close()


if __name__ == "__main__":
    _main()
