"""A small visitor client over a real WebSocket connection, for the e2e tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol


class LocalStackInfo(BaseModel):
    """What `make run` writes to .kefu/local.json."""

    ws_url: str
    admin_url: str
    admin_key: str
    tenant_id: str
    widget_key: str
    chat_url: str
    redis_url: str | None = None
    # Where the knowledge index is stored (moto's S3 and DynamoDB, as the default deployment's).
    s3_endpoint: str | None = None
    knowledge_bucket: str | None = None

    def visitor_url(self, visitor: str | None = None, key: str | None = None, token: str | None = None) -> str:
        query = httpx.QueryParams(tenant=self.tenant_id, key=key or self.widget_key, visitor=visitor or new_visitor())
        if token:
            query = query.set("token", token)
        return f"{self.ws_url}?{query}"

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.admin_url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=60)


def new_visitor() -> str:
    return "visitor-" + uuid.uuid4().hex[:12]


def send_message(text: str, client_message_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"action": "sendMessage", "clientMessageId": client_message_id or str(uuid.uuid4()), "text": text, **extra}


async def receive(ws: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def ask(ws: ClientConnection, frame: dict[str, Any], timeout: float = 30) -> list[dict[str, Any]]:
    """Send a frame; collect frames until the answer ends or an error arrives."""
    await ws.send(json.dumps(frame))
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("answer.end", "error"):
        frames.append(await receive(ws, timeout))
    return frames


async def silent_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Frames that arrive within ``seconds`` (expected: none)."""
    extra: list[dict[str, Any]] = []
    try:
        while True:
            extra.append(await receive(ws, seconds))
    except TimeoutError:
        return extra


async def open_visitor(url: str) -> ClientConnection:
    return await connect(url, open_timeout=30)


def connect_agent(ws_url: str, key: str) -> connect:
    """An agent's handshake as the console makes it: the key in the subprotocol header, never the URL."""
    return connect(
        f"{ws_url}?role=agent", subprotocols=[Subprotocol("kefu.v1"), Subprotocol(f"kefu.key.{key}")], open_timeout=30
    )


async def visitor_token(ws: ClientConnection) -> str:
    """Ask who this visitor connection is; the token brings the same visitor back on a reconnect."""
    await ws.send(json.dumps({"action": "session"}))
    while True:
        frame = await receive(ws)
        if frame["type"] == "session":
            return str(frame["visitorToken"])


def ask_tenant_bot(stack: LocalStackInfo, tenant: dict[str, str], question: str) -> dict[str, Any]:
    """A new visitor of ``tenant`` (created through the admin API) asks one question: its last frame."""
    query = httpx.QueryParams(tenant=tenant["tenantId"], key=tenant["widgetKey"], visitor=new_visitor())

    async def scenario() -> list[dict[str, Any]]:
        async with await open_visitor(f"{stack.ws_url}?{query}") as ws:
            return await ask(ws, {"action": "sendMessage", "clientMessageId": str(uuid.uuid4()), "text": question})

    return asyncio.run(scenario())[-1]
