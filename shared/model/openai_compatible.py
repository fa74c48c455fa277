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
from collections.abc import Iterator
from typing import Any, Literal

import httpx
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr, SecretStr, field_validator

from shared.model.streaming_chat import (
    MAX_ERROR_CHARS,
    FirstTextDeadline,
    ModelServerError,
    StreamEnd,
    StreamingChatModel,
    chat_completions_body,
    chunk_from_event,
    error_text,
    parse_event,
    sse_data,
    usage_metadata,
)

__all__ = ["FirstTextDeadline", "ModelServerError", "OpenAICompatibleChatModel", "chat_completions_body"]


class OpenAICompatibleChatModel(StreamingChatModel):
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
        first_text = self._first_text_deadline("model server")
        wait = first_text.seconds
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
                end = StreamEnd()
                events = sse_data(first_text.watch(response.iter_lines()))
                yield from self._guarded(_chunks(events, end), first_text, end)
        except httpx.TimeoutException as exc:
            raise ModelServerError(f"model server timed out after {wait:g} s ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise ModelServerError(f"model server connection failed: {exc!r}") from exc

    def _first_text_seconds(self) -> float:
        return self.first_token_timeout or self.timeout

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
            stop=self._stop(stop),
            stream_usage=self.stream_usage,
        )


def _chunks(events: Iterator[str], end: StreamEnd) -> Iterator[ChatGenerationChunk | None]:
    for data in events:
        if data == "[DONE]":
            end.reached = True
            _drain(events)
            return
        yield chunk_from_event(parse_event(data))


def _drain(events: Iterator[str]) -> None:
    """Read what follows [DONE] (normally just the end of the body) so the connection can be pooled.
    The answer is complete by then, so a failure here only costs the connection."""
    try:
        for _ in events:
            pass
    except httpx.HTTPError:
        pass


def _result_from_completion(body: Any) -> ChatResult:
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelServerError(
            f"model server sent an unexpected completion: {json.dumps(body)[:MAX_ERROR_CHARS]}"
        ) from None
    if not isinstance(content, str):
        raise ModelServerError("model server sent a completion whose content is not text")
    info = {"finish_reason": choice.get("finish_reason"), "model_name": body.get("model")}
    message = AIMessage(content=content, usage_metadata=usage_metadata(body.get("usage")), response_metadata=info)
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])


def _json_body(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise ModelServerError(
            f"model server sent a response that is not JSON: {response.text[:MAX_ERROR_CHARS]!r}",
            status=response.status_code,
        ) from None
    if isinstance(body, dict) and ("error" in body or body.get("object") == "error"):
        message = error_text(body) or response.text[:MAX_ERROR_CHARS]
        raise ModelServerError(f"model server failed: {message}", status=response.status_code)
    return body


def _raise_for_error_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = error_text(response.json())
    except ValueError:
        message = None
    message = message or response.text.strip()[:MAX_ERROR_CHARS] or response.reason_phrase
    raise ModelServerError(f"model server returned HTTP {response.status_code}: {message}", status=response.status_code)
