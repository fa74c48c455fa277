"""$connect / $disconnect: admit visitors by widget key and agents by agent key; track their connections."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.chat.connections import accepted_protocol, close_connection, open_connection, refused_handshake
from shared.chat.push import api_gateway_push, callback_url
from shared.errors import KefuError
from shared.observability import logger, metrics, tracer
from shared.settings import get_settings
from shared.wiring import chat_limits, rate_limiter, state_store, visitor_tokens


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("requestContext", {}).get("eventType") == "DISCONNECT":
        gone = parse(event=event, model=APIGatewayWebSocketDisconnectEventModel).request_context
        settings = get_settings()
        url = callback_url(settings, gone.domain_name, gone.stage)
        close_connection(state_store(), gone.connection_id, lambda: api_gateway_push(url, settings.aws_region))
        return {"statusCode": 200}

    connect = parse(event=event, model=APIGatewayWebSocketConnectEventModel)
    context_ = connect.request_context
    query = {k: v for k, v in (event.get("queryStringParameters") or {}).items() if isinstance(v, str)}
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items() if isinstance(v, str)}
    protocols = headers.get("sec-websocket-protocol")
    source_ip = str(event["requestContext"].get("identity", {}).get("sourceIp") or "") or None
    try:
        rate_limiter().spend(chat_limits().for_connect(source_ip))
        connection = open_connection(
            state_store(),
            connection_id=context_.connection_id,
            query=query,
            connected_at=int(context_.connected_at.timestamp() * 1000),
            domain_name=context_.domain_name,
            stage=context_.stage,
            protocols=protocols,
            tokens=visitor_tokens(),
            origin=headers.get("origin"),
            source_ip=source_ip,
        )
    except KefuError as exc:
        logger.info("handshake refused", extra={"code": exc.code, "reason": exc.message})
        return refused_handshake(exc, protocols)
    logger.info("connected", extra={"tenant_id": connection.tenant_id, "role": connection.role})
    metrics.add_metric(name="Connections", unit="Count", value=1)
    protocol = accepted_protocol(protocols)
    return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": protocol}} if protocol else {"statusCode": 200}
