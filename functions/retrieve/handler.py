"""retrieve: ranked knowledge passages for one tenant's question (invoked directly, not via HTTP)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.errors import KefuError
from shared.knowledge.retrieve_contract import parse_request, retrieve_error
from shared.knowledge.retrieve_service import RetrieveService
from shared.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: Any, context: LambdaContext, service: RetrieveService | None = None) -> dict[str, Any]:
    try:
        request = parse_request(event)
        logger.append_keys(tenant_id=request.tenant_id)
        response = (service or wiring.retrieve_service()).retrieve(request)
    except KefuError as error:
        logger.warning("retrieve refused", extra={"code": error.code, "reason": error.message})
        return retrieve_error(error.code, error.message)
    except Exception:
        logger.exception("retrieve failed")
        return retrieve_error("internal_error", "retrieval failed; see the retrieve function's logs")
    logger.info("retrieved", extra=response.log_summary())
    return response.to_wire()
