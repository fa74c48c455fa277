"""Retries, a fallback chain and circuit breakers in front of the answer models.

Before the first token an answer can still be given by someone else: each target gets bounded
retries (with a short backoff) for failures that may pass, then the next target of the chain is
tried (e.g. on-premises vLLM -> Bedrock -> the extractive quote), all within one first-token budget;
when nothing answered, ``ModelUnavailable`` (the generator sends ``model_unavailable`` or the
tenant's extractive fallback). After the first token nothing is retried: the text is already on the
visitor's screen, so the failure propagates and the generator ends the answer as incomplete
(``answer.end`` with ``complete: false``).

A circuit breaker per target (per warm container) skips a target that failed ``failures`` times in a
row for ``cooldown_seconds``, then lets a single trial through: a dead on-premises server costs its
timeout once, not on every question.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.errors import UpstreamError
from shared.knowledge.base import Passage
from shared.model.answer_model import Answer, AnswerModel, AnswerStream, ModelUsage, Turn, close_stream
from shared.model.deadlines import StreamDeadlineExceeded, StreamDeadlines, within_deadlines
from shared.observability import logger

# HTTP statuses that will not change on a retry of the same request (bad request, auth, not found).
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 422})
_MAX_BACKOFF_SECONDS = 2.0
# An attempt that would get less time than this to its first text is not started.
_MIN_ATTEMPT_SECONDS = 0.5


class ModelUnavailable(UpstreamError):
    """No target of the chain produced a first piece within the budget."""

    code = "model_unavailable"


@dataclass
class _BreakerState:
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False


class CircuitBreakers:
    """Breakers keyed by target identity; thread-safe (the local emulator runs handlers in threads)."""

    def __init__(self, failures: int, cooldown_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self._threshold = failures
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._states: dict[str, _BreakerState] = {}
        self._lock = threading.Lock()

    def state(self, key: str) -> str:
        with self._lock:
            return self._state_of(self._states.get(key))

    def _state_of(self, state: _BreakerState | None) -> str:
        if state is None or state.opened_at is None:
            return "closed"
        return "half-open" if self._clock() - state.opened_at >= self._cooldown else "open"

    def allow(self, key: str) -> bool:
        """Closed: yes. Open: no. Half-open: yes for one trial at a time."""
        with self._lock:
            state = self._states.get(key)
            status = self._state_of(state)
            if status == "closed":
                return True
            if status == "open" or state is None or state.trial_running:
                return False
            state.trial_running = True
            return True

    def opened_at(self, key: str) -> float:
        with self._lock:
            state = self._states.get(key)
            return state.opened_at if state and state.opened_at is not None else float("-inf")

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def failed(self, key: str) -> None:
        with self._lock:
            state = self._states.setdefault(key, _BreakerState())
            state.failures += 1
            state.trial_running = False
            if state.opened_at is not None or state.failures >= self._threshold:
                # A failed trial re-opens the breaker for a whole cooldown.
                state.opened_at = self._clock()


@dataclass(frozen=True)
class ModelTargetRef:
    """One link of the chain: its breaker key (config identity), a label for logs, the model, and
    its stream deadlines (seconds to the first text, and of silence between pieces after it)."""

    key: str
    label: str
    model: AnswerModel
    first_token_seconds: float = 15.0
    between_tokens_seconds: float = 15.0
    # Answers without any upstream call (the extractive quote): tried even when the budget is spent.
    local: bool = False


def is_final(exc: BaseException) -> bool:
    """Failures a retry of the same request cannot fix (the next target may still succeed)."""
    status = getattr(exc, "status", None)
    return (isinstance(status, int) and status in _FINAL_STATUSES) or isinstance(exc, (ValueError, TypeError))


class FallbackAnswerModel(AnswerModel):
    """The first target's plan; the stream of the first target that yields a first piece.

    Everything before the first piece (each attempt, retries, backoffs, fallbacks) shares one budget,
    ``first_token_budget_seconds``, counted from the call to ``stream``: an attempt waits for its
    first text at most its own ``first_token_seconds`` and never past the budget, and no attempt
    starts once the budget is spent (except a local target such as the extractive quote). So a dead
    or silent model costs the visitor the budget, not retries times timeouts. After the first piece
    the target's ``between_tokens_seconds`` and ``answer_seconds`` (the whole answer) apply.
    """

    def __init__(
        self,
        targets: list[ModelTargetRef],
        breakers: CircuitBreakers,
        *,
        max_retries: int,
        first_token_budget_seconds: float = 15.0,
        answer_seconds: float | None = None,
        backoff_seconds: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not targets:
            raise ValueError("a fallback chain needs at least one target")
        self.targets = targets
        self._breakers = breakers
        self._max_retries = max_retries
        self._budget = first_token_budget_seconds
        self._answer_seconds = answer_seconds
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._clock = clock

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        return self.targets[0].model.plan(question, passages)

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
        first = self.targets[0]
        holder: dict[str, AnswerStream] = {}
        result = AnswerStream(
            self._pieces(question, answer, history, holder), ModelUsage(provider=first.label, model="")
        )
        holder["stream"] = result
        return result

    def _candidates(self) -> tuple[list[ModelTargetRef], int]:
        """The targets to try and how many retries each gets."""
        allowed = [target for target in self.targets if self._breakers.allow(target.key)]
        if allowed:
            return allowed, self._max_retries
        # Every breaker is open: try the one that has been open longest, once, rather than fail.
        return [min(self.targets, key=lambda target: self._breakers.opened_at(target.key))], 0

    def _pieces(
        self, question: str, answer: Answer, history: list[Turn], holder: dict[str, AnswerStream]
    ) -> Iterator[str]:
        started = self._clock()
        budget_end = started + self._budget
        end_by = started + self._answer_seconds if self._answer_seconds is not None else None
        problems: list[str] = []
        failed = 0
        candidates, retries = self._candidates()
        for target in candidates:
            attempts = 1 + retries
            for attempt in range(attempts):
                if self._clock() >= budget_end - _MIN_ATTEMPT_SECONDS and not target.local:
                    problems.append(f"{target.label}: skipped, no time left within {self._budget:g} s")
                    break
                deadlines = StreamDeadlines(
                    first_by=min(self._clock() + target.first_token_seconds, budget_end),
                    between_seconds=target.between_tokens_seconds,
                    end_by=end_by,
                )
                model_stream = target.model.stream(question, answer, history)
                stream = within_deadlines(model_stream, deadlines, who=target.label, clock=self._clock)
                try:
                    first = next(stream)
                except Exception as exc:
                    close_stream(stream)
                    self._breakers.failed(target.key)
                    failed += 1
                    reason = "empty answer" if isinstance(exc, StopIteration) else str(exc) or type(exc).__name__
                    problems.append(f"{target.label}: {reason}")
                    logger.warning(
                        "model attempt failed",
                        extra={"target": target.label, "attempt": attempt + 1, "error": reason[:300]},
                    )
                    # A target that let its deadline pass is likely stuck: the next target gets
                    # the rest of the budget rather than a second wait on this one.
                    stuck = isinstance(exc, StreamDeadlineExceeded) and target is not candidates[-1]
                    if is_final(exc) or stuck:
                        break
                    if attempt + 1 < attempts:
                        pause = min(self._backoff * 2**attempt, _MAX_BACKOFF_SECONDS)
                        self._sleep(max(0.0, min(pause, budget_end - self._clock() - _MIN_ATTEMPT_SECONDS)))
                    continue
                self._breakers.succeeded(target.key)
                holder["stream"].usage = self._usage(target, model_stream, failed)
                try:
                    yield first
                    yield from stream
                finally:
                    close_stream(stream)
                return
        raise ModelUnavailable("no model answered: " + "; ".join(problems))

    def _usage(self, target: ModelTargetRef, stream: object, failed: int) -> ModelUsage:
        inner = getattr(stream, "usage", None)
        usage = inner if isinstance(inner, ModelUsage) else ModelUsage(provider=target.label, model="")
        usage.failed_attempts = failed
        usage.fallback = target is not self.targets[0]
        return usage
