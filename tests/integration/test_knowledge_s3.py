"""The S3-backed index against moto's server: S3 objects over the S3 wire protocol, version pointers
with DynamoDB conditional writes; two index instances stand for two functions (admin writes, retrieve
reads), each with its own /tmp."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from local.services import MotoServer
from shared.knowledge.aws_storage import create_bucket
from shared.knowledge.base import EMPTY_VERSION, Document
from shared.knowledge.factory import build_index
from shared.knowledge.s3_index import BUNDLE_SUFFIX, S3HybridIndex
from shared.settings import Settings
from shared.state.tables import KnowledgePointerModel, bind_models
from tests.unit.test_knowledge_local_index import DOCS, FakeEmbedder

pytestmark = pytest.mark.integration


def create_pointer_table(settings: Settings) -> None:
    """Only the knowledge table (the other tables of the state layer play no part here)."""
    bind_models(settings)
    KnowledgePointerModel.create_table(billing_mode="PAY_PER_REQUEST", wait=True)


@pytest.fixture
def s3_settings(moto_server: MotoServer) -> Settings:
    name = f"it-{uuid.uuid4().hex[:10]}"
    configured = Settings(
        dynamodb_endpoint=moto_server.url,
        knowledge_backend="s3",
        s3_endpoint=moto_server.url,
        knowledge_bucket=name,
        knowledge_table=f"{name}-knowledge",
        knowledge_version_ttl_seconds=0.2,
    )
    create_pointer_table(configured)
    create_bucket(configured)
    return configured


def function(settings: Settings, tmp: Path, name: str) -> S3HybridIndex:
    """One function's index: its own /tmp."""
    index = build_index(settings.model_copy(update={"knowledge_cache_dir": tmp / name}), FakeEmbedder())
    assert isinstance(index, S3HybridIndex)
    return index


def stored_keys(settings: Settings) -> list[str]:
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name=settings.aws_region)
    listed = client.list_objects_v2(Bucket=settings.knowledge_bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_an_upload_is_stored_in_s3_and_a_warm_reader_sees_the_next_one_within_its_ttl(
    s3_settings: Settings, tmp_path: Path
) -> None:
    admin, retrieve = function(s3_settings, tmp_path, "admin"), function(s3_settings, tmp_path, "retrieve")
    assert retrieve.version("acme") == EMPTY_VERSION
    first = admin.index("acme", DOCS[:1]).version
    assert stored_keys(s3_settings) == [f"kefu-chunks-use-512/acme/{first}{BUNDLE_SUFFIX}"]
    pointer = KnowledgePointerModel.get("kefu-chunks-use-512/acme", consistent_read=True)
    assert (pointer.version, pointer.previous) == (first, None)
    # the reader is warm on the first version
    time.sleep(0.25)
    assert [p.document_id for p in retrieve.search("acme", "return refund", 3)] == ["returns"]
    second = admin.index("acme", [DOCS[1]]).version
    deadline = time.monotonic() + 5
    while retrieve.version("acme") != second and time.monotonic() < deadline:
        time.sleep(0.05)
    hits = retrieve.search_hits("acme", "standard delivery working days", 3)
    assert hits.version == second and hits.passages[0].document_id == "shipping"


def test_concurrent_uploads_to_one_tenant_keep_every_document(s3_settings: Settings, tmp_path: Path) -> None:
    writers = [function(s3_settings, tmp_path, f"admin{n}") for n in range(3)]
    documents = [Document(id=f"doc{n}", title=f"Topic {n}", text=f"Fact {n} about parcels.") for n in range(6)]
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        try:
            writers[n % 3].index("acme", [documents[n]])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reader = function(s3_settings, tmp_path, "retrieve")
    time.sleep(0.25)
    assert {p.document_id for p in reader.search("acme", "fact about parcels", 20)} == {d.id for d in documents}


def test_a_delete_is_a_new_version_and_old_versions_are_removed(s3_settings: Settings, tmp_path: Path) -> None:
    admin = function(s3_settings, tmp_path, "admin")
    admin.keep_seconds = 0  # no writer of this test is still running
    versions = [admin.index("acme", DOCS).version]
    assert admin.delete_document("acme", "returns") is True
    versions.append(admin.version("acme"))
    assert admin.delete_document("acme", "shipping") is True
    versions.append(admin.version("acme"))
    assert len(set(versions)) == 3
    # only the current and the previous version stay
    assert stored_keys(s3_settings) == sorted(f"kefu-chunks-use-512/acme/{v}{BUNDLE_SUFFIX}" for v in versions[1:])
    reader = function(s3_settings, tmp_path, "retrieve")
    assert {p.document_id for p in reader.search("acme", "return refund delivery 发票", 5)} == {"invoice"}


def test_the_index_survives_a_restart_of_motos_persisted_state(tmp_path: Path) -> None:
    server = MotoServer(state_file=tmp_path / "moto.pickle").start()
    try:
        settings = Settings(
            dynamodb_endpoint=server.url,
            knowledge_backend="s3",
            s3_endpoint=server.url,
            knowledge_bucket="kefu-persisted",
            knowledge_table="persisted-knowledge",
        )
        create_pointer_table(settings)
        create_bucket(settings)
        version = function(settings, tmp_path, "admin").index("acme", DOCS).version
        server.stop()  # saves the state file
        server.start()
        reader = function(settings, tmp_path, "retrieve")
        hits = reader.search_hits("acme", "return an item for a refund", 1)
        assert hits.version == version and hits.passages[0].document_id == "returns"
    finally:
        server.stop()
