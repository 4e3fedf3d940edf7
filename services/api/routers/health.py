"""Liveness, readiness and the Prometheus scrape of the whole stack."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.deps import Pool, get_settings
from services.api.metrics import API_METRICS
from sitewatch.settings import Settings
from sitewatch.store import db

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": dict[str, str], "description": "PostgreSQL does not answer"}})
async def readyz(pool: Pool, response: Response) -> dict[str, str]:
    """The API can serve: PostgreSQL answers."""
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), 2.0)
    except db.FAILED:
        response.status_code = 503
        return {"status": "database unavailable"}
    return {"status": "ready"}


async def _scrape(client: httpx.AsyncClient, name: str, url: str) -> tuple[str, str | None]:
    try:
        r = await client.get(url, timeout=1.0)
        r.raise_for_status()
        return name, r.text
    except httpx.HTTPError:
        return name, None


async def collect(settings: Settings) -> str:
    """The API's own families, then each service's, then whether each service answered."""
    async with httpx.AsyncClient() as client:
        scraped = await asyncio.gather(*(_scrape(client, n, u) for n, u in settings.service_urls.items()))
    parts = [generate_latest(API_METRICS.registry).decode()]
    up = [
        "# HELP sitewatch_service_up 1 when the service's metrics endpoint answered the scrape",
        "# TYPE sitewatch_service_up gauge",
    ]
    for name, text in scraped:
        if text is not None:
            parts.append(text)
        up.append(f'sitewatch_service_up{{service="{name}"}} {1 if text is not None else 0}')
    return "".join(parts) + "\n".join(up) + "\n"


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(settings: Settings = Depends(get_settings)) -> Response:  # noqa: B008
    """Prometheus text format: ingest rate, batch sizes, lag, spool depth, rejects by reason, API."""
    return Response(await collect(settings), media_type=CONTENT_TYPE_LATEST)
