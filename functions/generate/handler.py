"""SQS FIFO consumer: stream the answer to one visitor message at a time, in order per conversation."""

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse as ItemFailures
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.chat.generation import Generator
from shared.observability import logger, metrics, tracer
from shared.wire.events import GenerateJobRecord, generate_batch


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, generator: Generator | None = None) -> ItemFailures:
    answer = (generator or wiring.generator()).answer

    def record_handler(record: GenerateJobRecord) -> None:
        job = record.body
        logger.set_correlation_id(job.message_id)
        logger.append_keys(**job.log_keys())
        logger.info("job done", extra={"outcome": answer(job)})

    return process_partial_response(
        event=event, record_handler=record_handler, processor=generate_batch(), context=context
    )
