"""sendMessage / $default: a visitor's message (stored once, acked, queued for the bot or passed to the
agent who owns the conversation), the widget's other actions, and the agent console's actions."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import APIGatewayWebSocketMessageEventModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.chat.intake import Intake
from shared.chat.push import api_gateway_push, callback_url
from shared.errors import ConnectionGone
from shared.observability import logger, metrics, tracer
from shared.settings import get_settings
from shared.tenant_config import TenantConfigCache
from shared.wiring import chat_limits, context_cache, generation_queue, rate_limiter, state_store


@lru_cache(maxsize=1)
def _tenant_configs() -> TenantConfigCache:
    return TenantConfigCache(state_store().tenant_config, get_settings().tenant_config_ttl_seconds)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    message = parse(event=event, model=APIGatewayWebSocketMessageEventModel)
    request = message.request_context
    settings = get_settings()
    url = callback_url(settings, request.domain_name, request.stage)
    intake = Intake(
        store=state_store(),
        cache=context_cache(),
        queue=generation_queue(),
        push=api_gateway_push(url, settings.aws_region),
        callback_url=url,
        max_message_chars=settings.max_message_chars,
        tenant_configs=_tenant_configs(),
        limiter=rate_limiter(),
        limits=chat_limits(),
    )
    try:
        intake.handle(request.connection_id, message.body if isinstance(message.body, str) else None)
    except ConnectionGone:
        logger.info("visitor left before the ack")
    return {"statusCode": 200}
