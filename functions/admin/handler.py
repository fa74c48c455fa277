"""The admin API in Lambda: the FastAPI app behind an HTTP API, adapted by Mangum. Its adapters come
from the composition root through the app's dependencies (shared/admin/deps.py); a test overrides
them on ``app``."""

from mangum import Mangum

from shared.admin.app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
