"""Admin-route inputs that used to fail with a 500 or could not be undone (issue 11): blank
calibration probes are a 422 naming the field, and a document id with '/' can be deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.admin.routes import knowledge as routes
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.search import KnowledgeService
from shared.state.records import Tenant
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore
from tests.unit.test_knowledge_local_index import FakeEmbedder

BASE = "/v1/tenants/acme/knowledge"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    knowledge = KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.35, default_k=4)
    with admin_client(store, monkeypatch, overrides={routes._knowledge: lambda: knowledge}) as test_client:
        test_client.post(
            BASE, json={"documents": [{"id": "returns", "title": "Returns", "text": "Return items within 30 days."}]}
        )
        yield test_client


@pytest.mark.parametrize("field", ["offTopic", "inScope"])
@pytest.mark.parametrize("probe", ["", "   ", "\n\t"])
@pytest.mark.parametrize("valid", [0, 4])
def test_blank_calibration_probes_are_a_422_not_a_500(client: TestClient, field: str, probe: str, valid: int) -> None:
    probes = ["What is the weather?", "Who won the match?", "Tell me a joke", "Best pizza nearby?"][:valid]
    probes += [probe] * (5 - valid)
    response = client.post(f"{BASE}/calibrate", json={field: probes, "apply": False})
    assert response.status_code == 422
    assert field in response.text


@pytest.mark.parametrize("document_id", ["guides/returns.md", "a/b/c", "faq/"])
def test_a_document_id_with_slashes_can_be_deleted(client: TestClient, document_id: str) -> None:
    indexed = client.post(BASE, json={"documents": [{"id": document_id, "title": "T", "text": "Slashes are fine."}]})
    assert indexed.status_code == 200
    deleted = client.delete(f"{BASE}/{document_id.replace('/', '%2F')}")
    assert deleted.status_code == 200 and deleted.json()["documentId"] == document_id
    assert client.delete(f"{BASE}/{document_id}").status_code == 404  # gone; the raw path reaches it too
