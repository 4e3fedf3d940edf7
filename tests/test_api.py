"""The HTTP API basics: tokens and scoping, readings raw and bucketed, metrics, health, OpenAPI."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg

from tests.conftest import StackHandle, site_catalog, unique
from tests.test_ingest import wait_readings

# Yesterday 01:15:00 UTC, 09:15 in Asia/Shanghai: inside retention whenever the suite runs.
T0_DT = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(hour=1, minute=15, second=0, microsecond=0)
T0 = int(T0_DT.timestamp() * 1000)
LOCAL = T0_DT.astimezone(dt.timezone(dt.timedelta(hours=8)))


async def stored_site(stack: StackHandle, pg: asyncpg.Connection[Any], enterprise: str) -> str:
    site = unique("R")
    assert stack.load_catalog(site_catalog(site, enterprise=enterprise)).status_code == 200
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    # P0 every second for two minutes: values 0..119
    gw.flush([gw.telemetry([{"point": "P0", "ts": T0 + i * 1000, "value": float(i)} for i in range(120)])])
    gw.close()
    assert await wait_readings(pg, site, 120) == 120
    return site


async def test_readings_raw_and_bucketed(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    site = await stored_site(stack, pg, "ENT-R")
    with stack.http() as c:
        raw = c.get("/api/v1/points/P0/readings", params={"site": site, "from": T0, "to": T0 + 10_000}).json()
        assert [r["value"] for r in raw["readings"]] == [float(i) for i in range(10)]
        assert raw["readings"][0]["ts"] == LOCAL.isoformat(timespec="milliseconds")
        assert raw["readings"][0]["quality"] == "good" and raw["truncated"] is False
        rfc = c.get(
            "/api/v1/points/P0/readings",
            params={
                "site": site,
                "from": LOCAL.isoformat(),
                "to": (LOCAL + dt.timedelta(minutes=2)).isoformat(),
                "bucket": "1m",
            },
        )
        buckets = rfc.json()["readings"]
        assert [(b["count"], b["min"], b["max"], b["avg"], b["last"]) for b in buckets] == [
            (60, 0.0, 59.0, 29.5, 59.0),
            (60, 60.0, 119.0, 89.5, 119.0),
        ]
        assert c.get("/api/v1/points/P0/readings", params={"site": site, "bucket": "fortnight"}).status_code == 422
        assert c.get("/api/v1/points/P0/readings", params={"site": site, "from": "noon"}).status_code == 422
        assert c.get("/api/v1/points/NOPE/readings", params={"site": site}).status_code == 404


async def test_enterprise_token_cannot_read_another_enterprise(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    ours = await stored_site(stack, pg, "ENT-OURS")
    theirs = await stored_site(stack, pg, "ENT-THEIRS")
    token = stack.token_for("enterprise", "--enterprise", "ENT-OURS")
    params = {"from": T0, "to": T0 + 5000}
    with stack.http(token) as c:
        assert c.get("/api/v1/points/P0/readings", params={**params, "site": ours}).status_code == 200
        assert c.get("/api/v1/points/P0/readings", params={**params, "site": theirs}).status_code == 404
        assert c.get("/api/v1/dead-letters", params={"site": theirs}).json()["dead_letters"] == []
    scoped = stack.token_for("operator", "--sites", theirs)
    with stack.http(scoped) as c:
        assert c.get("/api/v1/points/P0/readings", params={**params, "site": ours}).status_code == 404
        assert c.get("/api/v1/points/P0/readings", params={**params, "site": theirs}).status_code == 200


def test_token_cli_rejects_bad_input(stack: StackHandle) -> None:
    bad_role = stack.cli("token", "create", "--role", "wizard", check=False)
    assert bad_role.returncode == 1 and "role must be one of" in bad_role.stderr
    no_ent = stack.cli("token", "create", "--role", "enterprise", "--enterprise", "NO-SUCH", check=False)
    assert no_ent.returncode == 1 and "not in the catalog" in no_ent.stderr


async def test_metrics_health_and_openapi(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    await stored_site(stack, pg, "ENT-M")
    with stack.http() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200
        for _ in range(50):
            text = c.get("/metrics").text
            if "sitewatch_ingest_readings_stored_total" in text:
                break
            await asyncio.sleep(0.1)
        for family in (
            "sitewatch_ingest_readings_stored_total",
            "sitewatch_ingest_batch_readings_bucket",
            "sitewatch_ingest_lag_seconds_bucket",
            "sitewatch_ingest_spool_bytes",
            "sitewatch_ingest_rejects_total",
            "sitewatch_ingest_readings_per_second",
            'sitewatch_service_up{service="ingest"} 1',
            "sitewatch_api_requests_total",
        ):
            assert family in text, family
        spec = c.get("/openapi.json").json()
        assert {"/api/v1/catalog", "/api/v1/points/{point}/readings", "/api/v1/dead-letters"} <= set(spec["paths"])
        assert c.get("/docs").status_code == 200
    with stack.http("nonsense") as c:
        assert c.get("/api/v1/dead-letters").status_code == 401
