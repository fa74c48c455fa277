import json

import pytest

from shared.errors import BadRequest, MessageTooLarge, UnknownAction
from shared.wire.protocol import AnswerDelta, parse_client_frame


def frame(**fields: object) -> str:
    return json.dumps({"action": "sendMessage", "clientMessageId": "c-12345678", "text": "hello", **fields})


def test_valid_frame_is_parsed_with_camel_case_fields() -> None:
    parsed = parse_client_frame(frame(conversationId="c_abc"), max_chars=8192)
    assert parsed.client_message_id == "c-12345678"
    assert parsed.conversation_id == "c_abc"
    assert parsed.text == "hello"


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        (None, BadRequest, "empty frame"),
        ("not json", BadRequest, "not valid JSON"),
        ("[1, 2]", BadRequest, "JSON object"),
        (json.dumps({"action": "nope"}), UnknownAction, "unknown action 'nope'"),
        (json.dumps({"text": "hi"}), UnknownAction, "unknown action None"),
        (json.dumps({"action": "sendMessage", "text": "hi"}), BadRequest, "clientMessageId"),
        (frame(text=""), BadRequest, "text"),
        (frame(text="   "), BadRequest, "blank"),
        (frame(text=5), BadRequest, "text"),
        (frame(clientMessageId="short"), BadRequest, "clientMessageId"),
        (frame(conversationId="../../etc"), BadRequest, "conversationId"),
        (frame(extra="x"), BadRequest, "extra"),
    ],
)
def test_bad_frames_get_a_reason(body: str | None, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as caught:
        parse_client_frame(body, max_chars=8192)
    assert reason in str(caught.value)


def test_text_over_the_limit_is_refused_with_the_limit_named() -> None:
    with pytest.raises(MessageTooLarge, match="limit is 100"):
        parse_client_frame(frame(text="x" * 101), max_chars=100)


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(MessageTooLarge):
        parse_client_frame("{" + " " * 20_000 + "}", max_chars=8192)


def test_server_frames_use_the_wire_names() -> None:
    delta = AnswerDelta(conversation_id="c", message_id="m", seq=0, text="hi")
    assert json.loads(delta.to_json()) == {
        "type": "answer.delta",
        "conversationId": "c",
        "messageId": "m",
        "seq": 0,
        "text": "hi",
    }


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_a_deeply_nested_frame_is_a_bad_request_not_a_crash(opening: str) -> None:
    body = opening * 2500 + "1" + ("]" if opening == "[" else "}") * 2500
    assert len(body.encode()) < 16 * 1024
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_client_frame(body, 8192)
