"""A langchain-core chat model for Amazon SageMaker real-time endpoints with response streaming
(``InvokeEndpointWithResponseStream``), for TGI and vLLM/LMI containers in the customer's account.

Two request bodies, as those containers take them:

- ``messages`` (default): an OpenAI chat-completions body (TGI's Messages API, vLLM, LMI). The
  container applies the model's own chat template. The stream is server-sent events of
  ``chat.completion.chunk`` objects.
- ``generate``: TGI's ``{"inputs", "parameters", "stream": true}``; the stream is server-sent events
  (or JSON lines) of ``{"token": {"text": ...}}``. The prompt is a plain transcript, since the
  model's chat template is not known here: prefer ``messages`` where the container supports it.

The endpoint's bytes arrive in ``PayloadPart`` events cut at arbitrary places: lines are reassembled
before parsing. Closing the stream early closes the HTTP response, which ends the invocation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage, UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field

from shared.model.aws_errors import aws_model_errors
from shared.model.streaming_chat import (
    MAX_ERROR_CHARS,
    ModelServerError,
    StreamEnd,
    StreamingChatModel,
    chat_completions_body,
    chunk_from_event,
    parse_event,
    sse_data,
)

_ROLE_LABELS = {"system": "System", "human": "User", "ai": "Assistant"}


class SageMakerChatModel(StreamingChatModel):
    endpoint_name: str
    client: Any = Field(exclude=True, repr=False)  # a boto3 ``sagemaker-runtime`` client
    payload_format: Literal["messages", "generate"] = "messages"
    # Sent as "model" in messages bodies (vLLM serving several models); None: not sent.
    model: str | None = None
    inference_component: str | None = None

    @property
    def _llm_type(self) -> str:
        return "sagemaker-streaming"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"endpoint_name": self.endpoint_name, "payload_format": self.payload_format}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Streaming is what kefu uses; a whole answer is the stream joined.
        from langchain_core.language_models.chat_models import generate_from_stream

        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": json.dumps(self._body(messages, stop), ensure_ascii=False).encode(),
            "ContentType": "application/json",
        }
        if self.inference_component:
            request["InferenceComponentName"] = self.inference_component
        first_text = self._first_text_deadline(f"SageMaker endpoint {self.endpoint_name}")
        with aws_model_errors(f"SageMaker endpoint {self.endpoint_name}"):
            response = self.client.invoke_endpoint_with_response_stream(**request)
            events = response["Body"]
            try:
                data = sse_data(first_text.watch(_lines(events)), json_lines=True)
                end = StreamEnd()
                yield from self._guarded(_chunks(data, end), first_text, end)
            finally:
                events.close()

    def _body(self, messages: list[BaseMessage], stop: list[str] | None) -> dict[str, Any]:
        stop = self._stop(stop)
        if self.payload_format == "messages":
            return chat_completions_body(
                messages,
                model=self.model,
                stream=True,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                top_p=self.top_p,
                stop=stop,
            )
        parameters: dict[str, Any] = {"details": True, "return_full_text": False}
        if self.max_tokens is not None:
            parameters["max_new_tokens"] = self.max_tokens
        # TGI refuses temperature 0: greedy decoding is "no sampling".
        if self.temperature:
            parameters["temperature"] = self.temperature
            parameters["do_sample"] = True
        if self.top_p is not None and self.top_p < 1:
            parameters["top_p"] = self.top_p
        if stop:
            parameters["stop"] = stop
        return {"inputs": transcript(messages), "parameters": parameters, "stream": True}


def transcript(messages: list[BaseMessage]) -> str:
    """A plain-text prompt for containers that take raw ``inputs``."""
    lines = [f"{_ROLE_LABELS.get(m.type, m.type.capitalize())}: {m.text}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


def _lines(events: Any) -> Iterator[str]:
    """The text lines of the PayloadPart bytes, reassembled across event boundaries."""
    buffer = b""
    for event in events:
        part = event.get("PayloadPart")
        if not part:
            continue
        buffer += part.get("Bytes", b"")
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8").rstrip("\r")
    if buffer.strip():
        yield buffer.decode("utf-8").rstrip("\r")


def _chunks(events: Iterator[str], end: StreamEnd) -> Iterator[ChatGenerationChunk | None]:
    for data in events:
        if data == "[DONE]":
            end.reached = True
            return
        yield _chunk(parse_event(data))


def _chunk(event: dict[str, Any]) -> ChatGenerationChunk | None:
    if "choices" in event or "usage" in event:
        return chunk_from_event(event)
    token = event.get("token")
    if isinstance(token, dict):
        text = token.get("text")
        details = event.get("details") if isinstance(event.get("details"), dict) else None
        usage = None
        if details and isinstance(details.get("generated_tokens"), int):
            generated = details["generated_tokens"]
            usage = UsageMetadata(input_tokens=0, output_tokens=generated, total_tokens=generated)
        info = {"finish_reason": details.get("finish_reason")} if details else None
        if isinstance(text, str) and text and not token.get("special"):
            return ChatGenerationChunk(message=AIMessageChunk(content=text, usage_metadata=usage), generation_info=info)
        if usage is not None or info is not None:
            return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage), generation_info=info)
        return None
    raise ModelServerError(f"SageMaker endpoint sent an unexpected event: {json.dumps(event)[:MAX_ERROR_CHARS]}")
