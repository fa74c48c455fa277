"""The answer gate of the generate function: the bot answers only while it owns the conversation.

Checked on the server, three times per answer: before generating, while streaming (at most once per
``recheck_seconds``), and right before the answer is stored and ended. A handoff that lands mid-answer
stops the stream; the answer is neither stored nor ended, and the visitor's widget is told to drop
what it showed (``answer.cancelled``). It also reports answers without a good source, and hands the
conversation off after the tenant's threshold of them in a row.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.chat.generation import AnswerGate
from shared.errors import ConnectionGone
from shared.handoff.notify import Notifier
from shared.handoff.service import Handoff
from shared.observability import logger
from shared.state.records import answer_id_for
from shared.state.store import StateStore
from shared.wire.jobs import GenerateJob
from shared.wire.protocol import AnswerCancelled
from shared.wire.push import ClientPush


class HandoffGate(AnswerGate):
    def __init__(
        self,
        store: StateStore,
        push_for: Callable[[str], ClientPush],
        *,
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._push_for = push_for
        self._recheck = recheck_seconds
        self._clock = clock
        self._checked_at: dict[str, float] = {}

    def may_answer(self, job: GenerateJob) -> bool:
        if len(self._checked_at) > 1000:  # a long-lived gate: forget finished jobs
            self._checked_at.clear()
        self._checked_at[job.message_id] = self._clock()
        conversation = self._store.get_conversation(job.conversation_id)
        return conversation is None or conversation.status == "bot"

    def may_continue(self, job: GenerateJob) -> bool:
        last = self._checked_at.get(job.message_id)
        if last is not None and self._clock() - last < self._recheck:
            return True
        return self.may_answer(job)

    def on_dropped(self, job: GenerateJob) -> None:
        logger.info("answer dropped: people own the conversation", extra={"conversation_id": job.conversation_id})
        cancelled = AnswerCancelled(conversation_id=job.conversation_id, message_id=answer_id_for(job.message_id))
        try:
            self._push_for(job.callback_url).send(job.connection_id, cancelled.to_json())
        except ConnectionGone:
            pass

    def on_answered(self, job: GenerateJob, grounded: bool) -> None:
        # The answer is already out: a failure here must not fail (and so retry) the job.
        try:
            streak = self._store.record_grounding(job.conversation_id, grounded)
            if grounded:
                return
            tenant = self._store.get_tenant(job.tenant_id)
            threshold = tenant.config.handoff.no_answer_threshold if tenant else 0
            if not threshold or streak < threshold:
                return
            conversation = self._store.get_conversation(job.conversation_id)
            if conversation is None or conversation.status != "bot":
                return
            push = self._push_for(job.callback_url)
            Handoff(self._store, Notifier(self._store, push)).request(conversation, "no_answer", preview=job.text)
        except Exception:
            logger.exception("could not record the answer's grounding", extra={"conversation_id": job.conversation_id})
