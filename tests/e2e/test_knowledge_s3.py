"""The knowledge index on S3 through the local stack (`make run`): the admin API writes versions to
moto's S3, the retrieve function (invoked as generate invokes it) searches them, and a second warm
function in another process, reading the same bucket and pointers, sees each change within seconds."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.services import use_dummy_aws_credentials
from shared.knowledge.factory import build_s3_index
from shared.knowledge.s3_index import BUNDLE_SUFFIX, S3HybridIndex
from shared.knowledge.use_embedder import shared_embedder
from shared.settings import Settings
from tests.e2e.client import LocalStackInfo

pytestmark = pytest.mark.e2e

PREFIX = "kefu-chunks-use-512/"
# Generous: the other function reads the pointer at most once a second; the machine may be busy.
VISIBLE_WITHIN_SECONDS = 15


def retrieve(stack: LocalStackInfo, tenant_id: str, query: str) -> dict[str, Any]:
    client = boto3.client("lambda", endpoint_url=stack.admin_url, region_name="us-east-1")
    response = client.invoke(FunctionName="kefu-retrieve", Payload=json.dumps({"tenantId": tenant_id, "query": query}))
    body: dict[str, Any] = json.loads(response["Payload"].read())
    return body


def documents_found(body: dict[str, Any]) -> set[str]:
    return {passage["documentId"] for passage in body["passages"]}


def another_function(stack: LocalStackInfo, cache: Path) -> S3HybridIndex:
    assert stack.s3_endpoint and stack.knowledge_bucket, "make run keeps the knowledge on (moto's) S3"
    settings = Settings(
        dynamodb_endpoint=stack.s3_endpoint,  # moto serves both
        knowledge_backend="s3",
        s3_endpoint=stack.s3_endpoint,
        knowledge_bucket=stack.knowledge_bucket,
        knowledge_cache_dir=cache,
    )
    index = build_s3_index(settings, shared_embedder())
    assert isinstance(index, S3HybridIndex)
    return index


def wait_for_version(index: S3HybridIndex, tenant_id: str, version: str, query: str) -> tuple[float, set[str]]:
    started = time.monotonic()
    while time.monotonic() - started < VISIBLE_WITHIN_SECONDS:
        hits = index.search_hits(tenant_id, query, 5)
        if hits.version == version:
            return time.monotonic() - started, {p.document_id for p in hits.passages}
        time.sleep(0.1)
    pytest.fail(f"version {version} not searched by the other function within {VISIBLE_WITHIN_SECONDS} s")


def test_upload_search_second_upload_and_delete_through_s3(local_stack: LocalStackInfo, tmp_path: Path) -> None:
    use_dummy_aws_credentials()  # moto takes any; boto3 signs with some
    marker = uuid.uuid4().hex[:6]
    kayaks = {"id": "kayaks", "title": "Kayak rental", "text": f"Kayaks rent for 40 euros a day, code {marker}."}
    bikes = {"id": "bikes", "title": "Bicycle hire", "text": "Bicycles are hired out for 15 euros a day with a helmet."}
    with local_stack.admin() as admin:
        tenant_id = admin.post("/v1/tenants", json={"name": "Lake rentals"}).json()["tenantId"]
        first = admin.post(f"/v1/tenants/{tenant_id}/knowledge", json={"documents": [kayaks]})
        assert first.status_code == 200
        first_version = first.json()["knowledgeVersion"]

        # Then the version is one object in the bucket, and retrieve searches it
        s3 = boto3.client("s3", endpoint_url=local_stack.s3_endpoint, region_name="us-east-1")
        listed = s3.list_objects_v2(Bucket=local_stack.knowledge_bucket, Prefix=f"{PREFIX}{tenant_id}/")
        assert [item["Key"] for item in listed["Contents"]] == [f"{PREFIX}{tenant_id}/{first_version}{BUNDLE_SUFFIX}"]
        body = retrieve(local_stack, tenant_id, "how much is a kayak for a day")
        assert body["knowledgeVersion"] == first_version and documents_found(body) == {"kayaks"}

        # Given another warm function (its own process memory and /tmp) that has searched it
        other = another_function(local_stack, tmp_path / "other-tmp")
        assert {p.document_id for p in other.search("acme-none", "kayak", 3)} == set()
        assert {p.document_id for p in other.search(tenant_id, "kayak rental price", 3)} == {"kayaks"}

        # When a second upload lands / Then both functions search it within seconds
        second = admin.post(f"/v1/tenants/{tenant_id}/knowledge", json={"documents": [bikes]})
        second_version = second.json()["knowledgeVersion"]
        assert second_version != first_version
        _, found = wait_for_version(other, tenant_id, second_version, "bicycle hire helmet")
        assert "bikes" in found
        body = retrieve(local_stack, tenant_id, "can I hire a bicycle")
        assert body["knowledgeVersion"] == second_version and "bikes" in documents_found(body)

        # When a document is deleted / Then that is a new version, without it, everywhere
        assert admin.delete(f"/v1/tenants/{tenant_id}/knowledge/kayaks").status_code in (200, 204)
        third_version = retrieve(local_stack, tenant_id, "kayak")["knowledgeVersion"]
        assert third_version not in (first_version, second_version)
        _, found = wait_for_version(other, tenant_id, third_version, "kayak rental price")
        assert "kayaks" not in found
        assert "kayaks" not in documents_found(retrieve(local_stack, tenant_id, "how much is a kayak for a day"))
        search = admin.get(f"/v1/tenants/{tenant_id}/knowledge/search", params={"q": "kayak rental"}).json()
        assert all(result["documentId"] != "kayaks" for result in search["results"])


def test_a_restored_demo_tenant_without_knowledge_gets_its_faq_again(local_stack: LocalStackInfo) -> None:
    # Given a tenant with no knowledge (a demo restored from a run whose knowledge was in plain files)
    from local.run import ensure_demo_knowledge

    with local_stack.admin() as admin:
        tenant_id = admin.post("/v1/tenants", json={"name": "Restored demo"}).json()["tenantId"]
        assert ensure_demo_knowledge(local_stack.admin_url, local_stack.admin_key, tenant_id) is True
        found = admin.get(f"/v1/tenants/{tenant_id}/knowledge/search", params={"q": "How long does delivery take?"})
        assert found.json()["results"]
        # and one that has knowledge is left alone
        version = admin.get(f"/v1/tenants/{tenant_id}/knowledge/version").json()["knowledgeVersion"]
        assert ensure_demo_knowledge(local_stack.admin_url, local_stack.admin_key, tenant_id) is False
        assert admin.get(f"/v1/tenants/{tenant_id}/knowledge/version").json()["knowledgeVersion"] == version
