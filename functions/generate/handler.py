"""SQS FIFO consumer: stream the answer to one visitor message at a time, in order per conversation."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from shared.chat.generation import Generator
from shared.chat.jobs import GenerateJob
from shared.chat.push import api_gateway_push
from shared.handoff.gate import handoff_gate
from shared.observability import logger, metrics, tracer
from shared.settings import get_settings
from shared.wiring import (
    answer_cache,
    answer_meter,
    context_cache,
    model_gateway,
    retriever,
    state_store,
    usage_ledger,
)


class GenerateJobRecord(SqsRecordModel):
    body: Json[GenerateJob]


def _processor() -> SqsFifoPartialProcessor:
    """FIFO: a failed record fails the rest of the batch too, so a conversation's order is kept.

    One per invocation: a processor holds its batch's records and failures, so one shared by
    invocations running at once (threads of one process, as the local emulator runs them) would
    process another invocation's records and report another's failures, and a job could be deleted
    from the queue unanswered."""
    return SqsFifoPartialProcessor(model=GenerateJobRecord)


def _generator() -> Generator:
    settings = get_settings()
    return Generator(
        store=state_store(),
        cache=context_cache(),
        retriever=retriever(),
        push_for=lambda url: api_gateway_push(url, settings.aws_region),
        history_turns=settings.history_turns,
        top_k=settings.retrieve_top_k,
        flush_ms=settings.stream_flush_ms,
        flush_chars=settings.stream_flush_chars,
        models=model_gateway(),
        answers=answer_cache(),
        meter=answer_meter(),
        gate=handoff_gate(),
        usage=usage_ledger(),
    )


def _answer(record: GenerateJobRecord) -> None:
    outcome = _generator().answer(record.body)
    # The tenant is a log key (Logs Insights filters on it), never a metric dimension (observability.py).
    body = record.body
    logger.info(
        "job done", extra={"outcome": outcome, "tenant_id": body.tenant_id, "conversation_id": body.conversation_id}
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_answer, processor=_processor(), context=context)
