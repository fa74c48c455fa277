"""A langchain-core chat model for Amazon Bedrock's Converse API (``ConverseStream``), on boto3.

Written on boto3's ``bedrock-runtime`` client rather than ``langchain_aws`` because that package costs
over a second of import time on every cold start; boto3 is loaded by the functions anyway. One API
for every Bedrock model that supports Converse (Claude, Llama, Nova, Mistral, Qwen, ...), with the
model id or an inference profile as ``model_id``.

Closing the stream early closes the HTTP response, so Bedrock stops generating (and billing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from shared.model.aws_errors import aws_model_errors
from shared.model.streaming_chat import StreamEnd, StreamingChatModel

_ROLES = {"human": "user", "ai": "assistant"}


class BedrockConverseChatModel(StreamingChatModel):
    """``stream`` calls ConverseStream; ``invoke`` calls Converse. The client's read timeout covers
    silences; ``first_token_timeout`` a stream that sends events but no text."""

    model_id: str
    # A boto3 ``bedrock-runtime`` client (see shared/model/aws_errors.model_client).
    client: Any = Field(exclude=True, repr=False)

    @property
    def _llm_type(self) -> str:
        return "bedrock-converse"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_id": self.model_id}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with aws_model_errors("Bedrock Converse"):
            response = self.client.converse(**self._request(messages, stop))
        content = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block.get("text", "") for block in content if isinstance(block, dict))
        info = {"finish_reason": response.get("stopReason"), "model_name": self.model_id}
        message = AIMessage(content=text, usage_metadata=_usage(response.get("usage")), response_metadata=info)
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        first_text = self._first_text_deadline("Bedrock")
        with aws_model_errors("Bedrock ConverseStream"):
            response = self.client.converse_stream(**self._request(messages, stop))
            events = response["stream"]
            try:
                end = StreamEnd()
                yield from self._guarded(_chunks(events, self.model_id, end), first_text, end)
            finally:
                # Also on GeneratorExit (the visitor left): drop the connection so Bedrock stops.
                events.close()

    def _request(self, messages: list[BaseMessage], stop: list[str] | None) -> dict[str, Any]:
        system = [{"text": m.text} for m in messages if m.type == "system" and m.text]
        turns = []
        for message in messages:
            if message.type == "system":
                continue
            role = _ROLES.get(message.type)
            if role is None:
                raise ValueError(f"unsupported message type for Bedrock Converse: {message.type!r}")
            turns.append({"role": role, "content": [{"text": message.text}]})
        inference: dict[str, Any] = {}
        if self.max_tokens is not None:
            inference["maxTokens"] = self.max_tokens
        if self.temperature is not None:
            inference["temperature"] = self.temperature
        if self.top_p is not None:
            inference["topP"] = self.top_p
        if stop := self._stop(stop):
            inference["stopSequences"] = stop
        request: dict[str, Any] = {"modelId": self.model_id, "messages": turns}
        if system:
            request["system"] = system
        if inference:
            request["inferenceConfig"] = inference
        return request


def _chunks(events: Any, model_id: str, end: StreamEnd) -> Iterator[ChatGenerationChunk | None]:
    for event in events:
        if "messageStop" in event:
            end.reached = True  # ConverseStream's end marker (the metadata event may follow)
        yield _chunk(event, model_id)


def _chunk(event: dict[str, Any], model_id: str) -> ChatGenerationChunk | None:
    """One ConverseStream event as a chunk: text deltas, the stop reason, and usage (metadata)."""
    if "contentBlockDelta" in event:
        text = event["contentBlockDelta"].get("delta", {}).get("text")
        # Reasoning and tool-use deltas are not for the visitor.
        if isinstance(text, str) and text:
            return ChatGenerationChunk(message=AIMessageChunk(content=text))
        return None
    if "messageStop" in event:
        info = {"finish_reason": event["messageStop"].get("stopReason"), "model_name": model_id}
        return ChatGenerationChunk(message=AIMessageChunk(content=""), generation_info=info)
    if "metadata" in event:
        usage = _usage(event["metadata"].get("usage"))
        if usage is not None:
            return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage))
    return None


def _usage(raw: Any) -> UsageMetadata | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("inputTokens"), raw.get("outputTokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = raw.get("totalTokens")
    total = total if isinstance(total, int) else prompt + completion
    return UsageMetadata(input_tokens=prompt, output_tokens=completion, total_tokens=total)
