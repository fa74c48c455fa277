"""The admin API (FastAPI): tenants, knowledge, transcripts. OpenAPI at /docs."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from shared.admin.deps import require_admin
from shared.admin.routes import agents, config, conversations, dead_letters, knowledge, tenants
from shared.errors import KefuError, http_status


def create_app() -> FastAPI:
    app = FastAPI(
        title="kefu admin API",
        version="1",
        description="Tenants, their knowledge bases and conversation transcripts. "
        "Every /v1 call needs `Authorization: Bearer <admin key>`.",
    )
    for module in (tenants, config, knowledge, conversations, agents, dead_letters):
        app.include_router(module.router, dependencies=[Depends(require_admin)])

    @app.exception_handler(KefuError)
    async def _kefu_error(request: Request, exc: KefuError) -> JSONResponse:
        return JSONResponse(status_code=http_status(exc), content={"error": {"code": exc.code, "message": exc.message}})

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
