"""Model faults have bounded outcomes: stream deadlines, one first-token budget for the whole chain,
and a stream without its provider's end marker is a failure (fakes; no network)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from shared.knowledge.base import Passage
from shared.model.answer_model import Answer, AnswerModel, Turn
from shared.model.bedrock import BedrockConverseChatModel
from shared.model.deadlines import StreamDeadlineExceeded, StreamDeadlines, within_deadlines
from shared.model.extractive import ExtractiveModel
from shared.model.gateway import ConfiguredModelGateway
from shared.model.resilience import CircuitBreakers, FallbackAnswerModel, ModelTargetRef, ModelUnavailable
from shared.model.sagemaker import SageMakerChatModel
from shared.model.secrets import SecretsManagerResolver
from shared.model.streaming_chat import ModelServerError
from shared.settings import Settings
from shared.tenant_config import TenantConfig
from shared.tenant_config.model import ModelConfig, ModelTarget

# --- within_deadlines ---


def paced(pieces: list[str], pauses: list[float], released: threading.Event | None = None) -> Iterator[str]:
    for piece, pause in zip(pieces, pauses, strict=True):
        if released is not None:
            released.wait(pause)
        else:
            time.sleep(pause)
        yield piece


def test_pieces_in_time_pass_through_whole() -> None:
    deadlines = StreamDeadlines(first_by=time.monotonic() + 5, between_seconds=5)
    assert list(within_deadlines(iter(["a", "b", "c"]), deadlines, who="m")) == ["a", "b", "c"]


def test_no_first_piece_by_the_deadline_fails_without_waiting_for_the_model() -> None:
    hung = threading.Event()  # the model never answers (until the test ends)
    deadlines = StreamDeadlines(first_by=time.monotonic() + 0.2, between_seconds=5)
    started = time.monotonic()
    with pytest.raises(StreamDeadlineExceeded, match="sent no text"):
        list(within_deadlines(paced(["late"], [30], hung), deadlines, who="m"))
    assert time.monotonic() - started < 5
    hung.set()


def test_silence_after_the_first_piece_fails_with_what_was_sent_kept() -> None:
    hung = threading.Event()
    deadlines = StreamDeadlines(first_by=time.monotonic() + 5, between_seconds=0.2)
    got: list[str] = []
    with pytest.raises(StreamDeadlineExceeded, match="went silent"):
        for piece in within_deadlines(paced(["a", "b"], [0, 30], hung), deadlines, who="m"):
            got.append(piece)
    assert got == ["a"]
    hung.set()


def test_the_whole_answer_deadline_cuts_a_slow_trickle() -> None:
    now = time.monotonic()
    deadlines = StreamDeadlines(first_by=now + 5, between_seconds=5, end_by=now + 0.5)
    got: list[str] = []
    with pytest.raises(StreamDeadlineExceeded, match="did not finish"):
        for piece in within_deadlines(paced(["x"] * 50, [0.1] * 50), deadlines, who="m"):
            got.append(piece)
    assert 1 <= len(got) < 50


def test_errors_of_the_stream_reach_the_caller() -> None:
    def broken() -> Iterator[str]:
        yield "a"
        raise ModelServerError("connection reset")

    deadlines = StreamDeadlines(first_by=time.monotonic() + 5, between_seconds=5)
    with pytest.raises(ModelServerError, match="connection reset"):
        list(within_deadlines(broken(), deadlines, who="m"))


# --- the chain's budget ---


class HangingModel(AnswerModel):
    """Accepts the request and never sends a token (until released)."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        return Answer(citations=passages)

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        self.calls += 1
        self.release.wait(30)
        yield "too late"


class RefusingModel(HangingModel):
    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        self.calls += 1
        raise ModelServerError("connection refused")
        yield ""  # pragma: no cover


class QuoteModel(HangingModel):
    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        self.calls += 1
        yield "From our help centre: …"


def chain(*models: AnswerModel, budget: float, first_token: float = 10, retries: int = 1) -> FallbackAnswerModel:
    refs = [
        ModelTargetRef(
            key=f"k{index}",
            label=f"m{index}",
            model=model,
            first_token_seconds=first_token,
            between_tokens_seconds=5,
            local=isinstance(model, QuoteModel),
        )
        for index, model in enumerate(models)
    ]
    return FallbackAnswerModel(
        refs, CircuitBreakers(failures=99, cooldown_seconds=30), max_retries=retries, first_token_budget_seconds=budget
    )


def test_a_hanging_model_costs_the_budget_not_retries_times_timeouts() -> None:
    hanging = HangingModel()
    model = chain(hanging, HangingModel(), budget=0.6, first_token=0.4)
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="no model answered"):
        list(model.stream("q", Answer(citations=[]), []))
    elapsed = time.monotonic() - started
    assert elapsed < 3  # 0.6 s budget; without it 2 targets x 2 attempts x 0.4 s
    assert hanging.calls == 1  # no retry started once the budget could not hold it
    hanging.release.set()


def test_fast_failures_are_retried_and_fall_back_within_the_budget() -> None:
    refusing, quote = RefusingModel(), QuoteModel()
    model = chain(refusing, quote, budget=5)
    assert list(model.stream("q", Answer(citations=[]), [])) == ["From our help centre: …"]
    assert refusing.calls == 2 and quote.calls == 1


