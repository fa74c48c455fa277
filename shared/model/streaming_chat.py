"""What kefu's streaming chat models share: the sampling settings, the stream loop (first-text
deadline, empty completions), the model-server error, and the OpenAI chat-completions wire format
(also spoken by SageMaker's TGI/vLLM containers).

No HTTP library here: the Bedrock and SageMaker adapters (on boto3) import this module without paying
for httpx, which only the OpenAI-compatible adapter uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, ChatMessage, UsageMetadata
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field

from shared.errors import UpstreamError

# Enough of an error body to diagnose it, not so much that a log line explodes.
MAX_ERROR_CHARS = 500
DEFAULT_FIRST_TOKEN_SECONDS = 15.0
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class ModelServerError(UpstreamError):
    """The model server failed: an HTTP error status, an error event inside the stream, a malformed
    response, a timeout or a dropped connection. ``status`` is the upstream HTTP status when known."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FirstTextDeadline:
    """Fails a stream that sends keep-alives or empty deltas but no text by ``deadline`` (total
    silence is the read timeout's job). ``arrived`` is set at the first text."""

    def __init__(self, deadline: float, seconds: float, who: str = "model server") -> None:
        self.deadline = deadline
        self.seconds = seconds
        self.who = who
        self.arrived = False

    def check(self) -> None:
        if not self.arrived and time.monotonic() > self.deadline:
            raise ModelServerError(f"{self.who} sent no text within {self.seconds:g} s")

    def watch(self, lines: Iterable[str]) -> Iterator[str]:
        """Checks at every raw line, so keep-alive comments (which make no event) count too."""
        for line in lines:
            self.check()
            yield line


class StreamEnd:
    """Set by an adapter when the stream carried the provider's end marker (or a chunk with a
    ``finish_reason`` did): only then is what arrived the whole answer."""

    def __init__(self) -> None:
        self.reached = False


