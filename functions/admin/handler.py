"""The admin API in Lambda: the FastAPI app behind an HTTP API, adapted by Mangum."""

from mangum import Mangum

from shared.admin.app import create_app

handler = Mangum(create_app(), lifespan="off")
