"""A website visitor's chat, end to end: real WebSocket client -> emulator -> the real handlers ->
moto's DynamoDB/SQS + redis-server -> streamed answer."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.client import (
    LocalStackInfo,
    ask,
    new_visitor,
    open_visitor,
    send_message,
    silent_for,
    visitor_token,
)

pytestmark = pytest.mark.e2e


def test_demo_question_is_acked_streamed_and_cited(local_stack: LocalStackInfo) -> None:
    async def scenario() -> list[dict]:
        async with await open_visitor(local_stack.visitor_url()) as ws:
            return await ask(ws, send_message("How long does delivery take?"))

    frames = asyncio.run(scenario())
    ack, *deltas, end = frames
    assert ack["type"] == "ack" and ack["conversationId"].startswith("c_")
    assert len(deltas) >= 2 and {d["type"] for d in deltas} == {"answer.delta"}
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert all(d["messageId"] == ack["messageId"] + ".a" for d in deltas)
    assert end["type"] == "answer.end"
    assert end["text"] == "".join(d["text"] for d in deltas)
    assert end["citations"], end
    citation = end["citations"][0]
    assert citation["title"] and citation["snippet"] and citation["documentId"]
    assert "ship" in citation["title"].lower() or "deliver" in citation["title"].lower()


def test_chinese_question_gets_a_chinese_answer_with_citation(local_stack: LocalStackInfo) -> None:
    async def scenario() -> list[dict]:
        async with await open_visitor(local_stack.visitor_url()) as ws:
            return await ask(ws, send_message("退款一般多久能到账？"))

    end = asyncio.run(scenario())[-1]
    assert end["type"] == "answer.end" and end["citations"]
    assert "退款" in end["citations"][0]["title"] + end["citations"][0]["snippet"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in end["text"][:20])


def test_off_topic_question_is_declined_without_citations(local_stack: LocalStackInfo) -> None:
    async def scenario() -> list[dict]:
        async with await open_visitor(local_stack.visitor_url()) as ws:
            return await ask(ws, send_message("Who won the 1954 football world cup final?"))

    end = asyncio.run(scenario())[-1]
    assert end["type"] == "answer.end" and end["citations"] == []
    assert "could not find" in end["text"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("this is not json", "bad_request"),
        (json.dumps({"action": "sendMessage", "text": "no client id"}), "bad_request"),
        (json.dumps({"action": "dance"}), "unknown_action"),
        (json.dumps(send_message("x" * 9000)), "message_too_large"),
    ],
    ids=["not-json", "no-client-id", "unknown-action", "too-large"],  # stable ids: the pytest-xdist workers must agree
)
def test_malformed_frames_get_an_error_frame_and_nothing_is_stored(
    local_stack: LocalStackInfo, raw: str, code: str
) -> None:
    async def scenario() -> tuple[dict, list[dict]]:
        async with await open_visitor(local_stack.visitor_url()) as ws:
            await ws.send(raw)
            [error] = await ask_raw(ws)
            # The connection stays usable after an error.
            answer = await ask(ws, send_message("How can I track my order?"))
            return error, answer

    error, answer = asyncio.run(scenario())
    assert error["type"] == "error" and error["code"] == code and error["message"]
    assert answer[0]["type"] == "ack" and answer[-1]["type"] == "answer.end"
    with local_stack.admin() as admin:
        transcript = admin.get(
            f"/v1/tenants/{local_stack.tenant_id}/conversations/{answer[0]['conversationId']}/messages"
        ).json()
    assert [m["role"] for m in transcript["messages"]] == ["visitor", "bot"]


async def ask_raw(ws) -> list[dict]:  # type: ignore[no-untyped-def]
    from tests.e2e.client import receive

    return [await receive(ws)]


@pytest.mark.parametrize(("key", "status"), [("wk_wrong", 403), ("", 401)])
def test_wrong_or_missing_widget_key_refuses_the_handshake(local_stack: LocalStackInfo, key: str, status: int) -> None:
    url = local_stack.visitor_url(key=key or None).replace(f"key={local_stack.widget_key}", f"key={key}")

    async def scenario() -> None:
        async with await open_visitor(url):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(scenario())
    assert refused.value.response.status_code == status


def test_resent_client_message_id_is_acked_again_but_answered_once(local_stack: LocalStackInfo) -> None:
    visitor = new_visitor()
    frame = send_message("Which payment methods do you accept?")

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        async with await open_visitor(local_stack.visitor_url(visitor)) as ws:
            token = await visitor_token(ws)
            first = await ask(ws, frame)
        # The visitor reconnects (e.g. a flaky network, with its token) and resends the same message.
        async with await open_visitor(local_stack.visitor_url(visitor, token=token)) as ws:
            await ws.send(json.dumps(frame))
            from tests.e2e.client import receive

            second = [await receive(ws)]
            extra = await silent_for(ws, 3.0)
        return first, second, extra

    first, second, extra = asyncio.run(scenario())
    assert second[0]["type"] == "ack"
    assert (second[0]["messageId"], second[0]["conversationId"]) == (first[0]["messageId"], first[0]["conversationId"])
    assert extra == [], "the resend must not be answered again"
    with local_stack.admin() as admin:
        transcript = admin.get(
            f"/v1/tenants/{local_stack.tenant_id}/conversations/{first[0]['conversationId']}/messages"
        ).json()
    assert [m["role"] for m in transcript["messages"]] == ["visitor", "bot"]


def test_conversation_continues_across_messages_and_is_in_the_transcript(local_stack: LocalStackInfo) -> None:
    async def scenario() -> tuple[list[dict], list[dict]]:
        async with await open_visitor(local_stack.visitor_url()) as ws:
            first = await ask(ws, send_message("Do you ship internationally?"))
            second = await ask(ws, send_message("How do I get an invoice?"))
            return first, second

    first, second = asyncio.run(scenario())
    conversation = first[0]["conversationId"]
    assert second[0]["conversationId"] == conversation
    with local_stack.admin() as admin:
        transcript = admin.get(f"/v1/tenants/{local_stack.tenant_id}/conversations/{conversation}/messages").json()
    assert [m["role"] for m in transcript["messages"]] == ["visitor", "bot", "visitor", "bot"]
    assert transcript["messages"][1]["text"] == first[-1]["text"]
    assert transcript["messages"][3]["citations"] == second[-1]["citations"]
