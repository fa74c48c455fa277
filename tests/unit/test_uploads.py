"""Presigned uploads (shared/ingest/uploads.py) on in-memory fakes: what the admin API refuses before
handing out a URL, the ingest function's S3 event → parse → index → status, exactly once under
redelivery, nothing stored for a bad file, retries after unexpected errors, and the admin routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.ingest import handler as ingest_handler
from shared.admin.routes import knowledge as routes
from shared.ingest.errors import FileRejected
from shared.ingest.service import IngestLimits, KnowledgeIngestion
from shared.ingest.uploads import IngestRetry, UploadPolicy, UploadRequest, Uploads
from shared.knowledge.base import Document
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.search import KnowledgeService
from shared.settings import get_settings
from shared.state.records import Tenant
from tests import events
from tests.unit.admin_support import admin_client
from tests.unit.fakes import FakeUploadBucket, InMemoryStateStore, InMemoryUploadLedger
from tests.unit.test_knowledge_local_index import FakeEmbedder

FAQ = b"# Shipping\n\nWe ship to Norway within 5 working days. Express delivery takes 2 days.\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    for tenant in ("acme", "other"):
        store.put_tenant(Tenant(tenant_id=tenant, name=tenant, widget_key=f"wk_{tenant}", created_at=0))
    return store


@pytest.fixture
def knowledge(tmp_path: Path) -> KnowledgeService:
    return KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.35, default_k=4)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bucket() -> FakeUploadBucket:
    return FakeUploadBucket()


@pytest.fixture
def ledger() -> InMemoryUploadLedger:
    return InMemoryUploadLedger()


@pytest.fixture
def uploads(
    store: InMemoryStateStore,
    knowledge: KnowledgeService,
    bucket: FakeUploadBucket,
    ledger: InMemoryUploadLedger,
    clock: Clock,
) -> Uploads:
    ingestion = KnowledgeIngestion(store, knowledge, IngestLimits.from_settings(get_settings(), parse_seconds=30))
    policy = UploadPolicy(max_bytes=1_000_000, url_seconds=900, attempt_seconds=600)
    return Uploads(ledger, bucket, store, policy, lambda: ingestion, clock=clock)


def request(filename: str = "shipping.md", content_type: str = "text/markdown", size: int = len(FAQ)) -> UploadRequest:
    return UploadRequest(filename=filename, content_type=content_type, size=size)


def deliver(uploads: Uploads, key: str) -> dict[str, Any]:
    return dict(ingest_handler.handler(events.s3_object_created(key), events.lambda_context(), uploads=uploads))


@pytest.mark.parametrize(
    ("filename", "content_type", "size", "status", "code"),
    [
        ("../etc/passwd.md", "text/markdown", 10, 400, "bad_filename"),
        ("a\x00b.md", "text/markdown", 10, 400, "bad_filename"),
        ("manual.doc", "application/msword", 10, 415, "unsupported_file_type"),
        ("slides.key", "application/octet-stream", 10, 415, "unsupported_file_type"),
        ("empty.md", "text/markdown", 0, 422, "empty_file"),
        ("huge.pdf", "application/pdf", 1_000_001, 413, "file_too_large"),
        ("manual.pdf", "text/html", 10, 415, "unsupported_file_type"),
        ("manual.pdf", "not a type", 10, 400, "bad_content_type"),
    ],
)
def test_a_declared_file_that_cannot_be_ingested_gets_no_url(
    uploads: Uploads, bucket: FakeUploadBucket, filename: str, content_type: str, size: int, status: int, code: str
) -> None:
    with pytest.raises(FileRejected) as refused:
        uploads.start("acme", request(filename, content_type, size))
    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.message and not bucket.allowed


def test_a_ticket_allows_one_key_under_the_tenants_prefix_and_the_declared_size(
    uploads: Uploads, bucket: FakeUploadBucket
) -> None:
    ticket = uploads.start("acme", request("Manual 手册.pdf", "application/pdf", 7_000_000 // 10))
    assert ticket.key == f"uploads/acme/{ticket.upload_id}/Manual 手册.pdf"
    assert bucket.allowed == {ticket.key: ("application/pdf", 700_000)}
    assert ticket.max_bytes == 700_000 and ticket.fields["key"] == ticket.key
    assert uploads.view("acme", ticket.upload_id).status == "pending"
    # An upload id is only found under its own tenant.
    with pytest.raises(Exception, match="no upload"):
        uploads.view("other", ticket.upload_id)


def test_an_uploaded_file_is_indexed_from_its_event_and_reported(
    uploads: Uploads, bucket: FakeUploadBucket, knowledge: KnowledgeService
) -> None:
    ticket = uploads.start("acme", request())
    bucket.post(ticket.key, FAQ)
    assert deliver(uploads, ticket.key.replace(" ", "+")) == {"outcomes": ["indexed"]}
    view = uploads.view("acme", ticket.upload_id)
    assert (view.status, view.document_id, view.error) == ("indexed", "shipping.md", None)
    assert view.chunks and view.knowledge_version == knowledge.index.version("acme")
    found = knowledge.index.search_hits("acme", "ship to Norway", 4, keyword_weight=0.5)
    assert found.passages and found.passages[0].document_id == "shipping.md"
    assert ticket.key not in bucket.objects  # the raw upload is removed once indexed


def test_a_redelivered_event_does_not_ingest_twice(
    uploads: Uploads, bucket: FakeUploadBucket, knowledge: KnowledgeService
) -> None:
    ticket = uploads.start("acme", request())
    bucket.post(ticket.key, FAQ)
    deliver(uploads, ticket.key)
    version = knowledge.index.version("acme")
    assert deliver(uploads, ticket.key) == {"outcomes": ["duplicate"]}
    assert knowledge.index.version("acme") == version
    assert uploads.view("acme", ticket.upload_id).attempts == 1
    # The URL used again once the upload finished: that copy is removed, not ingested.
    bucket.post(ticket.key, FAQ)
    assert deliver(uploads, ticket.key) == {"outcomes": ["duplicate"]}
    assert ticket.key not in bucket.objects and knowledge.index.version("acme") == version


def test_a_malformed_file_is_reported_failed_and_nothing_is_stored(
    uploads: Uploads, bucket: FakeUploadBucket, knowledge: KnowledgeService
) -> None:
    ticket = uploads.start("acme", request("manual.pdf", "application/pdf", 100))
    bucket.post(ticket.key, b"%PDF-1.7 this is not really a PDF" + b"\x00" * 40)
    assert deliver(uploads, ticket.key) == {"outcomes": ["failed"]}
    view = uploads.view("acme", ticket.upload_id)
    assert view.status == "failed" and view.error is not None and view.error.code == "corrupt_file"
    assert "PDF" in view.error.message and view.document_id is None
    assert knowledge.index.version("acme") == "empty" and not knowledge.index.documents("acme")
    assert ticket.key not in bucket.objects


def test_objects_not_written_through_a_ticket_are_never_ingested(
    uploads: Uploads, bucket: FakeUploadBucket, knowledge: KnowledgeService
) -> None:
    ticket = uploads.start("acme", request())
    # Another tenant's prefix with acme's upload id, a made-up id, a key outside the prefix.
    for key in (
        f"uploads/other/{ticket.upload_id}/shipping.md",
        "uploads/acme/up_madeup/shipping.md",
        f"uploads/acme/{ticket.upload_id}/renamed.md",
        "elsewhere.md",
    ):
        bucket.objects[key] = FAQ
        assert deliver(uploads, key) == {"outcomes": ["unknown_object"]}
        assert key not in bucket.objects
    assert knowledge.index.version("acme") == knowledge.index.version("other") == "empty"
    assert uploads.view("acme", ticket.upload_id).status == "pending"


def test_an_object_larger_than_declared_is_refused(uploads: Uploads, bucket: FakeUploadBucket) -> None:
    """S3 enforces the declared size; an emulator that does not (moto) still gets this answer."""
    ticket = uploads.start("acme", request(size=10))
    bucket.objects[ticket.key] = FAQ
    deliver(uploads, ticket.key)
    view = uploads.view("acme", ticket.upload_id)
    assert view.status == "failed" and view.error is not None and view.error.code == "file_too_large"


class FlakyIndex(LocalHybridIndex):
    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root, FakeEmbedder())
        self.failures = failures

    def index(self, tenant_id: str, documents: list[Document]) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("S3 is unreachable")
        return super().index(tenant_id, documents)


@pytest.mark.parametrize("failures", [1, 3])
def test_unexpected_errors_are_retried_with_the_event_then_reported(
    tmp_path: Path,
    store: InMemoryStateStore,
    bucket: FakeUploadBucket,
    ledger: InMemoryUploadLedger,
    failures: int,
) -> None:
    knowledge = KnowledgeService(FlakyIndex(tmp_path, failures), default_threshold=0.35, default_k=4)
    ingestion = KnowledgeIngestion(store, knowledge, IngestLimits.from_settings(get_settings()))
    policy = UploadPolicy(max_bytes=1_000_000, url_seconds=900, attempt_seconds=600, max_attempts=3)
    uploads = Uploads(ledger, bucket, store, policy, lambda: ingestion)
    ticket = uploads.start("acme", request())
    bucket.post(ticket.key, FAQ)
    outcomes = []
    for _ in range(3):  # the first delivery and Lambda's two retries of an asynchronous invocation
        try:
            outcomes += deliver(uploads, ticket.key)["outcomes"]
        except IngestRetry:
            outcomes.append("retry")
            assert uploads.view("acme", ticket.upload_id).status == "pending"
    view = uploads.view("acme", ticket.upload_id)
    if failures == 1:
        assert outcomes == ["retry", "indexed", "duplicate"] and view.status == "indexed"
    else:
        assert outcomes == ["retry", "retry", "failed"] and view.status == "failed"
        assert view.error is not None and view.error.code == "ingest_error"
        assert knowledge.index.version("acme") == "empty"


def test_an_attempt_that_died_is_reported_and_its_redelivery_takes_over(
    uploads: Uploads, bucket: FakeUploadBucket, ledger: InMemoryUploadLedger, clock: Clock
) -> None:
    ticket = uploads.start("acme", request())
    bucket.post(ticket.key, FAQ)
    record = ledger.get("acme", ticket.upload_id)
    assert record is not None
    # An attempt claimed it and was killed (timeout, crash) before finishing.
    ledger.replace(record.model_copy(update={"status": "parsing", "claimed_at": clock.now, "attempts": 1}), 1)
    assert deliver(uploads, ticket.key) == {"outcomes": ["duplicate"]}  # still within its time
    clock.now += 601
    view = uploads.view("acme", ticket.upload_id)
    assert view.status == "failed" and view.error is not None and view.error.code == "ingestion_stopped"
    assert deliver(uploads, ticket.key) == {"outcomes": ["indexed"]}
    assert uploads.view("acme", ticket.upload_id).status == "indexed"


@pytest.fixture
def client(
    store: InMemoryStateStore, knowledge: KnowledgeService, uploads: Uploads, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    overrides = {routes._knowledge: lambda: knowledge, routes._uploads: lambda: uploads}
    with admin_client(store, monkeypatch, overrides=overrides) as test_client:
        yield test_client


def test_the_admin_api_hands_out_uploads_and_reports_them(
    client: TestClient, uploads: Uploads, bucket: FakeUploadBucket
) -> None:
    base = "/v1/tenants/acme/knowledge/uploads"
    created = client.post(base, json={"filename": "shipping.md", "contentType": "text/markdown", "size": len(FAQ)})
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert set(ticket) >= {"uploadId", "url", "fields", "key", "maxBytes", "expiresAt", "method"}
    assert client.get(f"{base}/{ticket['uploadId']}").json()["status"] == "pending"
    bucket.post(ticket["key"], FAQ)
    deliver(uploads, ticket["key"])
    status = client.get(f"{base}/{ticket['uploadId']}").json()
    assert (status["status"], status["documentId"], status["error"]) == ("indexed", "shipping.md", None)
    refused = client.post(base, json={"filename": "old.doc", "contentType": "application/msword", "size": 5})
    assert refused.status_code == 415 and "save it as .docx" in refused.json()["error"]["message"]
    too_big = client.post(base, json={"filename": "big.pdf", "contentType": "application/pdf", "size": 10**9})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"
    assert client.get(f"{base}/up_nothing").status_code == 404
    assert client.post(base, json={"filename": "a.md"}).status_code == 422  # no size
