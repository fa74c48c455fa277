"""Human handoff end to end: real WebSocket clients (a visitor, agents) -> emulator -> the real
handlers -> moto's DynamoDB/SQS + redis-server. Each test gets its own tenant, knowledge and agents."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.e2e.client import LocalStackInfo, new_visitor, receive, send_message, silent_for

pytestmark = pytest.mark.e2e

DOCS = [
    {
        "id": "shipping",
        "title": "Shipping times",
        "text": "Shipping takes 2 to 4 working days: orders leave our warehouse within 24 hours.",
        "url": "https://shop.example/help/shipping",
    },
    {"id": "returns", "title": "Returns", "text": "You can return any item within 30 days for a full refund."},
]
Frame = dict[str, Any]


@dataclass
class Shop:
    stack: LocalStackInfo
    tenant_id: str
    widget_key: str
    agents: dict[str, tuple[str, str]]  # name -> (agent id, key)

    def visitor_url(self, visitor: str) -> str:
        query = httpx.QueryParams(tenant=self.tenant_id, key=self.widget_key, visitor=visitor, lang="en")
        return f"{self.stack.ws_url}?{query}"

    def agent_url(self, name: str) -> str:
        return f"{self.stack.ws_url}?{httpx.QueryParams(role='agent', key=self.agents[name][1])}"


@pytest.fixture
def shop(local_stack: LocalStackInfo) -> Shop:
    with local_stack.admin() as admin:
        tenant = admin.post("/v1/tenants", json={"name": f"e2e {uuid.uuid4().hex[:6]}"}).json()
        tenant_id = tenant["tenantId"]
        admin.post(f"/v1/tenants/{tenant_id}/knowledge", json={"documents": DOCS}).raise_for_status()
        admin.patch(f"/v1/tenants/{tenant_id}/config", json={"handoff": {"autoAssign": False}}).raise_for_status()
        agents = {}
        for name in ("Alice", "Bob"):
            created = admin.post(f"/v1/tenants/{tenant_id}/agents", json={"name": name}).json()
            agents[name] = (created["agentId"], created["agentKey"])
    return Shop(local_stack, tenant_id, tenant["widgetKey"], agents)


async def until(ws: ClientConnection, done: Callable[[Frame], bool], timeout: float = 30) -> list[Frame]:
    """Frames up to and including the first one ``done`` accepts."""
    frames: list[Frame] = []
    while not frames or not done(frames[-1]):
        frames.append(await receive(ws, timeout))
    return frames


def of_type(kind: str, conversation_id: str | None = None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        if frame["type"] != kind:
            return False
        if conversation_id is None:
            return True
        found = frame.get("conversationId") or frame.get("conversation", {}).get("conversationId")
        return bool(found == conversation_id)

    return match


async def send(ws: ClientConnection, **frame: Any) -> None:
    await ws.send(json.dumps(frame))


def test_handoff_accept_reply_resolve_and_the_bot_comes_back(shop: Shop) -> None:
    async def scenario() -> dict[str, list[Frame]]:
        seen: dict[str, list[Frame]] = {}
        async with (
            await connect(shop.visitor_url(new_visitor())) as visitor,
            await connect(shop.agent_url("Alice")) as alice,
        ):
            await send(alice, action="agentSync")
            await until(alice, of_type("agent.state"))
            await visitor.send(json.dumps(send_message("How long does shipping take?")))
            seen["answer"] = await until(visitor, of_type("answer.end"))
            conversation_id = seen["answer"][0]["conversationId"]
            await send(visitor, action="requestHuman", conversationId=conversation_id)
            seen["queued"] = await until(visitor, of_type("notice"))
            seen["state"] = await until(alice, lambda f: f["type"] == "queue.updated" and bool(f["queue"]))

            await send(alice, action="accept", conversationId=conversation_id)
            seen["assigned"] = await until(alice, of_type("conversation.assigned", conversation_id))
            seen["joined"] = await until(visitor, of_type("agent.joined"))

            await visitor.send(json.dumps(send_message("My order number is 42", conversationId=conversation_id)))
            seen["forwarded"] = await until(alice, of_type("visitor.message", conversation_id))
            seen["bot_silent"] = await silent_for(visitor, 2.5)  # the ack only: no answer from the bot

            await send(
                alice,
                action="agentMessage",
                conversationId=conversation_id,
                clientMessageId="agent-0001",
                text="Thanks, I'm checking order 42.",
            )
            seen["agent_ack"] = await until(alice, of_type("ack"))
            seen["agent_message"] = await until(visitor, of_type("agent.message"))

            await send(alice, action="resolve", conversationId=conversation_id)
            seen["resolved"] = await until(visitor, lambda f: f["type"] == "notice" and f["code"] == "resolved")

            await visitor.send(json.dumps(send_message("Can I return it?", conversationId=conversation_id)))
            seen["reopened"] = await until(visitor, of_type("answer.end"))
            seen["alice_after"] = await silent_for(alice, 1.0)
            await send(visitor, action="history", conversationId=conversation_id)
            seen["history"] = await until(visitor, of_type("history"))
        return seen

    seen = asyncio.run(scenario())
    assert seen["answer"][-1]["citations"][0]["url"] == "https://shop.example/help/shipping"
    assert [f["type"] for f in seen["queued"]] == ["conversation.status", "notice"]
    [queued] = seen["state"][-1]["queue"]
    assert queued["preview"] == "How long does shipping take?" and queued["reason"] == "visitor_request"
    assert seen["joined"][-1]["agent"]["name"] == "Alice"
    assert seen["forwarded"][-1]["text"] == "My order number is 42"
    assert [f["type"] for f in seen["bot_silent"]] == ["ack"]
    assert seen["agent_message"][-1]["text"] == "Thanks, I'm checking order 42."
    assert seen["agent_message"][-1]["messageId"] == seen["agent_ack"][-1]["messageId"]
    reopened = seen["reopened"]
    assert reopened[0] == {
        "type": "ack",
        **{k: reopened[0][k] for k in ("clientMessageId", "messageId", "conversationId")},
    }
    assert any(f["type"] == "conversation.status" and f["status"] == "bot" for f in reopened)
    assert reopened[-1]["citations"][0]["documentId"] == "returns"
    assert not any(f["type"] == "visitor.message" for f in seen["alice_after"])
    roles = [m["role"] for m in seen["history"][-1]["messages"] if m["role"] != "event"]
    assert roles == ["visitor", "bot", "visitor", "agent", "visitor", "bot"]


def test_no_message_is_lost_or_duplicated_across_reconnects(shop: Shop) -> None:
    visitor_id = new_visitor()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with await connect(shop.agent_url("Bob")) as bob:
            await send(bob, action="agentSync")
            await until(bob, of_type("agent.state"))
            async with await connect(shop.visitor_url(visitor_id)) as visitor:
                await visitor.send(json.dumps(send_message("转人工")))
                ack = (await until(visitor, of_type("ack")))[-1]
                conversation_id = ack["conversationId"]
                await until(visitor, of_type("notice"))
            # The visitor is offline. Bob accepts and writes twice; his second frame is resent after his
            # own reconnect.
            await send(bob, action="accept", conversationId=conversation_id)
            await until(bob, of_type("conversation.assigned", conversation_id))
            first = {"action": "agentMessage", "conversationId": conversation_id, "clientMessageId": "bob-0001"}
            await send(bob, **first, text="Hello, Bob here.")
            await until(bob, of_type("ack"))
        async with await connect(shop.agent_url("Bob")) as bob:
            second = {"action": "agentMessage", "conversationId": conversation_id, "clientMessageId": "bob-0002"}
            for _ in range(2):
                await send(bob, **second, text="Are you still there?")
            # Two acks; the new tab may also get the echo of the first message (its fan-out follows its ack).
            frames = await until(bob, of_type("ack"))
            frames += await until(bob, of_type("ack"))
            out["bob_acks"] = [f for f in frames if f["type"] == "ack"]
            out["bob_echoes"] = [f for f in frames if f["type"] != "ack"]

            # The visitor returns: the transcript brings what was missed; an unacked message is resent.
            async with await connect(shop.visitor_url(visitor_id)) as visitor:
                await send(visitor, action="history", conversationId=conversation_id)
                out["history"] = (await until(visitor, of_type("history")))[-1]
                resend = send_message(
                    "Yes, I'm here", client_message_id="cmid-back-0001", conversationId=conversation_id
                )
                for _ in range(2):
                    await visitor.send(json.dumps(resend))
                out["visitor_acks"] = [(await until(visitor, of_type("ack")))[-1] for _ in range(2)]
                out["bob_saw"] = await until(bob, of_type("visitor.message", conversation_id))
                out["bob_extra"] = await silent_for(bob, 1.5)
                out["visitor_extra"] = await silent_for(visitor, 1.5)
        with shop.stack.admin() as admin:
            transcript = admin.get(f"/v1/tenants/{shop.tenant_id}/conversations/{conversation_id}/messages").json()
        out["transcript"] = [(m["role"], m["text"]) for m in transcript["messages"] if m["role"] != "event"]
        return out

    out = asyncio.run(scenario())
    assert [m["text"] for m in out["history"]["messages"] if m["role"] == "agent"] == [
        "Hello, Bob here.",
        "Are you still there?",
    ]
    assert out["history"]["status"] == "assigned" and out["history"]["agent"]["name"] == "Bob"
    assert len(out["bob_acks"]) == 2 and len({a["messageId"] for a in out["bob_acks"]}) == 1
    # Never an echo of the resent frame to the tab that sent it.
    assert all(f["type"] == "agent.message" and f["clientMessageId"] == "bob-0001" for f in out["bob_echoes"])
    assert len({a["messageId"] for a in out["visitor_acks"]}) == 1
    assert not any(f["type"] == "visitor.message" for f in out["bob_extra"])
    assert out["visitor_extra"] == []
    assert out["transcript"] == [
        ("visitor", "转人工"),
        ("agent", "Hello, Bob here."),
        ("agent", "Are you still there?"),
        ("visitor", "Yes, I'm here"),
    ]
    # Pushed live to Bob's reconnected tab (a fan-out that met the tab inside its $connect used to
    # forget its connection record).
    assert [f["text"] for f in out["bob_saw"] if f["type"] == "visitor.message"] == ["Yes, I'm here"]


def test_colleagues_see_an_agent_come_online_and_leave(shop: Shop) -> None:
    def alice(presence: str) -> Callable[[Frame], bool]:
        return lambda f: (
            f["type"] == "presence" and f["agent"]["name"] == "Alice" and f["agent"]["presence"] == presence
        )

    async def scenario() -> tuple[list[Frame], list[Frame]]:
        async with await connect(shop.agent_url("Bob")) as bob:
            await send(bob, action="agentSync")
            await until(bob, of_type("agent.state"))
            async with await connect(shop.agent_url("Alice")) as first_tab:
                await send(first_tab, action="agentSync")
                came = await until(bob, alice("online"))
                async with await connect(shop.agent_url("Alice")) as second_tab:
                    await send(second_tab, action="agentSync")
                    await until(second_tab, of_type("agent.state"))
                # One of her two tabs closed: she is still online.
                assert not any(alice("offline")(f) for f in await silent_for(bob, 1.0))
            # Her last tab closed (the $disconnect route tells the colleagues).
            left = await until(bob, alice("offline"))
        return came, left

    came, left = asyncio.run(scenario())
    assert came[-1]["agent"]["agentId"] == left[-1]["agent"]["agentId"] == shop.agents["Alice"][0]


def test_unanswerable_questions_hand_off_after_the_tenants_threshold(shop: Shop) -> None:
    async def scenario() -> tuple[list[Frame], list[Frame]]:
        async with await connect(shop.agent_url("Alice")) as alice:  # someone on duty
            await send(alice, action="agentSync")
            await until(alice, of_type("agent.state"))
            async with await connect(shop.visitor_url(new_visitor())) as visitor:
                await visitor.send(json.dumps(send_message("Who won the 1954 football world cup?")))
                first = await until(visitor, of_type("answer.end"))
                conversation_id = first[0]["conversationId"]
                second = send_message("What is the airspeed of an unladen swallow?", conversationId=conversation_id)
                await visitor.send(json.dumps(second))
                return first, await until(visitor, of_type("notice"))

    first, second = asyncio.run(scenario())
    assert first[-1]["citations"] == []
    types = [f["type"] for f in second]
    assert types.index("answer.end") < types.index("conversation.status")  # the answer, then the handoff
    assert second[-1]["code"] == "queued"
    with shop.stack.admin() as admin:
        conversation = second[-1]["conversationId"]
        transcript = admin.get(f"/v1/tenants/{shop.tenant_id}/conversations/{conversation}/messages").json()
    assert transcript["status"] == "queued"
    assert [m["role"] for m in transcript["messages"]] == ["visitor", "bot", "visitor", "bot", "event"]


def test_with_nobody_on_duty_the_bot_keeps_answering_and_a_left_message_waits_for_an_agent(shop: Shop) -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with await connect(shop.visitor_url(new_visitor())) as visitor:
            # Two questions the knowledge base cannot answer: the default threshold, but nobody to take it.
            await visitor.send(json.dumps(send_message("Who won the 1954 football world cup?")))
            first = await until(visitor, of_type("answer.end"))
            conversation_id = first[0]["conversationId"]
            for text in ("What is the airspeed of an unladen swallow?", "How long does shipping take?"):
                await visitor.send(json.dumps(send_message(text, conversationId=conversation_id)))
                seen.setdefault("answers", []).append(await until(visitor, of_type("answer.end")))
            # The visitor asks for a person: told honestly, offered to leave a message.
            await send(visitor, action="requestHuman", conversationId=conversation_id)
            seen["notice"] = await until(visitor, of_type("notice"))
            await send(
                visitor,
                action="leaveMessage",
                conversationId=conversation_id,
                contact="li@example.com",
                name="Li",
                text="Please e-mail me about a bulk order.",
            )
            seen["left"] = await until(visitor, of_type("notice"))
            # The bot still answers.
            await visitor.send(json.dumps(send_message("Can I return it?", conversationId=conversation_id)))
            seen["after"] = await until(visitor, of_type("answer.end"))
        # An agent logs in later: the ticket is waiting; she closes it.
        async with await connect(shop.agent_url("Alice")) as alice:
            await send(alice, action="agentSync")
            seen["state"] = (await until(alice, of_type("agent.state")))[-1]
            await send(alice, action="closeTicket", conversationId=conversation_id)
            seen["closed"] = (await until(alice, of_type("tickets.updated")))[-1]
        seen["conversation_id"] = conversation_id
        return seen

    seen = asyncio.run(scenario())
    every = [f for frames in seen["answers"] for f in frames]
    assert not any(f["type"] in ("notice", "conversation.status") for f in every)
    assert seen["answers"][-1][-1]["citations"][0]["documentId"] == "shipping"  # answered, not ignored
    notice = seen["notice"][-1]
    assert notice["code"] == "no_agents" and notice["leaveMessage"] is True
    assert seen["left"][-1]["code"] == "message_left" and "li@example.com" in seen["left"][-1]["text"]
    assert seen["after"][-1]["citations"][0]["documentId"] == "returns"
    [ticket] = seen["state"]["tickets"]
    assert ticket["conversationId"] == seen["conversation_id"] and ticket["contact"] == "li@example.com"
    assert ticket["text"] == "Please e-mail me about a bulk order." and ticket["status"] == "open"
    assert seen["closed"]["tickets"] == []
    with shop.stack.admin() as admin:
        transcript = admin.get(f"/v1/tenants/{shop.tenant_id}/conversations/{seen['conversation_id']}/messages")
    assert transcript.json()["status"] == "bot"


def test_queued_conversations_go_oldest_first_to_an_agent_who_logs_in(shop: Shop) -> None:
    with shop.stack.admin() as admin:
        base = f"/v1/tenants/{shop.tenant_id}"
        admin.patch(f"{base}/config", json={"handoff": {"autoAssign": True}}).raise_for_status()
        for name in ("Alice", "Bob"):
            admin.patch(f"{base}/agents/{shop.agents[name][0]}", json={"capacity": 1}).raise_for_status()

    async def hand_off(visitor: ClientConnection) -> str:
        await visitor.send(json.dumps(send_message("转人工")))
        frames = await until(visitor, of_type("notice"))
        assert frames[-1]["code"] == "queued", frames
        return str(frames[0]["conversationId"])

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with await connect(shop.agent_url("Bob")) as bob:
            await send(bob, action="agentSync")
            await until(bob, of_type("agent.state"))
            visitors = [await connect(shop.visitor_url(new_visitor())) for _ in range(4)]
            try:
                ids = [await hand_off(visitors[0])]  # Bob takes it: he is full
                await until(bob, of_type("conversation.assigned", ids[0]))
                for visitor in visitors[1:]:  # three wait in the queue, in this order
                    ids.append(await hand_off(visitor))
                async with await connect(shop.agent_url("Alice")) as alice:
                    await send(alice, action="agentSync")
                    out["alice"] = await until(alice, of_type("agent.state"))
                    # Bob frees his seat: the next oldest is his, never a newer one.
                    await send(bob, action="resolve", conversationId=ids[0])
                    out["bob"] = await until(bob, of_type("conversation.assigned", ids[2]))
                out["ids"] = ids
            finally:
                for visitor in visitors:
                    await visitor.close()
        return out

    out = asyncio.run(scenario())
    ids = out["ids"]
    assigned = [f["conversation"]["conversationId"] for f in out["alice"] if f["type"] == "conversation.assigned"]
    assert assigned == [ids[1]]  # the oldest waiting one, before her state arrives
    state = out["alice"][-1]
    assert [c["conversationId"] for c in state["mine"]] == [ids[1]]
    assert [c["conversationId"] for c in state["queue"]] == ids[2:]
    with shop.stack.admin() as admin:
        statuses = [admin.get(f"/v1/tenants/{shop.tenant_id}/conversations/{c}/messages").json()["status"] for c in ids]
    assert statuses == ["resolved", "assigned", "assigned", "queued"]


def test_agents_log_in_with_their_own_key_only(shop: Shop) -> None:
    wrong = f"{shop.stack.ws_url}?{httpx.QueryParams(role='agent', key=shop.agents['Alice'][0] + '.nope')}"
    visitor_key_as_agent = f"{shop.stack.ws_url}?{httpx.QueryParams(role='agent', key=shop.widget_key)}"

    async def handshake(url: str) -> int:
        try:
            async with await connect(url, open_timeout=30):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    assert asyncio.run(handshake(wrong)) == 403
    assert asyncio.run(handshake(visitor_key_as_agent)) == 403
    assert asyncio.run(handshake(shop.agent_url("Alice"))) == 101
