"""The admin API's agent routes, checked through the agent's WebSocket login."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.client import LocalStackInfo, connect_agent

pytestmark = pytest.mark.e2e


def login_status(stack: LocalStackInfo, key: str) -> int:
    async def handshake() -> int:
        try:
            async with await connect_agent(stack.ws_url, key):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    return asyncio.run(handshake())


def test_agents_are_created_listed_rekeyed_disabled_and_deleted(local_stack: LocalStackInfo) -> None:
    tenant = local_stack.tenant_id
    with local_stack.admin() as admin:
        created = admin.post(f"/v1/tenants/{tenant}/agents", json={"name": "Carol", "capacity": 2})
        assert created.status_code == 201
        agent = created.json()
        assert agent["agentKey"].startswith(agent["agentId"] + ".") and agent["capacity"] == 2

        listed = admin.get(f"/v1/tenants/{tenant}/agents").json()["agents"]
        mine = [a for a in listed if a["agentId"] == agent["agentId"]]
        assert mine and "agentKey" not in mine[0] and "keyHash" not in mine[0]
        assert login_status(local_stack, agent["agentKey"]) == 101

        rotated = admin.post(f"/v1/tenants/{tenant}/agents/{agent['agentId']}/key").json()
        assert login_status(local_stack, agent["agentKey"]) == 403
        assert login_status(local_stack, rotated["agentKey"]) == 101

        disabled = admin.patch(f"/v1/tenants/{tenant}/agents/{agent['agentId']}", json={"disabled": True})
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        assert login_status(local_stack, rotated["agentKey"]) == 403

        assert admin.delete(f"/v1/tenants/{tenant}/agents/{agent['agentId']}").status_code == 204
        assert admin.get(f"/v1/tenants/{tenant}/agents/{agent['agentId']}/key").status_code in (404, 405)
        missing = admin.delete(f"/v1/tenants/{tenant}/agents/{agent['agentId']}")
        assert missing.status_code == 404 and "unknown agent" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"name": "x", "capacity": 0}, "capacity"), ({}, "name")],
)
def test_bad_agent_requests_say_what_is_wrong(local_stack: LocalStackInfo, body: dict, field: str) -> None:
    with local_stack.admin() as admin:
        response = admin.post(f"/v1/tenants/{local_stack.tenant_id}/agents", json=body)
    assert response.status_code == 422 and field in response.text


def test_another_tenants_agent_is_not_found(local_stack: LocalStackInfo) -> None:
    with local_stack.admin() as admin:
        other = admin.post("/v1/tenants", json={"name": "Other"}).json()["tenantId"]
        agent = admin.post(f"/v1/tenants/{other}/agents", json={"name": "Dan"}).json()
        response = admin.patch(f"/v1/tenants/{local_stack.tenant_id}/agents/{agent['agentId']}", json={"name": "x"})
    assert response.status_code == 404
