"""$connect / $disconnect: admit visitors by widget key and agents by agent key; track their connections."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.chat.connections import Admission, refused_handshake
from shared.errors import KefuError
from shared.observability import WEBSOCKET_REQUEST_ID, logger, metrics, tracer
from shared.wire.events import ConnectEvent, door_event


@logger.inject_lambda_context(correlation_id_path=WEBSOCKET_REQUEST_ID, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, admission: Admission | None = None) -> dict[str, Any]:
    door = door_event(event)
    logger.append_keys(connection_id=door.request_context.connection_id)
    admission = admission or wiring.admission()
    if not isinstance(door, ConnectEvent):
        return admission.leave(door)
    try:
        connection, answer = admission.admit(door)
    except KefuError as exc:
        logger.info("handshake refused", extra={"code": exc.code, "reason": exc.message})
        return refused_handshake(exc, door.header("sec-websocket-protocol"))
    logger.info("connected", extra={"tenant_id": connection.tenant_id, "role": connection.role})
    metrics.add_metric(name="Connections", unit="Count", value=1)
    return answer
