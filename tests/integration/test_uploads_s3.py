"""Presigned uploads against moto's server: a real presigned POST to moto's S3, its ObjectCreated
notification through moto's SQS to the emulator's S3 event source, the ingest handler (parsing the
S3 event with Powertools' model), the uploads ledger's conditional writes in DynamoDB, and the S3
index the file lands in."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from functions.ingest import handler as ingest_function
from local.emulator.config import ApiConfig, EventSourceMapping, FunctionConfig
from local.emulator.emulator import Emulator
from local.run import create_upload_events
from local.services import MotoServer
from shared.aws_clients import aws_client
from shared.ingest.s3_uploads import S3UploadBucket
from shared.ingest.service import IngestLimits, KnowledgeIngestion
from shared.ingest.uploads import UploadPolicy, UploadRequest, Uploads, UploadView
from shared.knowledge.aws_storage import create_bucket
from shared.knowledge.factory import build_index
from shared.knowledge.search import KnowledgeService
from shared.settings import Settings
from shared.state.dynamodb import DynamoStateStore
from shared.state.records import Tenant
from shared.state.tables import KnowledgePointerModel
from shared.state.uploads import DynamoUploadLedger
from shared.tenant_config.retrieval import RetrievalConfig
from tests import events
from tests.integration.conftest import fresh_tables
from tests.support.knowledge_samples import make_pdf
from tests.unit.test_knowledge_local_index import FakeEmbedder

pytestmark = pytest.mark.integration

# The emulator imports its handler by name: this one runs the real ingest handler on the test's adapters.
CURRENT: dict[str, Uploads] = {}


def ingest_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(ingest_function.handler(event, context, uploads=CURRENT["uploads"]))


@pytest.fixture
def stack(moto_server: MotoServer, tmp_path: Path) -> Iterator[tuple[Uploads, Settings, KnowledgeService]]:
    name = f"it-{uuid.uuid4().hex[:10]}"
    settings = fresh_tables(moto_server).model_copy(
        update={
            "knowledge_backend": "s3",
            "s3_endpoint": moto_server.url,
            "knowledge_bucket": f"{name}-knowledge",
            "knowledge_table": f"{name}-pointers",
            "knowledge_cache_dir": tmp_path / "cache",
            "uploads_bucket": f"{name}-uploads",
            "ingest_isolated": False,
        }
    )
    KnowledgePointerModel.Meta.table_name = settings.knowledge_table
    KnowledgePointerModel.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    create_bucket(settings)
    store = DynamoStateStore(settings)
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    knowledge = KnowledgeService(build_index(settings, FakeEmbedder()), default_threshold=0.0, default_k=4)
    ingestion = KnowledgeIngestion(store, knowledge, IngestLimits.from_settings(settings, parse_seconds=30))
    s3 = aws_client("s3", region=settings.aws_region, endpoint_url=moto_server.url, path_style=True)
    uploads = Uploads(
        DynamoUploadLedger(settings.limits_table, settings.dynamodb_endpoint, settings.aws_region),
        S3UploadBucket(s3, settings.uploads_bucket),
        store,
        UploadPolicy(max_bytes=settings.max_upload_bytes, url_seconds=900, attempt_seconds=600),
        lambda: ingestion,
    )
    CURRENT["uploads"] = uploads
    queue_url = create_upload_events(moto_server.url, moto_server.url, settings.aws_region, settings.uploads_bucket)
    config = ApiConfig(
        functions={"ingest": FunctionConfig(handler=f"{__name__}:ingest_handler", timeout_seconds=60)},
        event_source_mappings=[EventSourceMapping(queue_url=queue_url, function="ingest", payload="s3", batch_size=1)],
        sqs_endpoint=moto_server.url,
    )
    with Emulator(config).run_in_thread():
        yield uploads, settings, knowledge


def post(uploads: Uploads, filename: str, data: bytes, content_type: str) -> str:
    ticket = uploads.start("acme", UploadRequest(filename=filename, content_type=content_type, size=len(data)))
    sent = httpx.post(ticket.url, data=ticket.fields, files={"file": (filename, data, content_type)})
    assert sent.status_code == 204, sent.text
    return ticket.upload_id


def settled(uploads: Uploads, upload_id: str, timeout: float = 60) -> UploadView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = uploads.view("acme", upload_id)
        if view.status in ("indexed", "failed"):
            return view
        time.sleep(0.2)
    raise AssertionError(f"upload {upload_id} still {uploads.view('acme', upload_id).status}")


def test_a_presigned_post_is_ingested_from_moto_s3s_event(stack: tuple[Uploads, Settings, KnowledgeService]) -> None:
    uploads, settings, knowledge = stack
    pdf = make_pdf([["# Zephyr kettle", "The Zephyr kettle boils 1.7 litres in three minutes."]], photo_bytes=500_000)
    upload_id = post(uploads, "zephyr manual.pdf", pdf, "application/pdf")
    view = settled(uploads, upload_id)
    assert (view.status, view.document_id, view.error) == ("indexed", "zephyr manual.pdf", None)
    found = knowledge.search("acme", RetrievalConfig(min_answer_score=0.0), "how long does the Zephyr kettle boil", 1)
    assert found.passages and found.passages[0].document_id == "zephyr manual.pdf"
    # The raw upload is gone from the bucket once indexed.
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name=settings.aws_region)
    assert "Contents" not in client.list_objects_v2(Bucket=settings.uploads_bucket)


def test_a_redelivered_event_and_a_bad_file(stack: tuple[Uploads, Settings, KnowledgeService]) -> None:
    uploads, settings, knowledge = stack
    upload_id = post(uploads, "faq.md", b"# Returns\n\nReturns are free within 30 days.\n", "text/markdown")
    assert settled(uploads, upload_id).status == "indexed"
    version = knowledge.index.version("acme")
    key = f"uploads/acme/{upload_id}/faq.md"
    again = ingest_function.handler(events.s3_object_created(key), events.lambda_context(), uploads=uploads)
    assert again == {"outcomes": ["duplicate"]} and knowledge.index.version("acme") == version
    bad = post(uploads, "manual.pdf", b"%PDF-1.7\n" + b"garbage " * 100, "application/pdf")
    view = settled(uploads, bad)
    assert view.status == "failed" and view.error is not None and view.error.code == "corrupt_file"
    assert knowledge.index.version("acme") == version  # nothing of it stored


def test_the_ledger_lets_exactly_one_of_two_deliveries_claim_an_upload(
    stack: tuple[Uploads, Settings, KnowledgeService],
) -> None:
    uploads, _, _ = stack
    ticket = uploads.start("acme", UploadRequest(filename="a.md", content_type="text/markdown", size=10))
    record = uploads.ledger.get("acme", ticket.upload_id)
    assert record is not None
    won: list[bool] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        claimed = uploads.ledger.replace(record.model_copy(update={"status": "parsing"}), 3600)
        won.append(claimed is not None)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False, False, False, True]
