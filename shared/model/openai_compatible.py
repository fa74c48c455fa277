"""A langchain-core chat model for any OpenAI-compatible ``/chat/completions`` endpoint, over httpx.

Works with vLLM, TGI's Messages API, Ollama, the llama.cpp server, LM Studio, OpenAI and Azure OpenAI
(``auth_header="api-key"`` plus an ``api-version`` query parameter). It is written
against the wire format rather than on ``langchain_openai`` because that package (and the ``openai``
SDK under it) costs over a second of import time on every Lambda cold start; httpx costs ~0.06 s.

``base_url`` is the API root the way the OpenAI SDK takes it, version prefix included
(``https://api.openai.com/v1``, ``http://vllm:8000/v1``, ``http://ollama:11434/v1``); requests go to
``{base_url}/chat/completions``. As a convenience a bare origin such as ``http://localhost:8000`` (no
path at all) means ``http://localhost:8000/v1``; any other path is used as given, so roots such as
``https://example.com/openai/v1beta`` keep working.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr, SecretStr, field_validator

from shared.errors import UpstreamError

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}
# Enough of an error body to diagnose it, not so much that a log line explodes.
_MAX_ERROR_CHARS = 500


class ModelServerError(UpstreamError):
    """The model server failed: an HTTP error status, an error event inside the stream, a malformed
    response, a timeout or a dropped connection. ``status`` is the upstream HTTP status when known."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OpenAICompatibleChatModel(BaseChatModel):
    """Chat completions over HTTP; ``stream`` uses server-sent events (``"stream": true``).

    Closing the stream early (the consumer stops iterating and the generator is closed) closes the HTTP
    response, so the server sees the disconnect and can stop generating.
    """

    base_url: str
    # Empty: not sent (an Azure deployment URL already names the model).
    model: str
    api_key: SecretStr | None = None
    # "bearer": ``Authorization: Bearer <key>`` (OpenAI and most servers); "api-key": Azure OpenAI.
    auth_header: Literal["bearer", "api-key"] = "bearer"
    # Query parameters added to every request (Azure's ``api-version``).
    query: dict[str, str] = Field(default_factory=dict)
    # Seconds allowed for connecting and between two reads; a long answer may stream for longer in total.
    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    # Streams: the most seconds to wait for the first text (keep-alives do not count) and between
    # two reads afterwards. None: ``timeout``.
    first_token_timeout: float | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=0.2, ge=0)
    max_tokens: int | None = Field(default=1024, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    # Ask for token usage in the last streamed event (``stream_options.include_usage``); turn off
    # for servers that reject unknown fields.
    stream_usage: bool = True
    # Client certificate and CA for mTLS to an on-premises server (see shared/model/secrets.py).
    ssl_context: ssl.SSLContext | None = Field(default=None, exclude=True, repr=False)
    # Optional httpx transport (custom TLS or proxy settings; in-memory transports in unit tests).
    transport: httpx.BaseTransport | None = Field(default=None, exclude=True, repr=False)

    _http: httpx.Client | None = PrivateAttr(default=None)

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value.strip())
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http(s) URL such as http://localhost:8000/v1")
        path = url.path.rstrip("/") or "/v1"
        return str(url.copy_with(path=path))

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model}

    def close(self) -> None:
        """Close the pooled HTTP connections (the client is reused across calls, e.g. warm Lambdas)."""
        if self._http is not None:
            self._http.close()
            self._http = None

    # --- langchain-core hooks ---

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        payload = self._payload(messages, stop, stream=False)
        try:
            response = self._client().post(
                self._endpoint(), json=payload, headers=self._headers(stream=False), params=self.query
            )
        except httpx.TimeoutException as exc:
            raise ModelServerError(f"model server timed out after {self.timeout:g} s ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise ModelServerError(f"model server unreachable: {exc!r}") from exc
        _raise_for_error_status(response)
        return _result_from_completion(_json_body(response))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        payload = self._payload(messages, stop, stream=True)
        wait = self.first_token_timeout or self.timeout
        deadline = time.monotonic() + wait
        try:
            # Leaving this block for any reason, including GeneratorExit when the consumer closes the
            # stream early, closes the response and its connection.
            with self._client().stream(
                "POST",
                self._endpoint(),
                json=payload,
                headers=self._headers(stream=True),
                params=self.query,
                timeout=self._timeouts(read=wait),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_error_status(response)
                if response.headers.get("content-type", "").startswith("application/json"):
                    # The server ignored "stream": true and sent a whole completion.
                    response.read()
                    for generation in _result_from_completion(_json_body(response)).generations:
                        yield ChatGenerationChunk(
                            message=AIMessageChunk(content=generation.message.text),
                            generation_info=generation.generation_info,
                        )
                    return
                yielded = False
                first_text = FirstTextDeadline(deadline, wait)
                events = _sse_data(first_text.watch(response.iter_lines()))
                for data in events:
                    if data == "[DONE]":
                        _drain(events)
                        break
                    chunk = _chunk_from_event(_parse_event(data))
                    if chunk is not None:
                        yielded = True
                        first_text.arrived = first_text.arrived or bool(chunk.text)
                        yield chunk
                if not yielded:
                    # An empty completion is an answer, not a failure: langchain-core raises on zero chunks.
                    yield ChatGenerationChunk(message=AIMessageChunk(content=""))
        except httpx.TimeoutException as exc:
            raise ModelServerError(f"model server timed out after {wait:g} s ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise ModelServerError(f"model server connection failed: {exc!r}") from exc

    # --- HTTP details ---

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                timeout=self._timeouts(read=self.timeout),
                transport=self.transport,
                verify=self.ssl_context if self.ssl_context is not None else True,
            )
        return self._http

    def _timeouts(self, *, read: float) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout or self.timeout, read=read)

    def _endpoint(self) -> str:
        url = httpx.URL(self.base_url)
        return str(url.copy_with(path=url.path + "/chat/completions"))

    def _headers(self, *, stream: bool) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key is not None and self.api_key.get_secret_value():
            if self.auth_header == "api-key":
                headers["api-key"] = self.api_key.get_secret_value()
            else:
                headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        return headers

    def _payload(self, messages: list[BaseMessage], stop: list[str] | None, *, stream: bool) -> dict[str, Any]:
        return chat_completions_body(
            messages,
            model=self.model,
            stream=stream,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            top_p=self.top_p,
            stop=stop,
            stream_usage=self.stream_usage,
        )


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


class FirstTextDeadline:
    """Fails a stream that sends keep-alives or empty deltas but no text by ``deadline`` (total
    silence is the read timeout's job). ``arrived`` is set by the reader at the first text."""

    def __init__(self, deadline: float, seconds: float) -> None:
        self.deadline = deadline
        self.seconds = seconds
        self.arrived = False

    def watch(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            if not self.arrived and time.monotonic() > self.deadline:
                raise ModelServerError(f"model server sent no text within {self.seconds:g} s")
            yield line


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event. Comments (keep-alives), other fields and events without data
    are skipped; the data lines of one event are joined with newlines, as the SSE standard says."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _drain(events: Iterator[str]) -> None:
    """Read what follows [DONE] (normally just the end of the body) so the connection can be pooled.
    The answer is complete by then, so a failure here only costs the connection."""
    try:
        for _ in events:
            pass
    except httpx.HTTPError:
        pass


def _parse_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise ModelServerError(f"model server sent a malformed event: {data[:_MAX_ERROR_CHARS]!r}") from None
    if not isinstance(event, dict):
        raise ModelServerError(f"model server sent a malformed event: {data[:_MAX_ERROR_CHARS]!r}")
    # vLLM and others report failures after the 200 status line as an error event.
    if "error" in event or event.get("object") == "error":
        code = _error_code(event)
        message = _error_text(event) or data[:_MAX_ERROR_CHARS]
        raise ModelServerError(f"model server failed mid-stream: {message}", status=code)
    return event


def _chunk_from_event(event: dict[str, Any]) -> ChatGenerationChunk | None:
    """The text delta of one streamed event; None for events with nothing to pass on."""
    choices = event.get("choices") or []
    choice: dict[str, Any] = choices[0] if choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    # Only "content" reaches the visitor; reasoning models' "reasoning_content" deltas are dropped.
    content = delta.get("content") if isinstance(delta, dict) else None
    usage = _usage(event.get("usage"))
    finish_reason = choice.get("finish_reason")
    if isinstance(content, str) and content:
        return ChatGenerationChunk(message=AIMessageChunk(content=content, usage_metadata=usage))
    if finish_reason or usage:
        info = {"finish_reason": finish_reason, "model_name": event.get("model")}
        return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage), generation_info=info)
    return None


