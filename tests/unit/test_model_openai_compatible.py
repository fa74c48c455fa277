"""The OpenAI-compatible adapter's wire handling, over an in-memory httpx transport (no sockets).

The same behaviour against a real HTTP server is in tests/integration/test_openai_compatible.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from shared.errors import UpstreamError
from shared.model.openai_compatible import ModelServerError, OpenAICompatibleChatModel

Handler = Callable[[httpx.Request], httpx.Response]


class InMemoryServer:
    """Answers every request with ``respond`` and keeps the requests."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def sse(raw: str) -> Handler:
    return lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw.encode())


def delta(content: str | None = None, **extra: Any) -> str:
    choice_delta = {} if content is None else {"content": content}
    event = {"choices": [{"index": 0, "delta": choice_delta, "finish_reason": None}], **extra}
    return "data: " + json.dumps(event, ensure_ascii=False) + "\n\n"


def model_for(server: InMemoryServer, **overrides: Any) -> OpenAICompatibleChatModel:
    settings: dict[str, Any] = {
        "base_url": "http://model.test/v1",
        "model": "qwen2.5-7b-instruct",
        "transport": httpx.MockTransport(server),
        **overrides,
    }
    return OpenAICompatibleChatModel(**settings)


def texts(model: OpenAICompatibleChatModel) -> list[str]:
    return [chunk.text for chunk in model.stream([HumanMessage(content="hi")]) if chunk.text]


def test_stream_yields_each_content_delta_in_order_and_skips_the_rest() -> None:
    raw = (
        ": keep-alive\n\n"
        + 'data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}\n\n'
        + delta("Hel")
        + "event: message\nid: 7\nretry: 1000\n"
        + delta("lo")[:-1]  # the field lines above belong to this event
        + "\n"
        + delta(None)
        + delta(" 世界")
        + 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        + 'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n'
        + "data: [DONE]\n\n"
        + delta("after done is ignored")
    )
    server = InMemoryServer(sse(raw))

    chunks = list(model_for(server).stream([HumanMessage(content="hi")]))

    assert [chunk.text for chunk in chunks if chunk.text] == ["Hel", "lo", " 世界"]
    usage = [chunk.usage_metadata for chunk in chunks if chunk.usage_metadata]
    assert usage == [{"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}]


def test_sse_details_crlf_no_space_after_colon_and_multiline_data() -> None:
    event = {"choices": [{"index": 0, "delta": {"content": "two\nlines"}}]}
    pretty = json.dumps(event, indent=1).splitlines()
    multiline = "".join(f"data: {line}\n" for line in pretty) + "\n"
    raw = 'data:{"choices":[{"delta":{"content":"a"}}]}\r\n\r\n' + multiline + "data: [DONE]\n\n"

    assert texts(model_for(InMemoryServer(sse(raw)))) == ["a", "two\nlines"]


def test_stream_cut_before_done_is_a_failure_not_a_short_answer() -> None:
    # The server died mid-answer: the body ends with neither [DONE] nor a finish_reason.
    with pytest.raises(ModelServerError, match="without its end marker"):
        texts(model_for(InMemoryServer(sse(delta("only") + delta(" half")))))


def test_a_finish_reason_without_done_ends_the_answer() -> None:
    finish = 'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    assert texts(model_for(InMemoryServer(sse(delta("whole") + finish)))) == ["whole"]


def test_request_carries_model_messages_and_generation_settings() -> None:
    server = InMemoryServer(sse(delta("ok") + "data: [DONE]\n\n"))
    model = model_for(server, api_key="sk-test", temperature=0.0, max_tokens=256)
    messages = [
        SystemMessage(content="be brief"),
        HumanMessage(content="hi"),
        AIMessage(content="hello"),
        ChatMessage(role="developer", content="dev note"),
        HumanMessage(content="bye"),
    ]

    list(model.stream(messages, stop=["\n\n"]))

    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "http://model.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["accept"] == "text/event-stream"
    assert server.body() == {
        "model": "qwen2.5-7b-instruct",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "developer", "content": "dev note"},
            {"role": "user", "content": "bye"},
        ],
        "stream": True,
        "temperature": 0.0,
        "max_tokens": 256,
        "stop": ["\n\n"],
        # Usage (for metering) comes in the last event only when asked for.
        "stream_options": {"include_usage": True},
    }


