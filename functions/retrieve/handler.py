"""retrieve: ranked knowledge passages for one tenant's question (invoked directly, not via HTTP)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.errors import KefuError
from shared.knowledge.retrieval import RetrieveService, StoredTenantConfigs, parse_request
from shared.observability import logger, tracer
from shared.settings import get_settings


@lru_cache(maxsize=1)
def _service() -> RetrieveService:
    # Built on the first invocation, not at import; the index and the embedding model load lazily too.
    from shared.knowledge.factory import knowledge_service
    from shared.wiring import state_store

    return RetrieveService(
        knowledge_service(), StoredTenantConfigs(state_store(), get_settings().tenant_config_ttl_seconds)
    )


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse_request(event)
        logger.append_keys(tenant_id=request.tenant_id)
        response = _service().retrieve(request)
    except KefuError as error:
        logger.warning("retrieve refused", extra={"code": error.code, "reason": error.message})
        return _error(error.code, error.message)
    except Exception:
        logger.exception("retrieve failed")
        return _error("internal_error", "retrieval failed; see the retrieve function's logs")
    logger.info(
        "retrieved",
        extra={
            "passages": len(response.passages),
            "best_score": response.best_score,
            "threshold": response.threshold,
            "matched": response.matched,
            "knowledge_version": response.knowledge_version,
        },
    )
    return response.to_wire()
