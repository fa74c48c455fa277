"""Identity through `python -m local.run` (issue 11): visitor tokens against a borrowed visitor id,
allowed origins, widget key rotation, tenant suspension and tenant admin keys, over real WebSockets
and HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.client import LocalStackInfo, connect_agent, new_visitor, receive, send_message, visitor_token

pytestmark = pytest.mark.e2e


@pytest.fixture
def tenant(local_stack: LocalStackInfo) -> dict[str, Any]:
    with local_stack.admin() as admin:
        created = admin.post("/v1/tenants", json={"name": f"identity {uuid.uuid4().hex[:6]}"}).json()
        agent = admin.post(f"/v1/tenants/{created['tenantId']}/agents", json={"name": "Alice"}).json()
    return {**created, "agentKey": agent["agentKey"]}


def url(stack: LocalStackInfo, tenant: dict[str, Any], **extra: str) -> str:
    query = httpx.QueryParams(tenant=tenant["tenantId"], key=tenant["widgetKey"], **extra)
    return f"{stack.ws_url}?{query}"


async def status_of(opening: Any) -> int:
    try:
        async with await opening:
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = await receive(ws)
        if frame["type"] in (kind, "error"):
            return frame


def test_a_borrowed_visitor_id_reads_nothing_and_the_token_brings_the_visitor_back(
    local_stack: LocalStackInfo, tenant: dict[str, Any]
) -> None:
    victim_id = new_visitor()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(url(local_stack, tenant, visitor=victim_id), open_timeout=30) as victim:
            token = await visitor_token(victim)
            await victim.send(json.dumps(send_message("My order 42 goes to 1 Main St")))
            conversation_id = (await next_of(victim, "ack"))["conversationId"]
        async with connect(url(local_stack, tenant, visitor=victim_id), open_timeout=30) as attacker:
            await attacker.send(json.dumps({"action": "history", "conversationId": conversation_id}))
            out["attacker"] = await next_of(attacker, "history")
        async with connect(url(local_stack, tenant, visitor=victim_id, token=token), open_timeout=30) as back:
            await back.send(json.dumps({"action": "history", "conversationId": conversation_id}))
            out["back"] = await next_of(back, "history")
        return out

    out = asyncio.run(scenario())
    assert (out["attacker"]["type"], out["attacker"]["code"]) == ("error", "not_found")
    assert out["back"]["type"] == "history"
    assert out["back"]["messages"][0]["text"] == "My order 42 goes to 1 Main St"


def test_origins_rotation_and_suspension_are_enforced_at_the_handshake(
    local_stack: LocalStackInfo, tenant: dict[str, Any]
) -> None:
    tenant_id = tenant["tenantId"]
    with local_stack.admin() as admin:
        allowed = {"widget": {"allowedOrigins": ["https://shop.example.com"]}}
        assert admin.patch(f"/v1/tenants/{tenant_id}/config", json=allowed).status_code == 200
    right = asyncio.run(status_of(connect(url(local_stack, tenant), origin="https://shop.example.com")))
    wrong = asyncio.run(status_of(connect(url(local_stack, tenant), origin="https://evil.example")))
    assert (right, wrong) == (101, 403)

    with local_stack.admin() as admin:
        admin.patch(f"/v1/tenants/{tenant_id}/config", json={"widget": {"allowedOrigins": []}}).raise_for_status()
        rotated = admin.post(f"/v1/tenants/{tenant_id}/widget-key").json()
    assert asyncio.run(status_of(connect(url(local_stack, tenant)))) == 403
    tenant = {**tenant, "widgetKey": rotated["widgetKey"]}
    assert asyncio.run(status_of(connect(url(local_stack, tenant)))) == 101

    async def suspended_while_open() -> tuple[dict[str, Any], int, int]:
        async with connect_agent(local_stack.ws_url, tenant["agentKey"]) as console:
            with local_stack.admin() as admin:
                admin.post(f"/v1/tenants/{tenant_id}/suspend", json={"reason": "e2e"}).raise_for_status()
            ended = await receive(console)
            try:
                await receive(console, 10)
            except ConnectionClosed:
                pass
        visitor = await status_of(connect(url(local_stack, tenant)))
        agent = await status_of(connect_agent(local_stack.ws_url, tenant["agentKey"]))
        return ended, visitor, agent

    ended, visitor, agent = asyncio.run(suspended_while_open())
    assert ended == {"type": "session.ended", "reason": "suspended"}
    assert (visitor, agent) == (403, 403)
    with local_stack.admin() as admin:
        admin.post(f"/v1/tenants/{tenant_id}/resume").raise_for_status()
    assert asyncio.run(status_of(connect(url(local_stack, tenant)))) == 101


def test_a_tenant_admin_key_reaches_only_its_tenant(local_stack: LocalStackInfo, tenant: dict[str, Any]) -> None:
    with local_stack.admin() as admin:
        key = admin.post(f"/v1/tenants/{tenant['tenantId']}/admin-keys", json={"name": "e2e"}).json()["adminKey"]
    with httpx.Client(base_url=local_stack.admin_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as own:
        assert own.get(f"/v1/tenants/{tenant['tenantId']}/config").status_code == 200
        assert own.get(f"/v1/tenants/{local_stack.tenant_id}/config").status_code == 403
        assert own.post("/v1/tenants", json={"name": "x"}).status_code == 403
        assert own.get("/v1/dead-letters").status_code == 403
