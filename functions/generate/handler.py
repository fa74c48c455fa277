"""SQS FIFO consumer: stream the answer to one visitor message at a time, in order per conversation
(and pull a channel's waiting messages: WeCom only announces them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse as ItemFailures
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.observability import logger, metrics, tracer
from shared.wire.events import GenerateJobRecord, generate_batch
from shared.wire.jobs import GenerateJob

if TYPE_CHECKING:
    from shared.channels.inbox import ChannelInbox
    from shared.chat.generation import Generator


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(
    event: dict[str, Any], context: LambdaContext, generator: Generator | None = None, inbox: ChannelInbox | None = None
) -> ItemFailures:
    answer = (generator or wiring.generator()).answer

    def record_handler(record: GenerateJobRecord) -> None:
        job = record.body
        logger.append_keys(**job.log_keys())
        if isinstance(job, GenerateJob):
            logger.set_correlation_id(job.message_id)
            logger.info("job done", extra={"outcome": answer(job)})
            return
        pulled = (inbox or wiring.channel_inbox()).pull(job)
        logger.info("pull done", extra={"delivered": len(pulled.delivered), "duplicates": len(pulled.duplicates)})

    return process_partial_response(
        event=event, record_handler=record_handler, processor=generate_batch(), context=context
    )
