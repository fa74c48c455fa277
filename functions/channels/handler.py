"""ANY /channels/{channelId}: a platform's request, verified, stored once, queued and acknowledged at once."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.channels.base import ChannelError, ChannelNotFound, MalformedRequest, SignatureInvalid
from shared.channels.events import ChannelRequestEvent, http_response
from shared.channels.inbox import ChannelInbox
from shared.observability import logger, metrics, tracer

REFUSALS: dict[type[ChannelError], int] = {SignatureInvalid: 401, MalformedRequest: 400, ChannelNotFound: 404}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, inbox: ChannelInbox | None = None) -> dict[str, Any]:
    request = parse(event=event, model=ChannelRequestEvent)
    try:
        ack = (inbox or wiring.channel_inbox()).receive(request.channel_id, request.inbound())
    except tuple(REFUSALS) as exc:
        logger.info("platform request refused", extra={"channel_id": request.channel_id, "reason": exc.reason})
        return http_response(REFUSALS[type(exc)], exc.reason)
    except Exception:  # not taken: a 5xx makes the platform send it again
        logger.exception("platform request not taken", extra={"channel_id": request.channel_id})
        return http_response(500, "not taken; retry")
    return http_response(ack.status, ack.body, ack.content_type)
