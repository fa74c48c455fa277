"""What the generate function does with a job: context, retrieval, streamed answer, stored once."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shared.chat.answer_source import AnswerSource
from shared.chat.quotas import UsageLedger, month_of
from shared.chat.streaming import FrameCoalescer
from shared.errors import ConnectionGone, KefuError
from shared.knowledge.base import Passage
from shared.knowledge.retrieve_client import RetrievalResult, Retriever
from shared.model.answer_cache import AnswerCache, NoAnswerCache
from shared.model.answer_keys import AnswerKey, answer_key
from shared.model.answer_model import Turn
from shared.model.gateway import ModelGateway, TenantModel
from shared.observability import AnswerMeter, AnswerRecord, NoAnswerMeter, logger, metrics
from shared.state.cache import ContextCache
from shared.state.records import AnswerUsage, StoredMessage, answer_id_for, now_ms
from shared.state.store import StateStore
from shared.wire.jobs import GenerateJob
from shared.wire.protocol import AnswerDelta, AnswerEnd, ErrorFrame
from shared.wire.push import ClientPush

# A job's independent reads (retrieval, the checks, history, the tenant's model) run side by side;
# threads are made as needed and reused by a warm container.
_WORK = ThreadPoolExecutor(max_workers=64, thread_name_prefix="generate")


def _search_soon(retriever: Retriever, job: GenerateJob, k: int) -> Future[RetrievalResult]:
    return _WORK.submit(retriever.search, job.tenant_id, job.text, k)


class AnswerGate:
    """Decides whether the bot may (still) answer a job. The default always lets it; human handoff
    replaces it so the bot stays silent while a person owns the conversation."""

    def may_answer(self, job: GenerateJob) -> bool:
        return True

    def may_continue(self, job: GenerateJob) -> bool:
        """Asked while the answer streams (the gate decides how often it really checks)."""
        return True

    def on_dropped(self, job: GenerateJob) -> None:
        """The answer was stopped because the bot no longer owns the conversation."""

    def on_answered(self, job: GenerateJob, grounded: bool) -> None:
        """The answer was stored and sent; ``grounded`` is False when it had no good source."""


class AnswerDropped(Exception):
    """Raised mid-stream when a person took the conversation over: the answer is neither stored nor ended."""


# What the visitor (and the stored record) is told when no model answered; details go to the logs.
UNAVAILABLE_MESSAGE = "the assistant could not answer right now; please ask again"


@dataclass(frozen=True)
class _Attempt:
    """One job being answered: what every way of ending it needs."""

    job: GenerateJob
    push: ClientPush
    started: float
    retrieval: RetrievalResult
    history: list[Turn]


@dataclass(frozen=True)
class Generator:
    store: StateStore
    cache: ContextCache
    retriever: Retriever
    # Each tenant's model (FixedModelGateway: one model for everyone).
    models: ModelGateway
    push_for: Callable[[str], ClientPush]
    history_turns: int
    top_k: int
    flush_ms: int
    flush_chars: int
    gate: AnswerGate = field(default_factory=AnswerGate)
    # Reused answers, and what answers cost.
    answers: AnswerCache = field(default_factory=NoAnswerCache)
    meter: AnswerMeter = field(default_factory=NoAnswerMeter)
    # The tenant's monthly usage (answers, tokens: shared/chat/quotas.py); None: not counted.
    usage: UsageLedger | None = None

    def answer(self, job: GenerateJob) -> str:
        """Stream and store the answer to one visitor message. Returns what happened, for logs.

        Every job ends in one terminal frame for the visitor: ``answer.end`` (``complete`` true, or
        false when the model broke off after the first token) or ``error`` ``model_unavailable``
        when no model answered in time (or the retrieval it needs failed); only a crash of this
        function (or of the state store it records the outcome in) leaves it to the queue. Its
        redelivery answers afresh, or, when the crashed attempt had stored the outcome already,
        sends that outcome's terminal frame again (the widget ignores one it has seen)."""
        started = time.monotonic()
        answer_id = answer_id_for(job.message_id)
        # Nothing before the model depends on another step: retrieval (a Lambda invoke and a query
        # embedding, the slowest), the answered-check, the ownership check, the history and the
        # tenant's model all start at once. A job stopped by a check wastes the other reads.
        retrieval_soon = _search_soon(self.retriever, job, self.top_k)
        answered_soon = _WORK.submit(self.store.get_message, job.conversation_id, answer_id)
        owned_soon = _WORK.submit(self.gate.may_answer, job)
        history_soon = _WORK.submit(self._history, job)
        tenant_model_soon = _WORK.submit(self.models.for_tenant, job.tenant_id)
        answered = answered_soon.result()
        if answered is not None:
            # A redelivered job: never answered twice, but its stored outcome is sent again.
            self._resend(job, answered, tenant_model_soon)
            return "already-answered"
        if not owned_soon.result():
            return "not-bot-owned"
        history = history_soon.result()
        push = self.push_for(job.callback_url)
        try:
            retrieval = retrieval_soon.result()
        except Exception as exc:  # the retrieve function failed or timed out: nothing to answer from
            nothing = RetrievalResult(passages=[])
            return self._unavailable(_Attempt(job, push, started, nothing, history), None, exc)
        attempt = _Attempt(job=job, push=push, started=started, retrieval=retrieval, history=history)
        try:
            tenant_model = tenant_model_soon.result()
        except KefuError as exc:  # e.g. the tenant's model secret cannot be read
            return self._unavailable(attempt, None, exc)
        plan = tenant_model.model.plan(job.text, retrieval.passages)
        source = AnswerSource(
            self.answers,
            self._answer_key(job, tenant_model, retrieval, plan.citations, history),
            lambda: tenant_model.model.stream(job.text, plan, history),
            owner=f"{job.conversation_id}/{answer_id}",
        )
        return self._deliver(attempt, tenant_model, source, plan.citations)

    def _resend(self, job: GenerateJob, stored: StoredMessage, tenant_model_soon: Future[TenantModel]) -> None:
        """Send the terminal frame of an outcome an earlier attempt of this job stored. That attempt
        failed or crashed after storing (before its end frame went out, or after: the store or the
        queue failed later), so the visitor may never have seen it; the widget ignores a terminal
        frame for an answer it already ended. Nothing is stored or counted again."""
        frame: AnswerEnd | ErrorFrame
        if stored.role == "bot":
            frame = AnswerEnd(
                conversation_id=job.conversation_id,
                message_id=stored.message_id,
                text=stored.text,
                citations=stored.citations,
                complete=not stored.incomplete,
            )
        elif stored.role == "event" and stored.event == "model_unavailable":
            try:
                unavailable_text = tenant_model_soon.result().unavailable_text
            except Exception:  # the tenant's own text is a nicety here: ours goes out instead
                unavailable_text = None
            frame = ErrorFrame(
                code="model_unavailable",
                message=UNAVAILABLE_MESSAGE,
                conversation_id=job.conversation_id,
                message_id=stored.message_id,
                question_id=job.message_id,
                retryable=True,
                text=unavailable_text,
            )
        else:
            return
        self._send_quietly(self.push_for(job.callback_url), job, frame)

    def _deliver(self, attempt: _Attempt, tenant_model: TenantModel, source: AnswerSource, cited: list[Passage]) -> str:
        job, push = attempt.job, attempt.push
        answer_id = answer_id_for(job.message_id)
        shown: list[str] = []
        first_frame_at: list[float] = []

        def send_delta(text: str, seq: int) -> None:
            if not self.gate.may_continue(job):
                raise AnswerDropped(job.conversation_id)
            delta = AnswerDelta(conversation_id=job.conversation_id, message_id=answer_id, seq=seq, text=text)
            push.send(job.connection_id, delta.to_json())
            shown.append(text)
            if not first_frame_at:
                first_frame_at.append(time.monotonic())
            source.published(text)  # identical questions asked meanwhile stream these frames too

        coalescer = FrameCoalescer(send=send_delta, flush_ms=self.flush_ms, flush_chars=self.flush_chars)
        try:
            text = coalescer.run(source.pieces)
        except ConnectionGone:
            source.abandon()
            # Nobody is listening: stop (the model stream is closed by the coalescer). The question
            # stays unanswered, so a resend after reconnecting answers it.
            metrics.add_metric(name="AnswersAbandoned", unit="Count", value=1)
            return "connection-gone"
        except AnswerDropped:
            source.abandon()
            self.gate.on_dropped(job)
            return "dropped-handoff"
        except Exception as exc:
            # Never cached, and followers of this answer see it break off (or never start) too.
            source.abandon(model_unavailable=not shown)
            if not shown:
                return self._unavailable(attempt, tenant_model, exc)
            logger.warning(
                "answer cut: the model failed after the first token",
                extra={"conversation_id": job.conversation_id, "error": str(exc)[:300]},
            )
            metrics.add_metric(name="AnswersIncomplete", unit="Count", value=1)
            timing = (first_frame_at, len(shown))
            return self._end(attempt, tenant_model, source, cited, "".join(shown), timing, complete=False)
        source.finish(text)
        return self._end(attempt, tenant_model, source, cited, text, (first_frame_at, len(shown)), complete=True)

    def _end(
        self,
        attempt: _Attempt,
        tenant_model: TenantModel,
        source: AnswerSource,
        cited: list[Passage],
        text: str,
        timing: tuple[list[float], int],
        *,
        complete: bool,
    ) -> str:
        """Store the answer (once) and send its ``answer.end``."""
        job, push = attempt.job, attempt.push
        answer_id = answer_id_for(job.message_id)
        if not self.gate.may_answer(job):  # a person took over while it streamed: drop it
            self.gate.on_dropped(job)
            return "dropped-handoff"
        # A model that said the passages do not answer (no_answer.py) cites nothing: no good source.
        citations = [
            p.citation()
            for p in ([] if source.declined else cited)
        ]
        record = self._answer_record(job, tenant_model, source, attempt.started, *timing, bool(citations))
        stored = StoredMessage(
            conversation_id=job.conversation_id,
            message_id=answer_id,
            tenant_id=job.tenant_id,
            role="bot",
            text=text,
            created_at=now_ms(),
            citations=citations,
            usage=_usage(record),
            incomplete=not complete,
        )
        if self.store.add_answer(stored):
            self.cache.append(stored)
            self._count_usage(record)  # once per answer: a redelivered job stores nothing new
        end = AnswerEnd(
            conversation_id=job.conversation_id,
            message_id=answer_id,
            text=text,
            citations=citations,
            complete=complete,
        )
        self._send_quietly(push, job, end)
        self._meter(record)
        if not complete:
            return "incomplete"
        metrics.add_metric(name="AnswersStreamed", unit="Count", value=1)
        self.gate.on_answered(job, grounded=bool(citations))
        return "answered"

    def _unavailable(self, attempt: _Attempt, tenant_model: TenantModel | None, exc: Exception) -> str:
        """No model gave a first token in time: the tenant's fallback answers, or the visitor gets
        ``model_unavailable`` and the failure is recorded on the conversation (which also settles
        the job: a redelivery finds it)."""
        job = attempt.job
        logger.warning(
            "model unavailable before the first token",
            extra={"conversation_id": job.conversation_id, "error": str(exc)[:500]},
        )
        metrics.add_metric(name="ModelUnavailable", unit="Count", value=1)
        fallback = tenant_model.fallback if tenant_model is not None else None
        if tenant_model is not None and fallback is not None:
            plan = fallback.plan(job.text, attempt.retrieval.passages)
            source = AnswerSource(NoAnswerCache(), None, lambda: fallback.stream(job.text, plan, attempt.history))
            quoted = replace(tenant_model, fallback=None, cacheable=False, label="extractive")
            outcome = self._deliver(attempt, quoted, source, plan.citations)
            return f"{outcome}-by-fallback" if outcome == "answered" else outcome
        answer_id = answer_id_for(job.message_id)
        self.store.add_answer(
            StoredMessage(
                conversation_id=job.conversation_id,
                message_id=answer_id,
                tenant_id=job.tenant_id,
                role="event",
                event="model_unavailable",
                text=UNAVAILABLE_MESSAGE,
                created_at=now_ms(),
            )
        )
        frame = ErrorFrame(
            code="model_unavailable",
            message=UNAVAILABLE_MESSAGE,
            conversation_id=job.conversation_id,
            message_id=answer_id,
            question_id=job.message_id,
            retryable=True,
            text=tenant_model.unavailable_text if tenant_model is not None else None,
        )
        self._send_quietly(attempt.push, job, frame)
        return "model-unavailable"

    @staticmethod
    def _answer_key(
        job: GenerateJob,
        tenant_model: TenantModel,
        retrieval: RetrievalResult,
        cited: list[Passage],
        history: list[Turn],
    ) -> AnswerKey | None:
        """None when the answer must not be reused: a free model, or an unknown knowledge version."""
        if not tenant_model.cacheable or retrieval.knowledge_version is None:
            return None
        version = retrieval.knowledge_version
        return answer_key(job.tenant_id, job.text, version, tenant_model.identity, history, cited)

    @staticmethod
    def _answer_record(
        job: GenerateJob,
        tenant_model: TenantModel,
        source: AnswerSource,
        started: float,
        first_frame_at: list[float],
        frames: int,
        grounded: bool,
    ) -> AnswerRecord:
        """Tokens and latency of the answer that just streamed (stored on it and metered)."""
        usage = source.usage
        ended = time.monotonic()
        return AnswerRecord(
            tenant_id=job.tenant_id,
            conversation_id=job.conversation_id,
            message_id=job.message_id,
            source=source.origin,
            provider=usage.provider if usage else tenant_model.label,
            model=usage.model if usage else "",
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            first_frame_ms=((first_frame_at[0] if first_frame_at else ended) - started) * 1000,
            duration_ms=(ended - started) * 1000,
            frames=frames,
            failed_attempts=usage.failed_attempts if usage else 0,
            fallback=usage.fallback if usage else False,
            grounded=grounded,
        )

    def _meter(self, record: AnswerRecord) -> None:
        """Tokens and latency per tenant and message as metrics (never fails the answer)."""
        try:
            self.meter.record(record)
        except Exception:
            logger.exception("could not record the answer's usage")

    def _count_usage(self, record: AnswerRecord) -> None:
        """Monthly usage for quotas and the admin API (never fails the answer: it is already stored)."""
        if self.usage is None:
            return
        try:
            month = month_of(datetime.now(UTC))
            tokens = (record.input_tokens or 0, record.output_tokens or 0)
            self.usage.add_answer(record.tenant_id, month, record.source, *tokens)
        except Exception:
            logger.exception("could not count the answer's usage")

    def _history(self, job: GenerateJob) -> list[Turn]:
        """Recent turns before this message: Redis first, DynamoDB when the cache misses, is stale or down."""
        cached = self.cache.recent(job.conversation_id)
        # The cache is trusted only if it already holds this message (else it missed a write).
        if cached is None or all(m.message_id != job.message_id for m in cached):
            cached = self.store.recent_messages(job.conversation_id, self.history_turns + 1)
            self.cache.replace(job.conversation_id, cached)
        earlier = [m for m in cached if m.message_id < job.message_id]
        return [Turn(role=m.role, text=m.text) for m in earlier[-self.history_turns :]] if self.history_turns else []

    @staticmethod
    def _send_quietly(push: ClientPush, job: GenerateJob, frame: AnswerEnd | ErrorFrame) -> None:
        try:
            push.send(job.connection_id, frame.to_json())
        except ConnectionGone:
            logger.info("visitor left before the end frame", extra={"conversation_id": job.conversation_id})


def _usage(record: AnswerRecord) -> AnswerUsage:
    return AnswerUsage(
        source=record.source,
        provider=record.provider,
        model=record.model,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        first_token_ms=round(record.first_frame_ms),
        total_ms=round(record.duration_ms),
    )
