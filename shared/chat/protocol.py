"""Wire protocol v1 between the chat widget and the engine (docs/protocol.md)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared.errors import BadRequest, MessageTooLarge, UnknownAction

KNOWN_ACTIONS = ("sendMessage",)
# Bytes of JSON accepted before parsing: the 8 KB text limit plus room for the envelope.
MAX_FRAME_BYTES = 16 * 1024


class _Frame(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


# --- client -> server ---


class SendMessage(_Frame):
    action: Literal["sendMessage"]
    client_message_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    text: str = Field(min_length=1)
    conversation_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def parse_client_frame(body: str | None, max_chars: int) -> SendMessage:
    """Validate a raw frame; raises a BadRequest subclass whose message says what is wrong."""
    if body is None or not body.strip():
        raise BadRequest("empty frame: send a JSON object with an 'action'")
    if len(body.encode()) > MAX_FRAME_BYTES:
        raise MessageTooLarge(f"frame is larger than {MAX_FRAME_BYTES} bytes")
    try:
        raw: Any = json.loads(body)
    except ValueError:
        raise BadRequest("frame is not valid JSON") from None
    if not isinstance(raw, dict):
        raise BadRequest("frame must be a JSON object")
    action = raw.get("action")
    if action not in KNOWN_ACTIONS:
        raise UnknownAction(f"unknown action {action!r}; expected one of {', '.join(KNOWN_ACTIONS)}")
    text = raw.get("text")
    if isinstance(text, str) and len(text) > max_chars:
        raise MessageTooLarge(f"text is {len(text)} characters; the limit is {max_chars}")
    try:
        frame = SendMessage.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None
    if not frame.text.strip():
        raise BadRequest("text: must not be blank")
    return frame


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "frame"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


# --- server -> client ---


class Ack(_Frame):
    type: Literal["ack"] = "ack"
    client_message_id: str
    message_id: str
    conversation_id: str


class AnswerDelta(_Frame):
    type: Literal["answer.delta"] = "answer.delta"
    conversation_id: str
    message_id: str
    seq: int
    text: str


class Citation(_Frame):
    document_id: str
    title: str
    snippet: str
    url: str | None = None


class AnswerEnd(_Frame):
    type: Literal["answer.end"] = "answer.end"
    conversation_id: str
    message_id: str
    text: str
    citations: list[Citation]


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str
    message: str
    client_message_id: str | None = None
