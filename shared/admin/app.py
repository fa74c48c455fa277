"""The admin API (FastAPI): tenants, knowledge, transcripts. OpenAPI at /openapi.json, a reference
page at /docs."""

from __future__ import annotations

import html
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from shared.admin.deps import require_admin
from shared.admin.routes import agents, channels, config, conversations, dead_letters, knowledge, tenants, usage
from shared.errors import KefuError, http_status


def create_app() -> FastAPI:
    app = FastAPI(
        title="kefu admin API",
        version="1",
        description="Tenants, their knowledge bases and conversation transcripts. "
        "Every /v1 call needs `Authorization: Bearer <admin key>`: the platform key reaches everything; "
        "a tenant admin key (`tak.…`) only `/v1/tenants/{its id}/…`, not platform routes.",
        # FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN: operators would paste
        # the admin key into a page running third-party code (and see nothing offline).
        docs_url=None,
        redoc_url=None,
    )
    for module in (tenants, config, knowledge, conversations, agents, dead_letters, usage, channels):
        app.include_router(module.router, dependencies=[Depends(require_admin)])

    @app.exception_handler(KefuError)
    async def _kefu_error(request: Request, exc: KefuError) -> JSONResponse:
        return JSONResponse(status_code=http_status(exc), content={"error": {"code": exc.code, "message": exc.message}})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_reference_page(app.openapi()), headers=_NO_SCRIPT)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


# The reference page runs no script at all, and may load nothing from anywhere else.
_NO_SCRIPT = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}


def _reference_page(schema: dict[str, Any]) -> str:
    """Every operation of the OpenAPI document, server-rendered; the document itself is linked for
    tools (Postman, openapi-generator, a local Swagger UI)."""
    rows = []
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            summary = operation.get("summary") or ""
            description = (operation.get("description") or "").strip().split("\n\n")[0]
            rows.append(
                f"<tr><td><b>{html.escape(method.upper())}</b></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(summary)}<br><small>{html.escape(description)}</small></td></tr>"
            )
    info = schema.get("info", {})
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>"
        f"{html.escape(info.get('title', 'API'))}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em}td{padding:4px 8px;vertical-align:top;"
        "border-bottom:1px solid #ddd}code{font-size:13px}</style>"
        f"<h1>{html.escape(info.get('title', 'API'))} v{html.escape(str(info.get('version', '')))}</h1>"
        f"<p>{html.escape(info.get('description', ''))}</p>"
        '<p>The whole OpenAPI document (schemas, parameters, responses): <a href="openapi.json">openapi.json</a>.</p>'
        f"<table>{''.join(rows)}</table></html>"
    )
