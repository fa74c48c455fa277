"""The model gateway in the whole local stack (`python -m local.run`, real handlers, moto, redis-server)
with the deployment's model on an OpenAI-compatible server: streaming over a real WebSocket, a tenant
switching its model through the admin API (with a fallback chain), and reused answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.client import LocalStackInfo, ask, connect_agent, open_visitor, receive, send_message
from tests.e2e.conftest import running_stack
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer(Script(tokens=["Deliveries ", "take ", "2 to 4 ", "working days ", "[1]."])) as server:
        yield server


@pytest.fixture(scope="module")
def stack(model_server: OpenAISSEServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackInfo]:
    state_dir: Path = tmp_path_factory.mktemp("kefu-model-stack")
    env = {
        "KEFU_LLM_PROVIDER": "openai",
        "KEFU_LLM_BASE_URL": model_server.base_url,
        "KEFU_LLM_MODEL": "qwen",
        # Tenants' configuration changes reach the functions within a second.
        "KEFU_TENANT_CONFIG_TTL_SECONDS": "1",
    }
    with running_stack(state_dir, env) as info:
        yield info


def chat(stack: LocalStackInfo, *questions: str) -> list[list[dict]]:
    async def scenario() -> list[list[dict]]:
        async with await open_visitor(stack.visitor_url()) as ws:
            return [await ask(ws, send_message(question)) for question in questions]

    return asyncio.run(scenario())


def test_the_deployment_model_streams_a_cited_answer(stack: LocalStackInfo, model_server: OpenAISSEServer) -> None:
    model_server.reset()

    [[ack, *deltas, end]] = chat(stack, "How long does delivery take?")

    assert ack["type"] == "ack" and end["type"] == "answer.end"
    assert end["text"] == "Deliveries take 2 to 4 working days [1]." == "".join(d["text"] for d in deltas)
    assert end["citations"]
    prompt = model_server.requests[0].body["messages"][-1]["content"]
    assert "<passages>" in prompt and "How long does delivery take?" in prompt


def test_a_repeated_first_question_is_answered_from_the_cache(
    stack: LocalStackInfo, model_server: OpenAISSEServer
) -> None:
    model_server.reset()
    question = "Do you deliver on Sundays?"

    [first] = chat(stack, question)
    [second] = chat(stack, question)  # another visitor, another conversation

    assert len(model_server.requests) == 1
    assert second[-1]["text"] == first[-1]["text"] and second[-1]["citations"] == first[-1]["citations"]
    assert [f["type"] for f in second][:2] == ["ack", "answer.delta"]


def test_a_tenant_switches_its_model_and_falls_back_when_it_fails(
    stack: LocalStackInfo, model_server: OpenAISSEServer
) -> None:
    with OpenAISSEServer(Script(status=503)) as broken, stack.admin() as admin:
        change = {
            "model": {
                "provider": "openai",
                "model": "onprem",
                "endpoint": broken.base_url,
                "timeoutSeconds": 5,
                "systemPrompt": "Sign every answer as Ada.",
                "fallbacks": [{"provider": "openai", "model": "cloud", "endpoint": model_server.base_url}],
            }
        }
        response = admin.patch(f"/v1/tenants/{stack.tenant_id}/config", json=change)
        assert response.status_code == 200, response.text
        model_server.reset()
        try:
            end = _eventually_answered_by(stack, model_server, "Can I pay by invoice?")
        finally:
            admin.patch(f"/v1/tenants/{stack.tenant_id}/config", json={"model": DEPLOYMENT_MODEL})

        assert end["text"] == "Deliveries take 2 to 4 working days [1]."
        assert broken.requests, "the tenant's own (broken) server was asked first"
        fallback = [r for r in model_server.requests if r.body.get("model") == "cloud"]
        assert fallback and "Sign every answer as Ada." in fallback[0].body["messages"][0]["content"]


DEPLOYMENT_MODEL = {
    "provider": None,
    "model": None,
    "endpoint": None,
    "timeoutSeconds": None,
    "systemPrompt": None,
    "fallbacks": [],
}


def _eventually_answered_by(stack: LocalStackInfo, fallback: OpenAISSEServer, question: str) -> dict:
    for attempt in range(20):
        [frames] = chat(stack, f"{question} ({attempt})")
        if any(r.body.get("model") == "cloud" for r in fallback.requests):
            return frames[-1]
        asyncio.run(asyncio.sleep(1))
    raise AssertionError("the tenant's model configuration never took effect")


def test_a_reply_marked_no_answer_hides_the_marker_cites_nothing_and_hands_off_after_two(
    stack: LocalStackInfo, model_server: OpenAISSEServer
) -> None:
    model_server.reset(Script(tokens=["NO_", "ANSWER", "\n", "Sorry, the help centre ", "does not say."]))

    with stack.admin() as admin:
        agent = admin.post(f"/v1/tenants/{stack.tenant_id}/agents", json={"name": "On duty"}).json()

    async def scenario() -> tuple[list[list[dict]], list[dict]]:
        # Someone is on duty (with nobody to take it, the bot keeps the conversation).
        async with await connect_agent(stack.ws_url, agent["agentKey"]), await open_visitor(stack.visitor_url()) as ws:
            answers = [
                await ask(ws, send_message(question))
                for question in ("Do you sell spaceships?", "Can I pay with seashells?")
            ]
            after = [await receive(ws, 15)]
            while after[-1]["type"] != "conversation.status":
                after.append(await receive(ws, 15))
            return answers, after

    try:
        answers, after = asyncio.run(scenario())
    finally:
        model_server.reset(Script(tokens=["Deliveries ", "take ", "2 to 4 ", "working days ", "[1]."]))

    for frames in answers:
        end = frames[-1]
        assert end["type"] == "answer.end" and end["citations"] == []
        assert end["text"] == "Sorry, the help centre does not say."
        assert "".join(f["text"] for f in frames if f["type"] == "answer.delta") == end["text"]
        assert all("ANSWER" not in f.get("text", "") for f in frames)
    # Two answers in a row without a source: the conversation goes to a person (handoff.noAnswerThreshold).
    assert after[-1]["status"] in {"queued", "assigned"}


def test_chunks_of_one_entry_reach_the_model_as_one_source_and_are_cited_once(
    stack: LocalStackInfo, model_server: OpenAISSEServer
) -> None:
    model_server.reset()

    [[*_, end]] = chat(stack, "How long will delivery take?")  # two chunks of shipping-times clear the threshold

    documents = [citation["documentId"] for citation in end["citations"]]
    assert "shipping-times" in documents and len(documents) == len(set(documents))
    prompt = model_server.requests[0].body["messages"][-1]["content"]
    assert prompt.count("Title: Shipping times and delivery options") == 1
    assert prompt.count('<passage id="') == len(documents)
