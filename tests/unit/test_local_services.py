"""The local moto server serves DynamoDB requests one at a time (DynamoDB makes each request atomic)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.services import _serialised_dynamodb


class ConcurrencyProbeApp:
    """A WSGI app (fake: unit test only) that records how many requests run inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self._guard = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._guard:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.02)
        with self._guard:
            self.inside -= 1
        start_response("200 OK", [])
        return [b"{}"]


def run_concurrently(target: str) -> int:
    probe = ConcurrencyProbeApp()
    app = _serialised_dynamodb(probe)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: app({"HTTP_X_AMZ_TARGET": target}, lambda *a: None), range(12)))
    return probe.most


def test_dynamodb_requests_never_overlap() -> None:
    assert run_concurrently("DynamoDB_20120810.TransactWriteItems") == 1


def test_other_services_are_not_serialised() -> None:
    assert run_concurrently("AmazonSQS.ReceiveMessage") > 1


def test_only_requests_that_may_change_state_make_a_snapshot_due(tmp_path: Any) -> None:
    from local.services import MotoSnapshots

    snapshots = MotoSnapshots(tmp_path / "state.pickle")
    app = _serialised_dynamodb(ConcurrencyProbeApp(), snapshots)

    def dirty_after(environ: dict[str, Any]) -> bool:
        snapshots._saved_version = snapshots._version  # as if just saved
        app(environ, lambda *a: None)
        return snapshots.dirty

    # S3 (REST, no target header): reads leave the state clean, writes do not
    assert not dirty_after({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket/key"})
    assert not dirty_after({"REQUEST_METHOD": "HEAD", "PATH_INFO": "/bucket"})
    assert dirty_after({"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket/key"})
    assert dirty_after({"REQUEST_METHOD": "POST", "PATH_INFO": "/bucket", "QUERY_STRING": "delete"})
    assert not dirty_after({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"})
    assert dirty_after({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"})