def test_a_local_fallback_still_answers_after_the_budget_is_spent() -> None:
    hanging, quote = HangingModel(), QuoteModel()
    model = chain(hanging, quote, budget=0.3, first_token=10)
    assert list(model.stream("q", Answer(citations=[]), [])) == ["From our help centre: …"]
    hanging.release.set()


# --- per-target deadlines in the tenant's config ---


def test_a_targets_own_deadlines_override_the_deployment_defaults() -> None:
    target = ModelTarget(provider="openai", model="m", endpoint="http://gpu:8000/v1", first_token_seconds=4)
    assert target.deadlines(3, 10, 10) == (3, 4, 10)
    legacy = ModelTarget(provider="openai", model="m", endpoint="http://gpu:8000/v1", timeout_seconds=7)
    assert legacy.deadlines(3, 10, 10) == (3, 7, 7)


def test_the_tenant_chooses_what_visitors_get_when_the_model_is_away() -> None:
    config = ModelConfig.model_validate(
        {"onUnavailable": "extractive", "unavailableText": "Try again, or ask for a person.", "firstTokenSeconds": 5}
    )
    assert config.on_unavailable == "extractive" and config.first_token_seconds == 5
    with pytest.raises(ValueError):
        ModelConfig.model_validate({"onUnavailable": "silence"})


# --- every provider: a stream without its end marker is cut ---


class FakeEventStream:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events)

    def close(self) -> None:
        self.closed = True


class FakeBedrock:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.stream = FakeEventStream(events)

    def converse_stream(self, **request: Any) -> dict[str, Any]:
        return {"stream": self.stream}


class FakeSageMaker:
    def __init__(self, body: bytes) -> None:
        self.stream = FakeEventStream([{"PayloadPart": {"Bytes": body}}])

    def invoke_endpoint_with_response_stream(self, **request: Any) -> dict[str, Any]:
        return {"Body": self.stream}


def bedrock_text(events: list[dict[str, Any]]) -> str:
    model = BedrockConverseChatModel(model_id="m", client=FakeBedrock(events))
    return "".join(chunk.text for chunk in model.stream([HumanMessage(content="hi")]))


def sagemaker_text(body: bytes, payload_format: str = "messages") -> str:
    model = SageMakerChatModel(endpoint_name="e", client=FakeSageMaker(body), payload_format=payload_format)
    return "".join(chunk.text for chunk in model.stream([HumanMessage(content="hi")]))


DELTA = {"contentBlockDelta": {"delta": {"text": "Half a sen"}}}


def test_bedrock_without_message_stop_is_cut() -> None:
    assert bedrock_text([DELTA, {"messageStop": {"stopReason": "end_turn"}}]) == "Half a sen"
    with pytest.raises(ModelServerError, match="without its end marker"):
        bedrock_text([DELTA])


def test_sagemaker_messages_without_done_or_finish_reason_is_cut() -> None:
    chunk = b'data: {"choices":[{"delta":{"content":"Half"}}]}\n\n'
    assert sagemaker_text(chunk + b"data: [DONE]\n\n") == "Half"
    with pytest.raises(ModelServerError, match="without its end marker"):
        sagemaker_text(chunk)


def test_tgi_generate_stream_without_its_final_details_is_cut() -> None:
    token = b'data: {"token": {"text": "Half", "special": false}}\n\n'
    final = b'data: {"token": {"text": "", "special": true}, "details": {"finish_reason": "eos_token"}}\n\n'
    assert sagemaker_text(token + final, "generate") == "Half"
    with pytest.raises(ModelServerError, match="without its end marker"):
        sagemaker_text(token, "generate")


def test_the_tenants_deadlines_and_fallback_choice_reach_its_model() -> None:
    settings = Settings(llm_provider="openai", llm_base_url="http://gpu:8000/v1", llm_model="qwen")
    config = TenantConfig.model_validate(
        {
            "model": {
                "firstTokenSeconds": 4,
                "betweenTokensSeconds": 6,
                "onUnavailable": "extractive",
                "unavailableText": "Back soon.",
                "firstTokenBudgetSeconds": 8,
            }
        }
    )
    gateway = ConfiguredModelGateway(
        settings, lambda tenant: config, SecretsManagerResolver(lambda: None), CircuitBreakers(3, 30)
    )
    tenant_model = gateway.for_tenant("t")
    assert isinstance(tenant_model.fallback, ExtractiveModel) and tenant_model.unavailable_text == "Back soon."
    chain = tenant_model.model
    assert isinstance(chain, FallbackAnswerModel) and chain._budget == 8
    [target] = chain.targets
    assert (target.first_token_seconds, target.between_tokens_seconds) == (4, 6)
    # The deployment's defaults otherwise: error frames, 15 s budget, 10 s per attempt.
    plain = ConfiguredModelGateway(
        settings, lambda tenant: None, SecretsManagerResolver(lambda: None), CircuitBreakers(3, 30)
    )
    default = plain.for_tenant("t")
    assert default.on_unavailable == "error" and default.fallback is None
    assert isinstance(default.model, FallbackAnswerModel) and default.model._budget == 15
    assert default.model.targets[0].first_token_seconds == 10
