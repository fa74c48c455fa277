"""What the generate function does with a job: context, retrieval, streamed answer, stored once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.chat.jobs import GenerateJob
from shared.chat.protocol import AnswerDelta, AnswerEnd, ErrorFrame
from shared.chat.protocol import Citation as CitationFrame
from shared.chat.push import ClientPush
from shared.chat.retriever import Retriever
from shared.chat.streaming import FrameCoalescer
from shared.errors import ConnectionGone
from shared.model.base import AnswerModel, Turn
from shared.observability import logger, metrics
from shared.state.cache import ContextCache
from shared.state.records import Citation, StoredMessage, answer_id_for, now_ms
from shared.state.store import StateStore


class AnswerGate:
    """Decides whether the bot may (still) answer a job. The default always lets it; human handoff
    replaces it so the bot stays silent while a person owns the conversation."""

    def may_answer(self, job: GenerateJob) -> bool:
        return True


@dataclass(frozen=True)
class Generator:
    store: StateStore
    cache: ContextCache
    retriever: Retriever
    model: AnswerModel
    push_for: Callable[[str], ClientPush]
    history_turns: int
    top_k: int
    flush_ms: int
    flush_chars: int
    gate: AnswerGate = field(default_factory=AnswerGate)

    def answer(self, job: GenerateJob) -> str:
        """Stream and store the answer to one visitor message. Returns what happened, for logs."""
        answer_id = answer_id_for(job.message_id)
        if self.store.get_message(job.conversation_id, answer_id) is not None:
            return "already-answered"  # a redelivered job: never answer twice
        if not self.gate.may_answer(job):
            return "not-bot-owned"
        history = self._history(job)
        passages = self.retriever.retrieve(job.tenant_id, job.text, self.top_k)
        plan = self.model.plan(job.text, passages)
        push = self.push_for(job.callback_url)

        sent: list[int] = []

        def send_delta(text: str, seq: int) -> None:
            delta = AnswerDelta(conversation_id=job.conversation_id, message_id=answer_id, seq=seq, text=text)
            push.send(job.connection_id, delta.to_json())
            sent.append(seq)

        coalescer = FrameCoalescer(send=send_delta, flush_ms=self.flush_ms, flush_chars=self.flush_chars)
        try:
            text = coalescer.run(self.model.stream(job.text, plan, history))
        except ConnectionGone:
            # Nobody is listening: stop (the model stream is closed by the coalescer). The question
            # stays unanswered, so a resend after reconnecting answers it.
            metrics.add_metric(name="AnswersAbandoned", unit="Count", value=1)
            return "connection-gone"
        except Exception:
            if not sent:
                raise  # nothing shown yet: let the queue retry the job
            logger.exception("answer failed mid-stream")
            self._send_quietly(push, job, ErrorFrame(code="answer_failed", message="the answer was interrupted"))
            return "failed-mid-stream"

        citations = [
            Citation(document_id=p.document_id, title=p.title, snippet=p.snippet(), url=p.url) for p in plan.citations
        ]
        stored = StoredMessage(
            conversation_id=job.conversation_id,
            message_id=answer_id,
            tenant_id=job.tenant_id,
            role="bot",
            text=text,
            created_at=now_ms(),
            citations=citations,
        )
        if self.store.add_answer(stored):
            self.cache.append(stored)
        end = AnswerEnd(
            conversation_id=job.conversation_id,
            message_id=answer_id,
            text=text,
            citations=[CitationFrame(**c.model_dump()) for c in citations],
        )
        self._send_quietly(push, job, end)
        metrics.add_metric(name="AnswersStreamed", unit="Count", value=1)
        return "answered"

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
