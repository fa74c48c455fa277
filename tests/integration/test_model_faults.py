"""A misbehaving OpenAI-compatible server (real HTTP, uvicorn) behind the model gateway: every fault
ends in a bounded, typed outcome. Cut streams and silences are failures, a dead or stuck model costs
the first-token budget (retries and fallbacks included), and fast failures are retried."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from shared.errors import UpstreamError
from shared.knowledge.base import Passage
from shared.model.answer_model import Answer
from shared.model.gateway import ConfiguredModelGateway
from shared.model.resilience import CircuitBreakers, ModelUnavailable
from shared.model.secrets import SecretsManagerResolver
from shared.settings import Settings
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.integration

PASSAGE = Passage(document_id="shipping", title="Shipping", text="Deliveries take 2 to 4 days.", score=0.9)
TOKENS = ["Deliveries ", "take ", "2 to 4 ", "days ", "[1]."]
BUDGET = 2.0


@pytest.fixture
def server() -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer(Script(tokens=TOKENS)) as model_server:
        yield model_server


def settings_for(base_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "llm_provider": "openai",
        "llm_base_url": base_url,
        "llm_model": "qwen",
        "llm_first_token_timeout_seconds": 1.5,
        "llm_between_tokens_timeout_seconds": 1.0,
        "llm_first_token_budget_seconds": BUDGET,
        "llm_connect_timeout_seconds": 1.0,
        **extra,
    }
    return Settings.model_validate(values)


def answer(settings: Settings) -> Iterator[str]:
    gateway = ConfiguredModelGateway(
        settings,
        lambda tenant: None,
        SecretsManagerResolver(lambda: None),
        CircuitBreakers(failures=5, cooldown_seconds=30),
    )
    model = gateway.for_tenant("t").model
    return iter(model.stream("How long does delivery take?", Answer(citations=[PASSAGE]), []))


def collect(pieces: Iterator[str]) -> tuple[list[str], Exception | None, float]:
    started, got = time.monotonic(), []
    try:
        for piece in pieces:
            got.append(piece)
    except Exception as exc:
        return got, exc, time.monotonic() - started
    return got, None, time.monotonic() - started


def test_a_healthy_stream_is_whole(server: OpenAISSEServer) -> None:
    got, error, _ = collect(answer(settings_for(server.base_url)))
    assert error is None and "".join(got) == "".join(TOKENS)


def test_a_stream_cut_without_done_fails_after_the_text_it_gave(server: OpenAISSEServer) -> None:
    server.reset(Script(tokens=TOKENS, cut_after=2))
    got, error, _ = collect(answer(settings_for(server.base_url)))
    assert "".join(got) == "Deliveries take "
    assert isinstance(error, UpstreamError) and "end marker" in str(error)


def test_a_model_that_accepts_and_never_answers_costs_the_budget(server: OpenAISSEServer) -> None:
    server.reset(Script(tokens=TOKENS, hang_before_headers=30))
    got, error, elapsed = collect(answer(settings_for(server.base_url)))
    assert got == [] and isinstance(error, ModelUnavailable)
    assert elapsed < BUDGET + 3  # not retries x timeouts, and far from the 720 s visibility timeout
    assert len(server.requests) <= 2


def test_a_model_stuck_before_its_first_token_costs_the_budget(server: OpenAISSEServer) -> None:
    server.reset(Script(tokens=TOKENS, hang_before_first=30))
    got, error, elapsed = collect(answer(settings_for(server.base_url)))
    assert got == [] and isinstance(error, ModelUnavailable) and elapsed < BUDGET + 3


def test_a_model_that_goes_silent_mid_answer_is_cut(server: OpenAISSEServer) -> None:
    # A token every 2.5 s: the first one is in time, the pause after it is over the 1 s limit.
    server.reset(Script(tokens=["Deliveries ", "take"], delay=2.5))
    patient = settings_for(server.base_url, llm_first_token_timeout_seconds=5, llm_first_token_budget_seconds=5)
    got, error, elapsed = collect(answer(patient))
    assert got == ["Deliveries "] and isinstance(error, UpstreamError) and "silent" in str(error)
    assert elapsed < 10


def test_slow_tokens_within_the_between_token_deadline_are_a_whole_answer(server: OpenAISSEServer) -> None:
    server.reset(Script(tokens=TOKENS, delay=0.3))
    got, error, _ = collect(answer(settings_for(server.base_url)))
    assert error is None and "".join(got) == "".join(TOKENS)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_an_overloaded_model_is_retried_and_then_answers(server: OpenAISSEServer, status: int) -> None:
    server.reset(Script(tokens=TOKENS, status=status, fail_first=1))
    got, error, _ = collect(answer(settings_for(server.base_url)))
    assert error is None and "".join(got) == "".join(TOKENS)
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_model_that_keeps_failing_is_unavailable_quickly(server: OpenAISSEServer, status: int) -> None:
    server.reset(Script(tokens=TOKENS, status=status))
    got, error, elapsed = collect(answer(settings_for(server.base_url)))
    assert got == [] and isinstance(error, ModelUnavailable) and f"HTTP {status}" in str(error)
    assert elapsed < BUDGET + 3


def test_a_refused_connection_is_unavailable_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket is closed
    got, error, elapsed = collect(answer(settings_for(f"http://127.0.0.1:{port}/v1")))
    assert got == [] and isinstance(error, ModelUnavailable) and elapsed < BUDGET + 3


def test_a_fallback_answers_within_the_budget_when_the_primary_hangs(server: OpenAISSEServer) -> None:
    with OpenAISSEServer(Script(tokens=["Backup ", "answer."])) as backup:
        server.reset(Script(tokens=TOKENS, hang_before_headers=30))
        fallbacks = [{"provider": "openai", "endpoint": backup.base_url, "model": "backup"}]
        got, error, elapsed = collect(
            answer(settings_for(server.base_url, llm_fallbacks=fallbacks, llm_first_token_timeout_seconds=1))
        )
    assert error is None and "".join(got) == "Backup answer." and elapsed < BUDGET + 3
