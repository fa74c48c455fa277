"""Retries, fallbacks and circuit breakers in front of the answer models (fakes, a fake clock)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.errors import UpstreamError
from shared.knowledge.base import Passage
from shared.model.answer_model import Answer, AnswerModel, AnswerStream, ModelUsage, Turn
from shared.model.openai_compatible import ModelServerError
from shared.model.resilience import CircuitBreakers, FallbackAnswerModel, ModelTargetRef


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedModel(AnswerModel):
    """Fails its first ``failures`` streams before the first piece (with ``error``), then streams
    ``pieces``; can fail after the first piece too."""

    def __init__(
        self,
        name: str,
        pieces: list[str],
        *,
        failures: int = 0,
        error: Exception | None = None,
        fail_mid_stream: bool = False,
    ) -> None:
        self.name = name
        self.pieces = pieces
        self.failures = failures
        self.error = error or ModelServerError("model server timed out", status=None)
        self.fail_mid_stream = fail_mid_stream
        self.calls = 0
        self.closed = 0

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        return Answer(citations=[p for p in passages if p.document_id.startswith(self.name)])

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
        self.calls += 1
        usage = ModelUsage(
            provider=self.name, model=f"{self.name}-model", input_tokens=10, output_tokens=len(self.pieces)
        )
        return AnswerStream(self._pieces(self.calls <= self.failures), usage)

    def _pieces(self, fail: bool) -> Iterator[str]:
        try:
            if fail:
                raise self.error
            for index, piece in enumerate(self.pieces):
                if self.fail_mid_stream and index == 1:
                    raise ModelServerError("dropped mid-stream")
                yield piece
        finally:
            self.closed += 1


def chain(*models: ScriptedModel, breakers: CircuitBreakers | None = None, retries: int = 1) -> FallbackAnswerModel:
    refs = [ModelTargetRef(key=m.name, label=m.name, model=m) for m in models]
    return FallbackAnswerModel(
        refs, breakers or CircuitBreakers(3, 30, clock=Clock()), max_retries=retries, sleep=lambda _: None
    )


def run(model: FallbackAnswerModel) -> tuple[str, ModelUsage]:
    stream = model.stream("q", Answer(citations=[]), [])
    text = "".join(stream)
    assert isinstance(stream, AnswerStream)
    return text, stream.usage


def test_a_healthy_primary_answers_without_retries() -> None:
    primary, backup = ScriptedModel("onprem", ["a", "b"]), ScriptedModel("bedrock", ["x"])

    text, usage = run(chain(primary, backup))

    assert text == "ab" and (primary.calls, backup.calls) == (1, 0)
    assert (usage.provider, usage.failed_attempts, usage.fallback) == ("onprem", 0, False)


def test_a_failure_before_the_first_token_is_retried_on_the_same_target() -> None:
    primary = ScriptedModel("onprem", ["ok"], failures=1)

    text, usage = run(chain(primary, ScriptedModel("bedrock", ["x"])))

    assert text == "ok" and primary.calls == 2
    assert usage.failed_attempts == 1 and not usage.fallback


def test_after_its_retries_the_next_target_of_the_chain_answers() -> None:
    primary, backup = ScriptedModel("onprem", ["a"], failures=5), ScriptedModel("bedrock", ["from ", "bedrock"])

    text, usage = run(chain(primary, backup, retries=1))

    assert text == "from bedrock"
    assert primary.calls == 2 and backup.calls == 1
    assert (usage.provider, usage.failed_attempts, usage.fallback) == ("bedrock", 2, True)
    assert primary.closed == 2  # each failed attempt's stream was closed


def test_final_errors_skip_the_retries_but_still_fall_back() -> None:
    unauthorized = ModelServerError("model server returned HTTP 401: bad key", status=401)
    primary, backup = ScriptedModel("onprem", ["a"], failures=5, error=unauthorized), ScriptedModel("bedrock", ["x"])

    text, _ = run(chain(primary, backup, retries=3))

    assert text == "x" and primary.calls == 1


def test_when_every_target_fails_the_error_names_each() -> None:
    model = chain(ScriptedModel("onprem", ["a"], failures=9), ScriptedModel("bedrock", ["b"], failures=9), retries=0)

    with pytest.raises(UpstreamError, match="no model answered: onprem: .*; bedrock: "):
        run(model)


def test_an_empty_stream_counts_as_a_failure() -> None:
    text, usage = run(chain(ScriptedModel("empty", []), ScriptedModel("bedrock", ["x"]), retries=0))

    assert text == "x" and usage.fallback


def test_after_the_first_token_a_failure_propagates_and_nothing_else_is_asked() -> None:
    primary, backup = ScriptedModel("onprem", ["a", "b", "c"], fail_mid_stream=True), ScriptedModel("bedrock", ["x"])
    stream = chain(primary, backup).stream("q", Answer(citations=[]), [])

    assert next(stream) == "a"
    with pytest.raises(ModelServerError, match="mid-stream"):
        next(stream)
    assert backup.calls == 0


def test_closing_the_answer_closes_the_answering_stream() -> None:
    primary = ScriptedModel("onprem", [f"p{i}" for i in range(100)])
    stream = chain(primary).stream("q", Answer(citations=[]), [])

    next(stream)
    stream.close()

    assert primary.closed == 1


def test_plan_is_the_primary_targets() -> None:
    passages = [
        Passage(document_id="onprem-1", title="t", text="x", score=0.9),
        Passage(document_id="b", title="t", text="y", score=0.9),
    ]
    model = chain(ScriptedModel("onprem", ["a"]), ScriptedModel("bedrock", ["b"]))

    assert [p.document_id for p in model.plan("q", passages).citations] == ["onprem-1"]


def test_the_breaker_opens_after_repeated_failures_then_lets_one_trial_through() -> None:
    clock = Clock()
    breakers = CircuitBreakers(failures=2, cooldown_seconds=30, clock=clock)
    primary, backup = ScriptedModel("onprem", ["p"], failures=2), ScriptedModel("bedrock", ["b"])
    model = chain(primary, backup, breakers=breakers, retries=0)

    assert run(model)[0] == "b" and run(model)[0] == "b"  # two failures: the breaker opens
    assert breakers.state("onprem") == "open"
    assert run(model)[0] == "b" and primary.calls == 2  # skipped while open: no timeout paid

    clock.now += 31
    assert breakers.state("onprem") == "half-open"
    assert run(model)[0] == "p"  # the trial succeeds (the primary recovered): closed again
    assert breakers.state("onprem") == "closed" and primary.calls == 3


def test_a_failed_trial_reopens_the_breaker_for_a_whole_cooldown() -> None:
    clock = Clock()
    breakers = CircuitBreakers(failures=1, cooldown_seconds=10, clock=clock)
    breakers.failed("k")
    clock.now += 11

    assert breakers.allow("k") is True
    assert breakers.allow("k") is False  # one trial at a time
    breakers.failed("k")
    assert breakers.state("k") == "open"
    clock.now += 9
    assert breakers.allow("k") is False


def test_with_every_breaker_open_the_longest_open_target_is_tried_once() -> None:
    clock = Clock()
    breakers = CircuitBreakers(failures=1, cooldown_seconds=60, clock=clock)
    breakers.failed("onprem")
    clock.now += 1
    breakers.failed("bedrock")
    primary, backup = ScriptedModel("onprem", ["back"]), ScriptedModel("bedrock", ["b"])

    text, _ = run(chain(primary, backup, breakers=breakers, retries=3))

    assert text == "back" and (primary.calls, backup.calls) == (1, 0)
