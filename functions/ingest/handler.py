"""ingest: the uploads bucket's ObjectCreated events (S3 invokes it asynchronously): parse and index
each presigned upload, recording its progress (shared/ingest/uploads.py)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3Model
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import wiring
from shared.ingest.uploads import Uploads
from shared.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext, uploads: Uploads | None = None) -> dict[str, Any]:
    keys = [record.s3.object.key for record in parse(event=event, model=S3Model).Records if record.s3.object]
    # Raises IngestRetry when an attempt failed unexpectedly: Lambda then retries the event.
    outcomes = (uploads or wiring.uploads()).ingest_objects(keys)
    logger.info("upload event done", extra={"outcomes": outcomes})
    return {"outcomes": outcomes}
