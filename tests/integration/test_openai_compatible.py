"""The OpenAI-compatible adapter and the LangChain answer model against a real SSE server on loopback."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage

from shared.chat.streaming import FrameCoalescer
from shared.errors import ConnectionGone, UpstreamError
from shared.knowledge.base import Passage
from shared.model.answer_model import Turn
from shared.model.factory import build_answer_model
from shared.model.openai_compatible import ModelServerError, OpenAICompatibleChatModel
from shared.model.secrets import SecretUnavailable, StaticSecrets, client_certificate_context
from shared.settings import Settings
from tests.support.certs import Pem, Pki, make_pki
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.integration

# Generous: only bounds a hang, never asserts speed.
WAIT_SECONDS = 10


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer() as running:
        yield running


@pytest.fixture
def fresh(server: OpenAISSEServer) -> OpenAISSEServer:
    server.reset(Script())
    return server


def chat_model(server: OpenAISSEServer, api_key: str | None = None) -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(base_url=server.base_url, model="fake-model", api_key=api_key, timeout=10)


def test_streaming_yields_the_tokens_in_order(fresh: OpenAISSEServer) -> None:
    tokens = ["Open", " Settings", ",", " then", " Security", " [1]", ".", " 谢谢", "！"]
    fresh.reset(Script(tokens=tokens, delay=0.002, split_writes=True))

    texts = [chunk.text for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]) if chunk.text]

    assert texts == tokens
    assert fresh.completed.wait(WAIT_SECONDS) and not fresh.client_disconnected.is_set()
    assert fresh.requests[0].body["stream"] is True


def test_non_streaming_call_returns_the_whole_text(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(tokens=["Hello", " there"]))

    message = chat_model(fresh).invoke([HumanMessage(content="hi")])

    assert message.text == "Hello there"
    assert fresh.requests[0].body["stream"] is False


def test_error_status_raises_an_upstream_error_with_status_and_message(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(status=429, error_body={"error": {"message": "Rate limit reached", "code": 429}}))

    with pytest.raises(ModelServerError) as caught:
        list(chat_model(fresh).stream([HumanMessage(content="hi")]))

    assert isinstance(caught.value, UpstreamError)
    assert caught.value.status == 429 and "Rate limit reached" in caught.value.message


def test_error_event_mid_stream_raises_after_the_text_so_far(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(tokens=["a", "b", "c", "d"], fail_after=2))
    received: list[str] = []

    with pytest.raises(ModelServerError, match="CUDA out of memory"):
        for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]):
            received.append(chunk.text)

    assert "".join(received) == "ab"


def test_the_bearer_key_is_sent_and_absent_without_a_key(fresh: OpenAISSEServer) -> None:
    list(chat_model(fresh, api_key="sk-secret-123").stream([HumanMessage(content="hi")]))
    list(chat_model(fresh).stream([HumanMessage(content="hi")]))

    assert fresh.requests[0].headers["authorization"] == "Bearer sk-secret-123"
    assert "authorization" not in fresh.requests[1].headers


def test_closing_the_stream_early_disconnects_from_the_server(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(tokens=[f" t{i}" for i in range(500)], delay=0.01))
    stream = chat_model(fresh).stream([HumanMessage(content="hi")])

    first = [next(stream).text for _ in range(3)]
    stream.close()  # type: ignore[attr-defined]

    assert first == [" t0", " t1", " t2"]
    assert fresh.client_disconnected.wait(WAIT_SECONDS)
    assert not fresh.completed.is_set()
    assert fresh.tokens_sent < 500


def test_the_http_client_is_reused_across_calls(fresh: OpenAISSEServer) -> None:
    model = chat_model(fresh)

    for _ in range(3):
        assert "".join(chunk.text for chunk in model.stream([HumanMessage(content="hi")])) == "Hello, world!"

    assert len(fresh.requests) == 3
    assert len({request.client for request in fresh.requests}) == 1
    model.close()


def test_unreachable_server_raises_an_upstream_error() -> None:
    with OpenAISSEServer() as stopped_later:
        base_url = stopped_later.base_url
    model = OpenAICompatibleChatModel(base_url=base_url, model="m", timeout=5)

    with pytest.raises(ModelServerError, match="connection failed"):
        list(model.stream([HumanMessage(content="hi")]))


# --- the whole gateway: settings -> factory -> grounded prompt -> SSE -> coalesced frames ---


def openai_settings(server: OpenAISSEServer) -> Settings:
    return Settings(
        llm_provider="openai",
        llm_base_url=server.base_url,
        llm_model="fake-model",
        llm_api_key="sk-kefu",
        min_answer_score=0.3,
    )


def test_answer_model_streams_a_grounded_answer_through_the_coalescer(fresh: OpenAISSEServer) -> None:
    tokens = ["You", " can", " reset", " it", " in", " Settings", " [1]", "."]
    fresh.reset(Script(tokens=tokens, delay=0.005))
    model = build_answer_model(openai_settings(fresh))
    passages = [
        Passage(document_id="reset", title="Reset your password", text="Go to Settings > Security.", score=0.8),
        Passage(document_id="noise", title="Shipping", text="We ship worldwide.", score=0.1),
    ]
    answer = model.plan("How do I reset my password?", passages)
    frames: list[tuple[str, int]] = []

    text = FrameCoalescer(lambda t, seq: frames.append((t, seq)), flush_ms=60, flush_chars=400).run(
        model.stream("How do I reset my password?", answer, [Turn(role="visitor", text="hello")])
    )

    assert text == "".join(tokens)
    assert frames[0] == ("You", 0)
    assert "".join(t for t, _ in frames) == text
    sent = fresh.requests[0]
    assert sent.headers["authorization"] == "Bearer sk-kefu"
    roles = [m["role"] for m in sent.body["messages"]]
    assert roles == ["system", "user"]
    prompt = sent.body["messages"][-1]["content"]
    assert prompt.startswith("hello\n\n<passages>")
    assert '<passage id="1">' in prompt and "Go to Settings > Security." in prompt
    assert "We ship worldwide." not in prompt


def test_visitor_gone_mid_answer_cancels_the_model_request(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(tokens=[f" w{i}" for i in range(500)], delay=0.01))
    model = build_answer_model(openai_settings(fresh))
    answer = model.plan("q", [])
    sends = 0

    def send(text: str, seq: int) -> None:
        nonlocal sends
        sends += 1
        if sends == 2:
            raise ConnectionGone("GoneException: the visitor left")

    with pytest.raises(ConnectionGone):
        FrameCoalescer(send, flush_ms=20, flush_chars=400).run(model.stream("q", answer, []))

    assert fresh.client_disconnected.wait(WAIT_SECONDS)
    assert not fresh.completed.is_set()


# --- Azure OpenAI, timeouts, mTLS to an on-premises server ---


def test_azure_sends_the_api_key_header_and_the_api_version(fresh: OpenAISSEServer) -> None:
    deployment = f"http://127.0.0.1:{fresh.port}/openai/deployments/gpt-4o"
    model = OpenAICompatibleChatModel(
        base_url=deployment, model="", api_key="azure-key", auth_header="api-key", query={"api-version": "2024-10-21"}
    )

    assert "".join(chunk.text for chunk in model.stream([HumanMessage(content="hi")])) == "Hello, world!"

    request = fresh.requests[0]
    assert request.path == "/openai/deployments/gpt-4o/chat/completions"
    assert request.query == "api-version=2024-10-21"
    assert request.headers["api-key"] == "azure-key" and "authorization" not in request.headers
    assert "model" not in request.body  # the deployment URL names the model


def test_a_silent_server_fails_at_the_first_token_timeout(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(tokens=["late"], delay=3))
    model = OpenAICompatibleChatModel(base_url=fresh.base_url, model="m", timeout=30, first_token_timeout=0.3)

    with pytest.raises(ModelServerError, match="timed out after 0.3 s"):
        list(model.stream([HumanMessage(content="hi")]))


def test_keep_alives_without_text_still_fail_at_the_first_token_timeout(fresh: OpenAISSEServer) -> None:
    fresh.reset(Script(tokens=["late"], delay=3, ping_every=0.05))
    model = OpenAICompatibleChatModel(base_url=fresh.base_url, model="m", timeout=30, first_token_timeout=0.3)

    with pytest.raises(ModelServerError, match="no text within 0.3 s"):
        list(model.stream([HumanMessage(content="hi")]))
    assert fresh.client_disconnected.wait(WAIT_SECONDS)  # and the request was dropped


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer(tls=pki.write_server_files(tmp_path_factory.mktemp("tls"))) as running:
        yield running


def mtls_secret(pki: Pki, client: Pem) -> str:
    return json.dumps(
        {"certificate": client.certificate, "privateKey": client.private_key, "caBundle": pki.ca.certificate}
    )


def test_mtls_with_the_client_certificate_from_the_secret_store(mtls_server: OpenAISSEServer, pki: Pki) -> None:
    settings = Settings(
        llm_provider="openai", llm_base_url=mtls_server.base_url, llm_model="m", llm_client_cert_secret="kefu/mtls"
    )
    model = build_answer_model(settings, StaticSecrets({"kefu/mtls": mtls_secret(pki, pki.client)}))

    assert "".join(model.stream("hi", model.plan("hi", []), [])) == "Hello, world!"
    assert mtls_server.base_url.startswith("https://")


@pytest.mark.parametrize("who", ["no certificate", "a stranger's certificate"])
def test_mtls_refuses_a_client_without_the_right_certificate(mtls_server: OpenAISSEServer, pki: Pki, who: str) -> None:
    context = ssl.create_default_context(cadata=pki.ca.certificate)
    if who != "no certificate":
        context = client_certificate_context(mtls_secret(pki, pki.stranger))
    model = OpenAICompatibleChatModel(base_url=mtls_server.base_url, model="m", ssl_context=context, timeout=5)

    with pytest.raises(ModelServerError, match="connection failed"):
        list(model.stream([HumanMessage(content="hi")]))


def test_a_bad_client_certificate_secret_says_why(pki: Pki) -> None:
    with pytest.raises(SecretUnavailable, match="needs 'certificate' and 'privateKey'"):
        client_certificate_context(json.dumps({"certificate": pki.client.certificate}))
    with pytest.raises(SecretUnavailable, match="do not match"):
        client_certificate_context(
            json.dumps({"certificate": pki.client.certificate, "privateKey": pki.stranger.private_key})
        )
