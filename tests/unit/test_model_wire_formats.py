"""Wire formats without a network: the event stream encoder the test servers use (checked against
botocore's own decoder), SageMaker's line reassembly, and the lazy tracer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from shared.model.openai_compatible import ModelServerError
from shared.model.sagemaker import _chunk, _lines
from shared.model.streaming_chat import sse_data
from shared.observability import LazyTracer
from tests.support import aws_eventstream as es


def decode(raw: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(message.headers, message.payload) for message in buffer]


def test_the_encoder_produces_messages_botocore_decodes_with_valid_crcs() -> None:
    raw = es.event("contentBlockDelta", {"delta": {"text": "你好"}}) + es.exception("throttlingException", "slow down")

    [(headers, payload), (error_headers, error_payload)] = decode(raw)

    assert headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(payload) == {"delta": {"text": "你好"}}
    assert error_headers[":message-type"] == "exception" and json.loads(error_payload) == {"message": "slow down"}


def test_a_corrupted_message_fails_botocores_crc_check() -> None:
    raw = bytearray(es.event("PayloadPart", b"data: x\n", content_type="application/octet-stream"))
    raw[-6] ^= 0xFF  # flip a payload byte

    with pytest.raises(ChecksumMismatch):
        decode(bytes(raw))


def parts(*chunks: bytes) -> list[dict[str, object]]:
    return [{"PayloadPart": {"Bytes": chunk}} for chunk in chunks]


def test_lines_are_reassembled_across_payload_parts() -> None:
    assert list(_lines(parts(b'data: {"a"', b": 1}\n\nda", b"ta: [DONE]\n", b"tail"))) == [
        'data: {"a": 1}',
        "",
        "data: [DONE]",
        "tail",
    ]


@pytest.mark.parametrize(
    ("line", "data"),
    [
        ("data: {}", ["{}"]),
        ("data:{}", ["{}"]),
        ('{"token": {}}', ['{"token": {}}']),
        (": ping", []),
        ("event: x", []),
        ("", []),
    ],
)
def test_sse_and_json_lines_both_give_their_data(line: str, data: list[str]) -> None:
    assert list(sse_data([line], json_lines=True)) == data


def test_json_lines_are_not_sse_unless_asked_for() -> None:
    lines = ['{"token": {}}', "data: {}", "", '{"token": {}}']
    assert list(sse_data(lines)) == ["{}"]
    assert list(sse_data(lines, json_lines=True)) == ['{"token": {}}', "{}", '{"token": {}}']


def test_tgi_token_events_give_text_and_skip_special_tokens() -> None:
    text = _chunk({"token": {"text": "Hi", "special": False}, "details": None})
    eos = _chunk(
        {"token": {"text": "</s>", "special": True}, "details": {"generated_tokens": 3, "finish_reason": "eos_token"}}
    )

    assert text is not None and text.text == "Hi"
    assert eos is not None and eos.text == "" and eos.message.usage_metadata["output_tokens"] == 3  # type: ignore[attr-defined,index]


def test_an_unknown_event_is_a_clear_error() -> None:
    with pytest.raises(ModelServerError, match="unexpected event"):
        _chunk({"outputs": ["?"]})


def test_the_lazy_tracer_runs_handlers_untraced_outside_lambda() -> None:
    tracer = LazyTracer(service="test")

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, int], context: object) -> int:
        return event["n"] + 1

    @tracer.capture_method
    def helper(value: int) -> int:
        return value * 2

    assert handler({"n": 1}, None) == 2 and helper(21) == 42
    assert tracer.real() is None
    assert handler.__name__ == "handler"


def test_importing_the_handlers_does_not_load_the_xray_sdk() -> None:
    code = (
        "import sys, functions.generate.handler, functions.message.handler, functions.connect.handler;"
        "print('aws_xray_sdk' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
