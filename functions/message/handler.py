"""sendMessage / $default: a visitor's message (stored once, acked, queued for the bot or passed to the
agent who owns the conversation), the widget's other actions, and the agent console's actions."""

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.chat.intake import Intake
from shared.errors import ConnectionGone
from shared.observability import WEBSOCKET_REQUEST_ID, logger, metrics, tracer
from shared.wire.events import MessageEvent


@logger.inject_lambda_context(correlation_id_path=WEBSOCKET_REQUEST_ID, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(
    event: dict[str, Any], context: LambdaContext, intake_for: Callable[[str, str], Intake] | None = None
) -> dict[str, Any]:
    message = parse(event=event, model=MessageEvent)
    request = message.request_context
    logger.append_keys(connection_id=request.connection_id)
    try:
        (intake_for or wiring.intake)(request.domain_name, request.stage).handle(request.connection_id, message.body)
    except ConnectionGone:
        logger.info("visitor left before the ack")
    return {"statusCode": 200}