class StreamingChatModel(BaseChatModel):
    """A langchain-core chat model that streams: the sampling settings every adapter takes, and
    ``_guarded`` for the stream loop. An adapter's ``_stream`` turns its wire format into chunks
    (None for parts that carry nothing to pass on) and yields from ``_guarded``."""

    temperature: float | None = Field(default=0.2, ge=0)
    max_tokens: int | None = Field(default=1024, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    # The tenant's stop sequences (model.parameters.stop); a caller's own ``stop`` argument wins.
    stop_sequences: list[str] | None = Field(default=None, max_length=4)
    # Seconds to the first text (keep-alives and empty deltas do not count).
    first_token_timeout: float | None = Field(default=DEFAULT_FIRST_TOKEN_SECONDS, gt=0)

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        return stop or self.stop_sequences or None

    def _first_text_seconds(self) -> float:
        return self.first_token_timeout or DEFAULT_FIRST_TOKEN_SECONDS

    def _first_text_deadline(self, who: str) -> FirstTextDeadline:
        """Started before the request, so a slow response counts against it too."""
        seconds = self._first_text_seconds()
        return FirstTextDeadline(time.monotonic() + seconds, seconds, who)

    @staticmethod
    def _guarded(
        chunks: Iterable[ChatGenerationChunk | None], first_text: FirstTextDeadline, end: StreamEnd
    ) -> Iterator[ChatGenerationChunk]:
        """``chunks`` with the first-text deadline checked at every item, and one empty chunk when
        there were none: an empty completion is an answer (langchain-core raises on zero chunks).

        A stream that stops without the provider's end marker (``[DONE]``, a ``finish_reason``,
        Bedrock's ``messageStop``) was cut (the server died, a proxy dropped the connection): that
        is a failure, never a short answer."""
        yielded = False
        for chunk in chunks:
            first_text.check()
            if chunk is None:
                continue
            if (chunk.generation_info or {}).get("finish_reason"):
                end.reached = True
            yielded = True
            first_text.arrived = first_text.arrived or bool(chunk.text)
            yield chunk
        if not end.reached:
            raise ModelServerError(f"{first_text.who} ended the stream without its end marker (the answer is cut)")
        if not yielded:
            yield ChatGenerationChunk(message=AIMessageChunk(content=""))


# --- the OpenAI chat-completions wire format ---


def chat_completions_body(
    messages: list[BaseMessage],
    *,
    model: str | None,
    stream: bool,
    temperature: float | None,
    max_tokens: int | None,
    top_p: float | None = None,
    stop: list[str] | None = None,
    stream_usage: bool = False,
) -> dict[str, Any]:
    """An OpenAI chat-completions request body (also what SageMaker's TGI/vLLM containers take)."""
    payload: dict[str, Any] = {"messages": [_to_wire(message) for message in messages], "stream": stream}
    if model:
        payload["model"] = model
    if temperature is not None:
        payload["temperature"] = temperature
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if top_p is not None:
        payload["top_p"] = top_p
    if stop:
        payload["stop"] = stop
    if stream and stream_usage:
        payload["stream_options"] = {"include_usage": True}
    return payload


def _to_wire(message: BaseMessage) -> dict[str, str]:
    if isinstance(message, ChatMessage):
        role = message.role
    elif message.type in _ROLES:
        role = _ROLES[message.type]
    else:
        raise ValueError(f"unsupported message type for chat completions: {message.type!r}")
    return {"role": role, "content": message.text}


def sse_data(lines: Iterable[str], *, json_lines: bool = False) -> Iterator[str]:
    """The data of each server-sent event. Comments (keep-alives), other fields and events without data
    are skipped; the data lines of one event are joined with newlines, as the SSE standard says.

    With ``json_lines``, a line that is a bare JSON value (TGI's JSON-lines streams) is an event of its
    own; without, such lines are not SSE fields and are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        if json_lines and line.lstrip().startswith(("{", "[")):
            if data:
                yield "\n".join(data)
                data = []
            yield line.strip()
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def parse_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise ModelServerError(f"model server sent a malformed event: {data[:MAX_ERROR_CHARS]!r}") from None
    if not isinstance(event, dict):
        raise ModelServerError(f"model server sent a malformed event: {data[:MAX_ERROR_CHARS]!r}")
    # vLLM and others report failures after the 200 status line as an error event.
    if "error" in event or event.get("object") == "error":
        code = error_code(event)
        message = error_text(event) or data[:MAX_ERROR_CHARS]
        raise ModelServerError(f"model server failed mid-stream: {message}", status=code)
    return event


def chunk_from_event(event: dict[str, Any]) -> ChatGenerationChunk | None:
    """The text delta of one streamed event; None for events with nothing to pass on."""
    choices = event.get("choices") or []
    choice: dict[str, Any] = choices[0] if choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    # Only "content" reaches the visitor; reasoning models' "reasoning_content" deltas are dropped.
    content = delta.get("content") if isinstance(delta, dict) else None
    usage = usage_metadata(event.get("usage"))
    finish_reason = choice.get("finish_reason")
    if isinstance(content, str) and content:
        return ChatGenerationChunk(message=AIMessageChunk(content=content, usage_metadata=usage))
    if finish_reason or usage:
        info = {"finish_reason": finish_reason, "model_name": event.get("model")}
        return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage), generation_info=info)
    return None


def usage_metadata(raw: Any) -> UsageMetadata | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = raw.get("total_tokens")
    return UsageMetadata(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=total if isinstance(total, int) else prompt + completion,
    )


def error_text(body: Any) -> str | None:
    """The human-readable message of the error bodies OpenAI-compatible servers send:
    OpenAI/Ollama/llama.cpp ``{"error": {"message": ...}}``, TGI ``{"error": "..."}``,
    vLLM ``{"object": "error", "message": ...}``, FastAPI ``{"detail": ...}``."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:MAX_ERROR_CHARS]
    for candidate in (error, body.get("message"), body.get("detail")):
        if isinstance(candidate, str) and candidate:
            return candidate[:MAX_ERROR_CHARS]
    if body.get("detail") is not None:
        return json.dumps(body["detail"])[:MAX_ERROR_CHARS]
    return None


def error_code(body: dict[str, Any]) -> int | None:
    error = body.get("error")
    for candidate in ((error or {}).get("code") if isinstance(error, dict) else None, body.get("code")):
        if isinstance(candidate, int) and 100 <= candidate <= 599:
            return candidate
    return None
