"""GET /v1/tenants/{id}/usage: a tenant's month of questions, answers and tokens, by source, with its quotas."""

from __future__ import annotations

import pytest

from shared.admin.routes import usage as usage_routes
from shared.chat.quotas import MonthlyQuota
from shared.state.records import Tenant
from shared.tenant_config import TenantConfig
from shared.tenant_config.quota import QuotaConfig
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore
from tests.unit.test_quotas import FakeUsageLedger


def test_usage_of_a_month_by_source_with_the_plan_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    store, ledger = InMemoryStateStore(), FakeUsageLedger()
    config = TenantConfig(quota=QuotaConfig(questions_per_month=500))
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1, config=config))
    for _ in range(3):
        ledger.count_question("t_1", "2026-03", MonthlyQuota())
    ledger.add_answer("t_1", "2026-03", "model", 100, 20)
    ledger.add_answer("t_1", "2026-03", "cache", 0, 0)
    ledger.count_question("t_1", "2026-04", MonthlyQuota())
    env = {"KEFU_QUOTA_TOKENS_PER_MONTH": "7000"}
    with admin_client(store, monkeypatch, overrides={usage_routes._ledger: lambda: ledger}, env=env) as client:
        march = client.get("/v1/tenants/t_1/usage", params={"month": "2026-03"})
        assert march.status_code == 200, march.text
        assert march.json() == {
            "tenantId": "t_1",
            "month": "2026-03",
            "questions": 3,
            "answers": 2,
            "inputTokens": 100,
            "outputTokens": 20,
            "bySource": {
                "model": {"answers": 1, "inputTokens": 100, "outputTokens": 20},
                "cache": {"answers": 1, "inputTokens": 0, "outputTokens": 0},
            },
            "quota": {"questionsPerMonth": 500, "tokensPerMonth": 7000},
        }
        assert client.get("/v1/tenants/t_1/usage", params={"month": "2026-04"}).json()["questions"] == 1
        this_month = client.get("/v1/tenants/t_1/usage").json()
        assert this_month["questions"] == 0 and len(this_month["month"]) == 7
        assert client.get("/v1/tenants/t_1/usage", params={"month": "2026-13"}).status_code == 422
        assert client.get("/v1/tenants/t_nobody/usage").status_code == 404
