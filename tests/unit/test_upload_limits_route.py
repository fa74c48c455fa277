"""The upload route applies the parse limits from settings: a bomb gets its own 413 naming the limit
while the other files of the request are indexed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.admin.routes import knowledge as routes
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.search import KnowledgeService
from shared.state.records import Tenant
from tests.support.knowledge_samples import faq_csv
from tests.support.upload_bombs import docx_expanding_to
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore
from tests.unit.test_knowledge_local_index import FakeEmbedder


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    knowledge = KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.35, default_k=4)
    env = {"KEFU_INGEST_MAX_UNPACKED_BYTES": str(8 * 1024 * 1024)}
    with admin_client(store, monkeypatch, overrides={routes._knowledge: lambda: knowledge}, env=env) as test_client:
        yield test_client


def test_a_zip_bomb_is_refused_with_the_configured_limit_and_the_rest_is_indexed(client: TestClient) -> None:
    files = [
        ("files", ("faq.csv", faq_csv(), "text/csv")),
        ("files", ("bomb.docx", docx_expanding_to(10), "application/octet-stream")),
    ]
    response = client.post("/v1/tenants/acme/knowledge/files", files=files)
    assert response.status_code == 207
    by_name = {f["filename"]: f for f in response.json()["files"]}
    assert by_name["faq.csv"]["status"] == 200
    bomb = by_name["bomb.docx"]
    assert (bomb["status"], bomb["error"]["code"]) == (413, "file_too_complex")
    assert f"the limit is {8 * 1024 * 1024} bytes" in bomb["error"]["message"]


def test_files_left_when_the_requests_parsing_time_is_spent_get_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.ingest import limits

    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    knowledge = KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.35, default_k=4)
    real_run = limits.run_bounded

    def slow(work, parse_limits, what):  # type: ignore[no-untyped-def]
        time.sleep(0.8)  # every file costs 0.8 s of the request's 1.5 s
        return real_run(work, parse_limits, what)

    monkeypatch.setattr("shared.ingest.files.run_bounded", slow)
    env = {"KEFU_INGEST_REQUEST_SECONDS": "1.5"}
    with admin_client(store, monkeypatch, overrides={routes._knowledge: lambda: knowledge}, env=env) as client:
        files = [("files", (f"note{n}.txt", f"Note {n} about returns.".encode(), "text/plain")) for n in range(4)]
        response = client.post("/v1/tenants/acme/knowledge/files", files=files)
    assert response.status_code == 207
    statuses = [(f["filename"], f["status"], (f["error"] or {}).get("code")) for f in response.json()["files"]]
    assert statuses[0] == ("note0.txt", 200, None)
    assert ("note3.txt", 503, "parse_time_exhausted") in statuses
    assert "1.5 s of parsing" in response.json()["files"][-1]["error"]["message"]
