"""The Bedrock ConverseStream adapter against a real HTTP server speaking Bedrock's event stream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from local.services import use_dummy_aws_credentials
from shared.chat.streaming import FrameCoalescer
from shared.errors import ConnectionGone
from shared.knowledge.base import Passage
from shared.model.answer_model import AnswerStream, Turn
from shared.model.aws_errors import model_client
from shared.model.bedrock import BedrockConverseChatModel
from shared.model.factory import build_answer_model
from shared.model.openai_compatible import ModelServerError
from shared.settings import Settings
from tests.support.aws_stream_server import AwsStreamServer, StreamScript

pytestmark = pytest.mark.integration

WAIT_SECONDS = 10
MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture(scope="module")
def server() -> Iterator[AwsStreamServer]:
    use_dummy_aws_credentials()
    with AwsStreamServer() as running:
        yield running


@pytest.fixture
def fresh(server: AwsStreamServer) -> AwsStreamServer:
    server.reset(StreamScript())
    return server


def chat_model(server: AwsStreamServer, **kwargs: object) -> BedrockConverseChatModel:
    client = model_client(
        "bedrock-runtime", region="us-east-1", endpoint_url=server.url, connect_timeout=2, read_timeout=5
    )
    return BedrockConverseChatModel(model_id=MODEL_ID, client=client, **kwargs)  # type: ignore[arg-type]


def test_streaming_yields_the_text_deltas_in_order(fresh: AwsStreamServer) -> None:
    tokens = ["Open", " Settings", " [1]", ".", " 谢谢", "！"]
    fresh.reset(StreamScript(tokens=tokens, delay=0.002))

    texts = [chunk.text for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]) if chunk.text]

    assert texts == tokens
    assert fresh.completed.wait(WAIT_SECONDS)


def test_the_request_has_the_system_prompt_apart_and_the_inference_settings(fresh: AwsStreamServer) -> None:
    messages = [
        SystemMessage(content="Answer from the passages only."),
        HumanMessage(content="hello"),
        AIMessage(content="Hi! How can I help?"),
        HumanMessage(content="refunds?"),
    ]

    list(chat_model(fresh, temperature=0.1, max_tokens=300, top_p=0.9).stream(messages, stop=["\n\nUser:"]))

    request = fresh.requests[0]
    assert request.path == f"/model/{MODEL_ID}/converse-stream"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256")  # SigV4-signed like the real thing
    assert request.body == {
        "system": [{"text": "Answer from the passages only."}],
        "messages": [
            {"role": "user", "content": [{"text": "hello"}]},
            {"role": "assistant", "content": [{"text": "Hi! How can I help?"}]},
            {"role": "user", "content": [{"text": "refunds?"}]},
        ],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.1, "topP": 0.9, "stopSequences": ["\n\nUser:"]},
    }


def test_an_error_before_streaming_is_a_model_server_error_and_not_retried_by_boto(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(status=429, error_type="ThrottlingException", error_message="Too many tokens"))

    with pytest.raises(ModelServerError) as caught:
        list(chat_model(fresh).stream([HumanMessage(content="hi")]))

    assert caught.value.status == 429 and "ThrottlingException: Too many tokens" in caught.value.message
    assert len(fresh.requests) == 1  # the gateway retries and falls back; boto3 must not add its own


def test_a_stream_that_ends_without_message_stop_is_cut_not_complete(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=["a", "b", "c", "d"], cut_after=2))
    received: list[str] = []

    with pytest.raises(ModelServerError, match="without its end marker"):
        for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]):
            received.append(chunk.text)

    assert "".join(received) == "ab"


def test_an_exception_event_mid_stream_raises_after_the_text_so_far(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=["a", "b", "c", "d"], fail_after=2))
    received: list[str] = []

    with pytest.raises(ModelServerError, match="modelStreamErrorException"):
        for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]):
            received.append(chunk.text)

    assert "".join(received) == "ab"


def test_closing_the_stream_early_disconnects_from_bedrock(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=[f" t{i}" for i in range(500)], delay=0.01))
    stream = chat_model(fresh).stream([HumanMessage(content="hi")])

    first = [next(stream).text for _ in range(3)]
    stream.close()  # type: ignore[attr-defined]

    assert first == [" t0", " t1", " t2"]
    assert fresh.client_disconnected.wait(WAIT_SECONDS)
    assert not fresh.completed.is_set() and fresh.tokens_sent < 500


def test_a_silent_model_times_out_before_the_first_token(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=["late"], delay=3))
    client = model_client(
        "bedrock-runtime", region="us-east-1", endpoint_url=fresh.url, connect_timeout=2, read_timeout=0.3
    )
    model = BedrockConverseChatModel(model_id=MODEL_ID, client=client, first_token_timeout=0.3)

    with pytest.raises(ModelServerError, match="timed out|no text"):
        list(model.stream([HumanMessage(content="hi")]))


def test_invoke_uses_converse(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=["Hello", " there"]))

    message = chat_model(fresh).invoke([HumanMessage(content="hi")])

    assert message.text == "Hello there" and fresh.requests[0].path == f"/model/{MODEL_ID}/converse"


# --- the whole gateway: settings -> factory -> grounded prompt -> event stream -> coalesced frames ---


def bedrock_settings(server: AwsStreamServer) -> Settings:
    return Settings(llm_provider="bedrock", llm_model=MODEL_ID, bedrock_endpoint=server.url, min_answer_score=0.3)


def test_answer_model_streams_a_grounded_answer_with_usage(fresh: AwsStreamServer) -> None:
    tokens = ["Go", " to", " Settings", " [1]", "."]
    fresh.reset(StreamScript(tokens=tokens, delay=0.003, input_tokens=321))
    model = build_answer_model(bedrock_settings(fresh))
    passages = [Passage(document_id="reset", title="Reset", text="Settings > Security.", score=0.8)]
    answer = model.plan("How do I reset my password?", passages)
    frames: list[tuple[str, int]] = []
    stream = model.stream("How do I reset my password?", answer, [Turn(role="bot", text="Hello!")])

    text = FrameCoalescer(lambda t, seq: frames.append((t, seq)), flush_ms=60, flush_chars=400).run(stream)

    assert text == "".join(tokens) and frames[0] == ("Go", 0)
    assert isinstance(stream, AnswerStream)
    assert (stream.usage.provider, stream.usage.input_tokens, stream.usage.output_tokens) == ("bedrock", 321, 5)
    body = fresh.requests[0].body
    assert body["messages"][0]["role"] == "user"  # a leading bot greeting is dropped for Converse
    assert "<passages>" in body["messages"][-1]["content"][0]["text"]
    assert "Never guess" in body["system"][0]["text"]


def test_visitor_gone_mid_answer_cancels_the_bedrock_request(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=[f" w{i}" for i in range(500)], delay=0.01))
    model = build_answer_model(bedrock_settings(fresh))
    sends = 0

    def send(text: str, seq: int) -> None:
        nonlocal sends
        sends += 1
        if sends == 2:
            raise ConnectionGone("GoneException: the visitor left")

    with pytest.raises(ConnectionGone):
        FrameCoalescer(send, flush_ms=20, flush_chars=400).run(model.stream("q", model.plan("q", []), []))

    assert fresh.client_disconnected.wait(WAIT_SECONDS)
    assert not fresh.completed.is_set()
