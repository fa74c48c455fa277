"""The admin API's knowledge routes (in-process ASGI: FastAPI's TestClient, no sockets): JSON and
multipart ingestion with per-file errors, the recall-test search, calibration, delete, version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.admin.routes import knowledge as routes
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.search import KnowledgeService
from shared.state.records import Tenant
from tests.support.knowledge_samples import faq_csv, make_docx, make_pdf
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore
from tests.unit.test_knowledge_local_index import FakeEmbedder

BASE = "/v1/tenants/acme/knowledge"


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    return store


@pytest.fixture
def knowledge(tmp_path: Path) -> KnowledgeService:
    return KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.35, default_k=4)


@pytest.fixture
def client(
    store: InMemoryStateStore, knowledge: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    overrides = {routes._knowledge: lambda: knowledge}
    env = {"KEFU_MAX_UPLOAD_BYTES": "200000"}
    with admin_client(store, monkeypatch, overrides=overrides, env=env) as test_client:
        yield test_client


def test_json_ingest_returns_the_knowledge_version(client: TestClient, knowledge: KnowledgeService) -> None:
    documents = [
        {"id": "returns", "title": "Returns", "text": "Return unused items within 30 days."},
        {
            "id": "faq",
            "title": "FAQ",
            "blocks": [{"kind": "qa", "questions": ["Do you ship abroad?", "international shipping"], "text": "Yes."}],
        },
    ]
    response = client.post(BASE, json={"documents": documents})
    assert response.status_code == 200
    body = response.json()
    assert (body["documents"], body["chunks"]) == (2, 2)
    assert body["knowledgeVersion"] == knowledge.index.version("acme") != "empty"
    assert client.get(f"{BASE}/version").json() == {"knowledgeVersion": body["knowledgeVersion"]}


def test_a_mixed_upload_indexes_the_good_files_and_reports_each_bad_one(client: TestClient) -> None:
    files = [
        ("files", ("faq.csv", faq_csv(), "text/csv")),
        ("files", ("manual.pdf", make_pdf([["Descale the kettle every month with citric acid."]]), "application/pdf")),
        ("files", ("broken.pdf", b"%PDF-1.7\n garbage", "application/pdf")),
        ("files", ("image.png", b"\x89PNG\r\n", "image/png")),
        ("files", ("empty.txt", b"", "text/plain")),
        ("files", ("huge.txt", b"x" * 200_001, "text/plain")),
        (
            "files",
            ("handbook.docx", make_docx("Handbook", [("Leave", ["25 days a year."])]), "application/octet-stream"),
        ),
    ]
    response = client.post(f"{BASE}/files", files=files)
    assert response.status_code == 207
    body = response.json()
    statuses = {f["filename"]: (f["status"], (f["error"] or {}).get("code")) for f in body["files"]}
    assert statuses == {
        "faq.csv": (200, None),
        "manual.pdf": (200, None),
        "broken.pdf": (422, "corrupt_file"),
        "image.png": (415, "unsupported_file_type"),
        "empty.txt": (422, "empty_file"),
        "huge.txt": (413, "file_too_large"),
        "handbook.docx": (200, None),
    }
    assert (body["indexed"], body["failed"]) == (3, 4)
    assert all(f["error"]["message"] for f in body["files"] if f["status"] != 200)
    # Each stored file reports its own chunks (FAQ: one per Q/A pair); refused ones none.
    chunks = {f["filename"]: f["chunks"] for f in body["files"]}
    assert chunks["manual.pdf"] == chunks["handbook.docx"] == 1 and chunks["faq.csv"] > 1
    assert body["chunks"] == sum(n or 0 for n in chunks.values()) and chunks["broken.pdf"] is None
    found = client.get(f"{BASE}/search", params={"q": "descale kettle citric acid", "k": 1}).json()["results"]
    assert found[0]["documentId"] == "manual.pdf" and found[0]["section"] == "page 1"


def test_all_files_refused_gives_the_first_files_status_and_nothing_changes(client: TestClient) -> None:
    before = client.get(f"{BASE}/version").json()["knowledgeVersion"]
    response = client.post(f"{BASE}/files", files=[("files", ("a.exe", b"MZ\x90\x00", "application/octet-stream"))])
    assert response.status_code == 415
    assert response.json()["knowledgeVersion"] == before


def test_uploading_a_file_again_replaces_its_chunks(client: TestClient) -> None:
    first = make_pdf([["The warranty lasts two years."]])
    second = make_pdf([["The warranty now lasts five years."]])
    client.post(f"{BASE}/files", files=[("files", ("warranty.pdf", first, "application/pdf"))])
    client.post(f"{BASE}/files", files=[("files", ("warranty.pdf", second, "application/pdf"))])
    results = client.get(f"{BASE}/search", params={"q": "warranty years", "all": "true"}).json()["results"]
    assert [r["text"] for r in results] == ["The warranty now lasts five years."]


def test_single_file_options_and_limits(client: TestClient) -> None:
    response = client.post(
        f"{BASE}/files",
        files=[("files", ("notes.txt", b"Opening hours are 9 to 5.", "text/plain"))],
        data={"documentId": "hours", "title": "Opening hours", "url": "https://acme.example/hours"},
    )
    assert response.status_code == 200 and response.json()["files"][0]["documentId"] == "hours"
    result = client.get(f"{BASE}/search", params={"q": "opening hours"}).json()["results"][0]
    assert (result["documentId"], result["title"], result["url"]) == (
        "hours",
        "Opening hours",
        "https://acme.example/hours",
    )
    two = [("files", ("a.txt", b"a", "text/plain")), ("files", ("b.txt", b"b", "text/plain"))]
    refused = client.post(f"{BASE}/files", files=two, data={"documentId": "x"})
    assert refused.status_code == 400 and "single file" in refused.json()["error"]["message"]
    duplicate = client.post(f"{BASE}/files", files=[two[0], ("files", ("a.txt", b"again", "text/plain"))])
    assert duplicate.status_code == 207 and duplicate.json()["files"][1]["status"] == 409


def test_search_is_the_bots_path_with_threshold_and_version(client: TestClient, store: InMemoryStateStore) -> None:
    client.post(BASE, json={"documents": [{"id": "returns", "title": "Returns", "text": "Return within 30 days."}]})
    matched = client.get(f"{BASE}/search", params={"q": "return within 30 days"}).json()
    tenant = store.get_tenant("acme")
    calibrated = tenant.config.retrieval.min_answer_score if tenant else None
    assert matched["matched"] is True and matched["threshold"] == calibrated and not matched["reranked"]
    assert matched["results"][0]["aboveThreshold"] is True and matched["bestScore"] == matched["results"][0]["score"]
    # The tenant's own threshold is what the search applies.
    client.patch("/v1/tenants/acme/config", json={"retrieval": {"minAnswerScore": 0.99}})
    declined = client.get(f"{BASE}/search", params={"q": "how many days?", "all": "false"}).json()
    assert declined["matched"] is False and declined["results"] == [] and declined["threshold"] == 0.99
    assert 0 < declined["bestScore"] < 0.99
    shown = client.get(f"{BASE}/search", params={"q": "how many days?"}).json()
    assert shown["results"][0]["aboveThreshold"] is False


def test_calibration_stores_the_threshold_unless_it_is_a_dry_run(client: TestClient, store: InMemoryStateStore) -> None:
    client.post(BASE, json={"documents": [{"id": "returns", "title": "Returns", "text": "Return within 30 days."}]})
    before = store.get_tenant("acme")
    assert before is not None and before.config.retrieval.min_answer_score is not None  # the upload calibrated
    dry = client.post(f"{BASE}/calibrate", json={"apply": False, "minThreshold": 0.9})
    assert dry.status_code == 200 and dry.json()["applied"] is False
    tenant = store.get_tenant("acme")
    assert tenant is not None and tenant.config.retrieval == before.config.retrieval
    report = client.post(f"{BASE}/calibrate", json={"minThreshold": 0.9}).json()
    assert report["offTopicQuestions"] > 50 and report["threshold"] >= 0.9
    tenant = store.get_tenant("acme")
    assert tenant is not None and tenant.config.retrieval.min_answer_score == report["threshold"]
    # A floor given once is not stored: the next upload keeps this threshold instead of dropping the floor.
    assert tenant.config.retrieval.auto_calibrate is False
    client.post(BASE, json={"documents": [{"id": "hours", "title": "Opening hours", "text": "9 to 5."}]})
    kept = store.get_tenant("acme")
    assert kept is not None and kept.config.retrieval.min_answer_score == report["threshold"]
    assert client.get(f"{BASE}/search", params={"q": "x"}).json()["threshold"] == report["threshold"]
    bad = client.post(f"{BASE}/calibrate", json={"targetDecline": 2})
    assert bad.status_code == 422


def test_every_upload_calibrates_from_the_tenants_own_knowledge(client: TestClient, store: InMemoryStateStore) -> None:
    faq = [
        {"id": "returns", "title": "How do I return an item?", "text": "Send it back within 30 days for a refund."},
        {"id": "delivery", "title": "How long does delivery take?", "text": "Orders arrive in 2 to 4 working days."},
        {"id": "warranty", "title": "What does the warranty cover?", "text": "Two years on parts and labour."},
    ]
    body = client.post(BASE, json={"documents": faq}).json()
    report = body["calibration"]
    assert report["languages"] == ["en"] and report["nearMissQuestions"] > 0 and report["floor"] is None
    assert body["threshold"] == report["threshold"] and 0.0 < report["threshold"] < 1.0
    assert report["offTopicDeclineRate"] >= 0.9 and report["targetDecline"] == 0.9
    assert [point["targetDecline"] for point in report["tradeoff"]] == [0.7, 0.8, 0.9, 0.95]
    tenant = store.get_tenant("acme")
    assert tenant is not None and tenant.config.retrieval.min_answer_score == report["threshold"]
    # The tenant moves the trade-off once; later uploads keep its choice.
    lenient = client.post(f"{BASE}/calibrate", json={"targetDecline": 0.7}).json()
    assert lenient["threshold"] <= report["threshold"]
    again = client.post(BASE, json={"documents": [{"id": "hours", "title": "Opening hours", "text": "9 to 5."}]})
    assert again.json()["calibration"]["targetDecline"] == 0.7
    # Off-topic questions still fall under it, the knowledge's own questions above it.
    declined = client.get(f"{BASE}/search", params={"q": "what is the capital of Australia?"}).json()
    answered = client.get(f"{BASE}/search", params={"q": "how long until my order arrives?"}).json()
    assert declined["matched"] is False and answered["matched"] is True


def test_delete_returns_the_new_version_and_404_when_absent(client: TestClient) -> None:
    indexed = client.post(BASE, json={"documents": [{"id": "d", "title": "D", "text": "Something."}]}).json()
    deleted = client.delete(f"{BASE}/d")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert deleted.json()["knowledgeVersion"] not in (indexed["knowledgeVersion"], "")
    missing = client.delete(f"{BASE}/d")
    assert missing.status_code == 404 and "not in the knowledge base" in missing.json()["error"]["message"]


def test_unknown_tenant_and_missing_key(client: TestClient) -> None:
    assert (
        client.post("/v1/tenants/nobody/knowledge/files", files=[("files", ("a.txt", b"a", "text/plain"))]).status_code
        == 404
    )
    assert client.get(f"{BASE}/search", params={"q": "x"}, headers={"Authorization": ""}).status_code == 401
