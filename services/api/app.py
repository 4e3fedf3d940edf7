"""The FastAPI application: routers per resource, a pool in the lifespan, metrics per request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from services.api.metrics import API_METRICS
from services.api.routers import catalog, dead_letters, health, readings
from sitewatch import __version__
from sitewatch.settings import Settings
from sitewatch.store import db

DESCRIPTION = """Sitewatch HTTP API, version 1 (the external contract is PROTOCOL.md, documented in
`docs/protocol.md`). Every `/api/v1` call takes `Authorization: Bearer <token>`."""


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await db.create_pool(settings.dsn)
        API_METRICS.ready.set(1)
        try:
            yield
        finally:
            API_METRICS.ready.set(0)
            await app.state.pool.close()

    app = FastAPI(title="Sitewatch", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    for module in (health, catalog, readings, dead_letters):
        app.include_router(module.router)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        API_METRICS.requests.labels(request.method, route, str(response.status_code)).inc()
        API_METRICS.latency.labels(route).observe(time.perf_counter() - started)
        return response

    return app
