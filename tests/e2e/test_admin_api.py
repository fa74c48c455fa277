"""The admin API over HTTP, as an operator uses it."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.client import LocalStackInfo

pytestmark = pytest.mark.e2e


def test_calls_without_the_admin_key_are_refused(local_stack: LocalStackInfo) -> None:
    with httpx.Client(base_url=local_stack.admin_url) as anonymous:
        missing = anonymous.post("/v1/tenants", json={"name": "x"})
        wrong = anonymous.post("/v1/tenants", json={"name": "x"}, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert wrong.status_code == 401


def test_tenant_knowledge_search_and_isolation(local_stack: LocalStackInfo) -> None:
    with local_stack.admin() as admin:
        created = admin.post("/v1/tenants", json={"name": "Bike shop"})
        assert created.status_code == 201
        tenant = created.json()
        assert tenant["tenantId"].startswith("t_") and tenant["widgetKey"].startswith("wk_")

        documents = [
            {"id": "tyres", "title": "Tyre pressure", "text": "Road bikes need 80 to 100 psi; check weekly."},
            {"id": "chains", "title": "Chain care", "text": "Clean and oil the chain every 300 km."},
        ]
        indexed = admin.post(f"/v1/tenants/{tenant['tenantId']}/knowledge", json={"documents": documents})
        assert indexed.status_code == 200
        body = indexed.json()
        assert body["documents"] == 2 and body["chunks"] == 2 and body["knowledgeVersion"]
        # The upload calibrated the tenant's threshold from this knowledge (no call needed).
        assert body["calibration"]["threshold"] == body["threshold"] and body["calibration"]["languages"] == ["en"]

        found = admin.get(f"/v1/tenants/{tenant['tenantId']}/knowledge/search", params={"q": "how much air in tyres"})
        results = found.json()["results"]
        assert results[0]["documentId"] == "tyres" and results[0]["snippet"] and results[0]["score"] > 0

        # The demo tenant's knowledge is not visible to this tenant, and vice versa.
        other = admin.get(f"/v1/tenants/{tenant['tenantId']}/knowledge/search", params={"q": "refund"}).json()
        assert all(r["documentId"] in {"tyres", "chains"} for r in other["results"])
        demo = admin.get(f"/v1/tenants/{local_stack.tenant_id}/knowledge/search", params={"q": "chain oil"}).json()
        assert all(r["documentId"] not in {"tyres", "chains"} for r in demo["results"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/v1/tenants", {"name": ""}, 422),
        ("post", "/v1/tenants/t_missing/knowledge", {"documents": [{"id": "a", "title": "A", "text": "x"}]}, 404),
        ("post", "/v1/tenants/{tenant}/knowledge", {"documents": []}, 422),
        ("post", "/v1/tenants/{tenant}/knowledge", {"documents": [{"id": "a", "title": "A"}]}, 422),
        ("get", "/v1/tenants/{tenant}/knowledge/search?q=", None, 422),
        ("get", "/v1/tenants/{tenant}/conversations/c_nope/messages", None, 404),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(
    local_stack: LocalStackInfo, method: str, path: str, body: dict | None, status: int
) -> None:
    with local_stack.admin() as admin:
        response = admin.request(method, path.format(tenant=local_stack.tenant_id), json=body)
    assert response.status_code == status
    payload = response.json()
    assert payload.get("error", {}).get("message") or payload.get("detail")


def test_openapi_document_is_served(local_stack: LocalStackInfo) -> None:
    spec = httpx.get(f"{local_stack.admin_url}/openapi.json").json()
    assert "/v1/tenants" in spec["paths"]
    assert "/v1/tenants/{tenant_id}/knowledge/search" in spec["paths"]
    assert httpx.get(f"{local_stack.admin_url}/docs").status_code == 200


def test_tenant_config_is_merged_validated_and_kept(local_stack: LocalStackInfo) -> None:
    with local_stack.admin() as admin:
        tenant = admin.post("/v1/tenants", json={"name": "Config shop"}).json()
        path = f"/v1/tenants/{tenant['tenantId']}/config"
        assert admin.get(path).json()["retrieval"]["keywordWeight"] == 0.5

        changed = admin.patch(path, json={"retrieval": {"keywordWeight": 0.3}})
        assert changed.status_code == 200 and changed.json()["retrieval"]["keywordWeight"] == 0.3
        assert admin.get(path).json()["retrieval"]["keywordWeight"] == 0.3

        for bad in ({"retrieval": {"keywordWeight": 7}}, {"retrieval": {"noSuchField": 1}}, {"nope": {}}):
            refused = admin.patch(path, json=bad)
            assert refused.status_code == 400 and refused.json()["error"]["message"], bad
        assert admin.get(path).json()["retrieval"]["keywordWeight"] == 0.3  # nothing half-stored
