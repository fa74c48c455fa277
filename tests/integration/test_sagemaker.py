"""The SageMaker streaming adapter against a real HTTP server speaking SageMaker Runtime's event stream,
with the bodies TGI and vLLM/LMI containers send (cut into PayloadParts mid-line)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from local.services import use_dummy_aws_credentials
from shared.chat.streaming import FrameCoalescer
from shared.errors import ConnectionGone
from shared.model.answer_model import AnswerStream
from shared.model.aws_errors import model_client
from shared.model.factory import build_answer_model
from shared.model.openai_compatible import ModelServerError
from shared.model.sagemaker import SageMakerChatModel
from shared.settings import Settings
from tests.support.aws_stream_server import AwsStreamServer, StreamScript

pytestmark = pytest.mark.integration

WAIT_SECONDS = 10
ENDPOINT = "acme-qwen-tgi"


@pytest.fixture(scope="module")
def server() -> Iterator[AwsStreamServer]:
    use_dummy_aws_credentials()
    with AwsStreamServer() as running:
        yield running


@pytest.fixture
def fresh(server: AwsStreamServer) -> AwsStreamServer:
    server.reset(StreamScript())
    return server


def chat_model(server: AwsStreamServer, **kwargs: object) -> SageMakerChatModel:
    client = model_client(
        "sagemaker-runtime", region="us-east-1", endpoint_url=server.url, connect_timeout=2, read_timeout=5
    )
    return SageMakerChatModel(endpoint_name=ENDPOINT, client=client, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("part_bytes", [1, 7, 4096])
def test_messages_format_streams_the_tokens_however_the_bytes_are_cut(fresh: AwsStreamServer, part_bytes: int) -> None:
    tokens = ["退款", "会在", " 3-5 ", "个工作日", "到账 [1]"]
    fresh.reset(StreamScript(tokens=tokens, part_bytes=part_bytes))

    texts = [chunk.text for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]) if chunk.text]

    assert texts == tokens


def test_messages_format_sends_an_openai_chat_body(fresh: AwsStreamServer) -> None:
    model = chat_model(fresh, model="Qwen/Qwen2.5-7B-Instruct", temperature=0.2, max_tokens=256)

    list(model.stream([SystemMessage(content="rules"), HumanMessage(content="hi")]))

    request = fresh.requests[0]
    assert request.path == f"/endpoints/{ENDPOINT}/invocations-response-stream"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "messages": [{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}],
        "stream": True,
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "temperature": 0.2,
        "max_tokens": 256,
    }


def test_generate_format_sends_tgi_inputs_and_reads_token_events(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=["Two", " days", "."], sagemaker_format="generate"))
    model = chat_model(fresh, payload_format="generate", temperature=0.0, max_tokens=100)

    texts = [chunk.text for chunk in model.stream([SystemMessage(content="rules"), HumanMessage(content="hi")])]

    assert "".join(texts) == "Two days."  # the final special token is not text
    body = fresh.requests[0].body
    assert body["inputs"] == "System: rules\n\nUser: hi\n\nAssistant:"
    assert body["stream"] is True
    # TGI refuses temperature 0: greedy decoding is sent as "no sampling".
    assert body["parameters"] == {"details": True, "return_full_text": False, "max_new_tokens": 100}


def test_a_model_error_event_mid_stream_raises_after_the_text_so_far(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=["a", "b", "c"], fail_after=2))
    received: list[str] = []

    with pytest.raises(ModelServerError, match="ModelStreamError"):
        for chunk in chat_model(fresh).stream([HumanMessage(content="hi")]):
            received.append(chunk.text)

    assert "".join(received) == "ab"


@pytest.mark.parametrize("payload_format", ["messages", "generate"])
def test_a_stream_that_ends_without_its_end_marker_is_cut_not_complete(
    fresh: AwsStreamServer, payload_format: str
) -> None:
    fresh.reset(StreamScript(tokens=["a", "b", "c"], cut_after=2, sagemaker_format=payload_format))  # type: ignore[arg-type]
    received: list[str] = []

    with pytest.raises(ModelServerError, match="without its end marker"):
        for chunk in chat_model(fresh, payload_format=payload_format).stream([HumanMessage(content="hi")]):
            received.append(chunk.text)

    assert "".join(received) == "ab"


def test_an_error_status_is_a_model_server_error_with_its_status(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(status=424, error_type="ModelError", error_message="Received server error (500)"))

    with pytest.raises(ModelServerError) as caught:
        list(chat_model(fresh).stream([HumanMessage(content="hi")]))

    assert caught.value.status == 424 and "ModelError" in caught.value.message
    assert len(fresh.requests) == 1


def test_closing_the_stream_early_disconnects_from_the_endpoint(fresh: AwsStreamServer) -> None:
    fresh.reset(StreamScript(tokens=[f" t{i}" for i in range(500)], delay=0.01, part_bytes=4096))
    stream = chat_model(fresh).stream([HumanMessage(content="hi")])

    first = [next(stream).text for _ in range(2)]
    stream.close()  # type: ignore[attr-defined]

    assert first == [" t0", " t1"]
    assert fresh.client_disconnected.wait(WAIT_SECONDS)
    assert not fresh.completed.is_set()


def test_the_answer_model_reports_usage_and_cancels_when_the_visitor_leaves(fresh: AwsStreamServer) -> None:
    settings = Settings(llm_provider="sagemaker", llm_base_url=ENDPOINT, sagemaker_endpoint=fresh.url)
    fresh.reset(StreamScript(tokens=["Hi", " there"], input_tokens=77))
    model = build_answer_model(settings)

    stream = model.stream("hello?", model.plan("hello?", []), [])
    assert "".join(stream) == "Hi there"
    assert isinstance(stream, AnswerStream) and (stream.usage.input_tokens, stream.usage.output_tokens) == (77, 2)

    fresh.reset(StreamScript(tokens=[f" w{i}" for i in range(500)], delay=0.01, part_bytes=4096))

    def send(text: str, seq: int) -> None:
        if seq == 1:
            raise ConnectionGone("the visitor left")

    with pytest.raises(ConnectionGone):
        FrameCoalescer(send, flush_ms=20, flush_chars=400).run(model.stream("q", model.plan("q", []), []))
    assert fresh.client_disconnected.wait(WAIT_SECONDS)