def _result_from_completion(body: Any) -> ChatResult:
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelServerError(
            f"model server sent an unexpected completion: {json.dumps(body)[:_MAX_ERROR_CHARS]}"
        ) from None
    if not isinstance(content, str):
        raise ModelServerError("model server sent a completion whose content is not text")
    info = {"finish_reason": choice.get("finish_reason"), "model_name": body.get("model")}
    message = AIMessage(content=content, usage_metadata=_usage(body.get("usage")), response_metadata=info)
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])


def _usage(raw: Any) -> UsageMetadata | None:
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


def _json_body(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise ModelServerError(
            f"model server sent a response that is not JSON: {response.text[:_MAX_ERROR_CHARS]!r}",
            status=response.status_code,
        ) from None
    if isinstance(body, dict) and ("error" in body or body.get("object") == "error"):
        message = _error_text(body) or response.text[:_MAX_ERROR_CHARS]
        raise ModelServerError(f"model server failed: {message}", status=response.status_code)
    return body


def _raise_for_error_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = _error_text(response.json())
    except ValueError:
        message = None
    message = message or response.text.strip()[:_MAX_ERROR_CHARS] or response.reason_phrase
    raise ModelServerError(f"model server returned HTTP {response.status_code}: {message}", status=response.status_code)


def _error_text(body: Any) -> str | None:
    """The human-readable message of the error bodies OpenAI-compatible servers send:
    OpenAI/Ollama/llama.cpp ``{"error": {"message": ...}}``, TGI ``{"error": "..."}``,
    vLLM ``{"object": "error", "message": ...}``, FastAPI ``{"detail": ...}``."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:_MAX_ERROR_CHARS]
    for candidate in (error, body.get("message"), body.get("detail")):
        if isinstance(candidate, str) and candidate:
            return candidate[:_MAX_ERROR_CHARS]
    if body.get("detail") is not None:
        return json.dumps(body["detail"])[:_MAX_ERROR_CHARS]
    return None


def _error_code(body: dict[str, Any]) -> int | None:
    error = body.get("error")
    for candidate in ((error or {}).get("code") if isinstance(error, dict) else None, body.get("code")):
        if isinstance(candidate, int) and 100 <= candidate <= 599:
            return candidate
    return None
