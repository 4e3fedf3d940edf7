"""Liveness, readiness and the Prometheus scrape of the whole stack."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

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


async def _scrape_all(settings: Settings) -> list[tuple[str, str | None]]:
    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(_scrape(client, n, u) for n, u in settings.service_urls.items())))


async def collect(settings: Settings) -> str:
    """The API's own families, then each service's, then whether each service answered."""
    scraped = await _scrape_all(settings)
    parts = [generate_latest(API_METRICS.registry).decode()]
    up = [
        "# HELP sitewatch_service_up 1 when the service's metrics endpoint answered the scrape",
        "# TYPE sitewatch_service_up gauge",
    ]
    for name, text in scraped:
        up.append(f'sitewatch_service_up{{service="{name}"}} {1 if text is not None else 0}')
    texts = [(name, text) for name, text in scraped if text is not None]
    if settings.shards > 1:  # N workers export the same families: one each, told apart by `worker`
        parts.append(_merged(texts))
    else:
        parts.extend(text for _, text in texts)
    return "".join(parts) + "\n".join(up) + "\n"


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _merged(texts: list[tuple[str, str]]) -> str:
    """The workers' expositions as one, every sample labelled with its `worker` ("ingest-1")."""
    families: dict[str, Metric] = {}
    for name, text in texts:
        worker = name if "-" in name else f"{name}-0"
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            merged.samples.extend(s._replace(labels={**s.labels, "worker": worker}) for s in family.samples)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry).decode()


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(settings: Settings = Depends(get_settings)) -> Response:  # noqa: B008
    """Prometheus text format: ingest rate, batch sizes, lag, spool depth, rejects by reason, API."""
    return Response(await collect(settings), media_type=CONTENT_TYPE_LATEST)


BEHIND_S = 1.0  # alerting's delay above which the stack reports itself overloaded
EVENT_BEHIND_S = 2.0  # … or the age of the newest reading it evaluated (clocks and gateways add some)
_RANK = {"ok": 0, "catching_up": 1, "overloaded": 2, "degraded": 3}


def service_state(name: str, text: str) -> dict[str, float | str]:
    """The load facts of one service's metrics: its state, and the figures behind it."""
    values: dict[str, float | str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sitewatch_ingest_load" and sample.value == 1:
                values["load"] = sample.labels["sitewatch_ingest_load"]
            elif sample.name in _FIGURES:
                values[_FIGURES[sample.name]] = sample.value
    if name.startswith("ingest"):
        load = values.get("load", "normal")
        values["state"] = {"normal": "ok", "database_down": "degraded"}.get(str(load), str(load))
    elif name.startswith("alerting"):
        behind = float(values.get("delay_s", 0.0)) > BEHIND_S or float(values.get("event_lag_s", 0.0)) > EVENT_BEHIND_S
        values["state"] = "overloaded" if behind else "ok"
    else:
        values["state"] = "ok"
    return values


_FIGURES = {
    "sitewatch_ingest_readings_per_second": "stored_per_s",
    "sitewatch_ingest_spool_bytes": "spool_bytes",
    "sitewatch_ingest_deferred_readings_total": "deferred_readings",
    "sitewatch_ingest_unacknowledged": "unacknowledged",
    "sitewatch_ingest_behind_seconds": "behind_s",
    "sitewatch_ingest_db_up": "db_up",
    "sitewatch_alerting_delay_seconds": "delay_s",
    "sitewatch_alerting_event_lag_seconds": "event_lag_s",
    "sitewatch_alerting_queued": "queued",
    "sitewatch_alerting_unstored_changes": "unstored_changes",
}


@router.get("/status")
async def status(settings: Settings = Depends(get_settings)) -> dict[str, object]:  # noqa: B008
    """The stack's load state (docs/reliability.md, Overload): ok, catching_up (storage drains its
    backlog), overloaded (storage defers to the spool, or alerting is behind) or degraded (a service
    does not answer, or the database is away); with each service's figures."""
    services: dict[str, dict[str, float | str]] = {}
    for name, text in await _scrape_all(settings):
        services[name] = service_state(name, text) if text is not None else {"state": "degraded", "up": 0}
    overall = max((str(v["state"]) for v in services.values()), key=_RANK.__getitem__, default="ok")
    return {"status": overall, "services": services}
