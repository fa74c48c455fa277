"""The admin API in Lambda: the FastAPI app behind an HTTP API, adapted by Mangum. Its adapters come
from the composition root through the app's dependencies (shared/admin/deps.py); a test overrides
them on ``app``. Log lines carry the request's id as correlation id and the tenant the path names."""

import re
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from shared.admin.app import create_app
from shared.observability import logger

app = create_app()
_asgi = Mangum(app, lifespan="off")
_TENANT_PATH = re.compile(r"^/v1/tenants/([^/]+)")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    tenant = _TENANT_PATH.match(str(event.get("rawPath") or ""))
    if tenant:
        logger.append_keys(tenant_id=tenant.group(1))
    return dict(_asgi(event, context))