def test_no_authorization_header_without_a_key_and_unset_options_are_not_sent() -> None:
    server = InMemoryServer(sse("data: [DONE]\n\n"))

    model = model_for(server, temperature=None, max_tokens=None, stream_usage=False)
    list(model.stream([HumanMessage(content="hi")]))

    assert "authorization" not in server.requests[0].headers
    assert set(server.body()) == {"model", "messages", "stream"}


def test_invoke_uses_a_plain_completion() -> None:
    completion = {
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }
    server = InMemoryServer(lambda request: httpx.Response(200, json=completion))

    message = model_for(server).invoke("hello")

    assert message.text == "Hi there"
    assert isinstance(message, AIMessage) and message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] == 6
    assert server.body()["stream"] is False


def test_a_server_that_ignores_stream_true_still_gives_the_text() -> None:
    completion = {"choices": [{"message": {"role": "assistant", "content": "whole answer"}}]}
    server = InMemoryServer(lambda request: httpx.Response(200, json=completion))

    assert texts(model_for(server)) == ["whole answer"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request"}}, "Incorrect API key"),
        (400, {"object": "error", "message": "max_tokens is too large", "code": 400}, "max_tokens is too large"),
        (422, {"error": "Input validation error: inputs too long", "error_type": "validation"}, "inputs too long"),
        (404, {"detail": "Not Found"}, "Not Found"),
        (502, "Bad Gateway from the proxy", "Bad Gateway from the proxy"),
        (503, "", "Service Unavailable"),
    ],
)
@pytest.mark.parametrize("streaming", [True, False])
def test_error_status_becomes_a_model_server_error_with_status_and_message(
    status: int, body: Any, expected: str, streaming: bool
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    model = model_for(InMemoryServer(respond))

    with pytest.raises(ModelServerError) as caught:
        if streaming:
            list(model.stream([HumanMessage(content="hi")]))
        else:
            model.invoke([HumanMessage(content="hi")])

    assert isinstance(caught.value, UpstreamError) and caught.value.code == "upstream_error"
    assert caught.value.status == status
    assert str(status) in caught.value.message and expected in caught.value.message


def test_an_error_event_inside_the_stream_raises_after_the_earlier_text() -> None:
    raw = delta("partial") + 'data: {"error":{"message":"CUDA out of memory","code":500}}\n\n'
    stream = model_for(InMemoryServer(sse(raw))).stream([HumanMessage(content="hi")])

    assert next(stream).text == "partial"
    with pytest.raises(ModelServerError, match="CUDA out of memory") as caught:
        list(stream)
    assert caught.value.status == 500


def test_a_malformed_event_raises_a_clear_error() -> None:
    with pytest.raises(ModelServerError, match="malformed event"):
        texts(model_for(InMemoryServer(sse("data: {not json\n\n"))))


def test_timeouts_and_connection_failures_become_model_server_errors() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ModelServerError, match="timed out after 5 s"):
        texts(model_for(InMemoryServer(timeout), timeout=5))
    with pytest.raises(ModelServerError, match="connection refused"):
        model_for(InMemoryServer(refused)).invoke("hi")


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("http://localhost:8000", "http://localhost:8000/v1"),
        ("http://localhost:8000/", "http://localhost:8000/v1"),
        ("http://localhost:8000/v1/", "http://localhost:8000/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("https://gateway.example.com/openai/v1beta", "https://gateway.example.com/openai/v1beta"),
    ],
)
def test_base_url_is_the_api_root_and_a_bare_origin_means_v1(given: str, normalised: str) -> None:
    assert OpenAICompatibleChatModel(base_url=given, model="m").base_url == normalised


@pytest.mark.parametrize("bad", ["ftp://models.example.com/v1", "localhost:8000", "not a url", "http://"])
def test_base_url_must_be_an_http_url(bad: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        OpenAICompatibleChatModel(base_url=bad, model="m")


def test_an_empty_completion_streams_as_no_text_rather_than_failing() -> None:
    chunks = list(model_for(InMemoryServer(sse("data: [DONE]\n\n"))).stream([HumanMessage(content="hi")]))

    assert "".join(chunk.text for chunk in chunks) == ""
