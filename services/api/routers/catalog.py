"""PUT /api/v1/catalog: validate everything, change nothing unless all of it is valid."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from services.api import audit
from services.api.deps import Admin, Pool
from services.api.errors import errors
from services.api.metrics import API_METRICS
from sitewatch import broker_auth
from sitewatch.catalog.validate import parse_document, validate_catalog
from sitewatch.store import catalog as catalog_store

router = APIRouter(prefix="/api/v1", tags=["catalog"])

MAX_DOCUMENT_BYTES = 32 << 20


@router.put(
    "/catalog",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "object"}},
            },
        }
    },
    responses={**errors(413), 422: {"description": "every problem of the document, nothing changed"}},
)
async def put_catalog(request: Request, pool: Pool, _admin: Admin) -> dict[str, Any]:
    """Load a catalog document (JSON, or YAML with `Content-Type: application/yaml`). Idempotent."""
    body = await request.body()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"catalog larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        doc = parse_document(body, request.headers.get("content-type", "application/json"))
    except ValueError as exc:
        API_METRICS.catalog_loads.labels("invalid").inc()
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            {"message": "the document could not be parsed", "problems": [{"path": "", "message": str(exc)}]},
        ) from exc
    async with pool.acquire() as conn:
        catalog, problems = validate_catalog(doc, await catalog_store.existing(conn))
        if catalog is None:
            API_METRICS.catalog_loads.labels("invalid").inc()
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                {
                    "message": f"{len(problems)} problem(s); nothing was changed",
                    "problems": [{"path": p.path, "message": p.message} for p in problems],
                },
            )
        result = await catalog_store.apply(conn, catalog)
        settings = request.app.state.settings
        if result.gateways_changed:
            await broker_auth.write_gateway_files(conn, settings.broker_dir)
            broker_auth.reload(settings.broker_pid)
    API_METRICS.catalog_loads.labels("changed" if result.changed else "unchanged").inc()
    audit.note(request, created=result.created, updated=result.updated)
    return {
        "changed": result.changed,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "broker_reloaded": result.gateways_changed,
    }
