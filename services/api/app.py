"""The FastAPI application: routers per resource, a pool in the lifespan, metrics per request."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from services.api.audit import AuditMiddleware
from services.api.errors import install_errors
from services.api.events import EventBell
from services.api.metrics import API_METRICS
from services.api.routers import (
    access,
    alerts,
    catalog,
    dead_letters,
    hazards,
    health,
    readings,
    reports,
    sites,
    webhooks,
)
from services.api.ui import mount_ui
from services.api.webhooks import WebhookDeliverer
from sitewatch import __version__
from sitewatch.mqtt import MqttSession
from sitewatch.settings import Settings
from sitewatch.store import db

log = logging.getLogger("sitewatch.api")

DESCRIPTION = """Sitewatch HTTP API, version 1 (the external contract is PROTOCOL.md, documented in
`docs/protocol.md`). Every `/api/v1` call takes `Authorization: Bearer <token>`."""


async def _publisher(settings: Settings) -> MqttSession:
    """The API's broker session, for pushing the human steps on `sw/v1/{site}/alerts`. The API
    serves without it: paho keeps reconnecting and queues QoS 1 publishes meanwhile."""
    session = MqttSession.for_service("sitewatch-api", settings, [], persistent=False, manual_ack=False)
    try:
        await session.start(timeout=5.0)
    except TimeoutError:
        log.warning("broker not reachable yet: alert steps are queued until it is")
    return session


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await db.create_pool(settings.dsn)
        app.state.publisher = await _publisher(settings)
        app.state.bell = EventBell(settings.dsn)
        await app.state.bell.start()
        deliverer = WebhookDeliverer(settings.dsn, app.state.bell)
        deliverer.start()
        API_METRICS.ready.set(1)
        try:
            yield
        finally:
            API_METRICS.ready.set(0)
            await deliverer.stop()
            await app.state.bell.stop()
            await app.state.publisher.stop()
            await app.state.pool.close()

    app = FastAPI(title="Sitewatch", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    modules = (health, catalog, sites, readings, dead_letters, alerts, hazards, reports, webhooks, access)
    for module in modules:
        app.include_router(module.router)
    install_errors(app, [module.router for module in modules])
    app.add_middleware(AuditMiddleware, trusted_proxies=settings.trusted_proxies)
    mount_ui(app)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        API_METRICS.requests.labels(request.method, route, str(response.status_code)).inc()
        API_METRICS.latency.labels(route).observe(time.perf_counter() - started)
        return response

    return app
