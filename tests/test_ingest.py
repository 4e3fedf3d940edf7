"""Ingest through the real interfaces: a gateway publishes to Mosquitto, rows appear in PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import asyncpg
import pytest

from tests.conftest import StackHandle, site_catalog, unique


async def count_readings(pg: asyncpg.Connection[Any], site: str) -> int:
    return int(
        await pg.fetchval(
            "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id JOIN sites s ON s.id = p.site_id"
            " WHERE s.code = $1",
            site,
        )
    )


async def wait_readings(pg: asyncpg.Connection[Any], site: str, expected: int, timeout: float = 60) -> int:
    """Poll until `expected` readings are stored, then make sure no more arrive (nothing doubled)."""
    deadline = time.monotonic() + timeout
    n = await count_readings(pg, site)
    while n < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        n = await count_readings(pg, site)
    await asyncio.sleep(0.5)
    return await count_readings(pg, site)


def now_ms() -> int:
    return int(time.time() * 1000)


def make_readings(n: int, t0: int, points: int = 5) -> list[dict[str, Any]]:
    return [{"point": f"P{i % points}", "ts": t0 + i, "value": float(i)} for i in range(n)]


@pytest.fixture
def site(stack: StackHandle) -> str:
    code = unique("S")
    r = stack.load_catalog(site_catalog(code))
    assert r.status_code == 200, r.text
    return code


async def test_published_readings_are_stored(stack: StackHandle, pg: asyncpg.Connection[Any], site: str) -> None:
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t0 = now_ms()
    gw.flush(
        [
            gw.telemetry(
                [
                    {"point": "P0", "ts": "2026-11-22T09:15:02.120+08:00", "value": 18.5},
                    {"point": "P1", "ts": t0, "value": 1, "quality": "good"},
                    {"point": "P2", "ts": t0, "value": True, "quality": "uncertain"},
                ]
            )
        ]
    )
    gw.close()
    assert await wait_readings(pg, site, 3) == 3
    rows = await pg.fetch(
        "SELECT p.code, r.ts, r.value, r.quality FROM readings r JOIN points p ON p.id = r.point_id"
        " JOIN sites s ON s.id = p.site_id WHERE s.code = $1 ORDER BY p.code",
        site,
    )
    assert [(r["code"], r["value"], r["quality"]) for r in rows] == [("P0", 18.5, 0), ("P1", 1.0, 0), ("P2", 1.0, 1)]
    assert rows[0]["ts"] == dt.datetime(2026, 11, 22, 1, 15, 2, 120000, tzinfo=dt.UTC)
    assert int(rows[1]["ts"].timestamp() * 1000) == t0


async def test_partly_bad_batch_keeps_good_readings_and_lists_reasons(
    stack: StackHandle, pg: asyncpg.Connection[Any], site: str
) -> None:
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t0 = now_ms()
    infos = [
        gw.telemetry(
            [
                {"point": "P0", "ts": t0, "value": 1.0},
                {"point": "NOPE", "ts": t0, "value": 2.0},
                {"point": "P1", "ts": "yesterday", "value": 3.0},
                {"point": "P2", "ts": t0, "value": "high"},
                {"point": "P3", "ts": t0, "value": 4.0, "quality": "so-so"},
                {"point": "P4", "ts": t0 + 1, "value": 5.0},
            ]
        ),
        gw.publish_raw("telemetry", b'{"seq": 99, "readings": [ {"point": '),
        gw.publish_raw("telemetry", b'{"seq": 100, "readings": [], "pad": "' + b"x" * (1 << 20) + b'"}'),
    ]
    gw.flush(infos)
    gw.close()
    assert await wait_readings(pg, site, 2) == 2
    deadline = time.monotonic() + 20
    with stack.http() as c:
        while True:
            body = c.get("/api/v1/dead-letters", params={"site": site}).json()
            reasons = sorted(d["reason"] for d in body["dead_letters"])
            if len(reasons) >= 6 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert reasons == sorted(
        ["unknown_point", "bad_timestamp", "non_numeric_value", "bad_quality", "invalid_json", "oversize"]
    )
    unknown = next(d for d in body["dead_letters"] if d["reason"] == "unknown_point")
    assert "NOPE" in unknown["item"] and unknown["gateway"] == "GW-1" and unknown["seq"] == 1


async def test_redelivered_seq_is_stored_once(stack: StackHandle, pg: asyncpg.Connection[Any], site: str) -> None:
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    batch = make_readings(50, now_ms())
    gw.flush([gw.telemetry(batch, seq=7), gw.telemetry(batch, seq=7), gw.telemetry(batch, seq=8)])
    gw.close()
    assert await wait_readings(pg, site, 100) == 100


async def test_positions_are_stored(stack: StackHandle, pg: asyncpg.Connection[Any], site: str) -> None:
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t0 = now_ms()
    gw.flush(
        [
            gw.positions(
                [
                    {"tag": "T-1", "ts": t0, "kind": "locate", "zone": "Z-1"},
                    {"tag": "T-2", "ts": t0 + 1, "kind": "sos", "zone": "Z-1"},
                    {"tag": "T-1", "ts": t0 + 2, "kind": "exit"},
                    {"tag": "T-3", "ts": t0 + 3, "kind": "locate", "zone": "NO-SUCH-ZONE"},
                ]
            )
        ]
    )
    gw.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = await pg.fetch(
            "SELECT p.tag, p.kind, p.zone FROM positions p JOIN sites s ON s.id = p.site_id"
            " WHERE s.code = $1 ORDER BY p.ts",
            site,
        )
        if len(rows) == 3:
            break
        await asyncio.sleep(0.2)
    assert [tuple(r) for r in rows] == [("T-1", 0, "Z-1"), ("T-2", 2, "Z-1"), ("T-1", 1, None)]
    reasons = await pg.fetch("SELECT reason FROM dead_letters WHERE site = $1", site)
    assert [r["reason"] for r in reasons] == ["unknown_zone"]


async def test_gateway_cannot_publish_under_another_site(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    mine, other = unique("S"), unique("S")
    for code in (mine, other):
        assert stack.load_catalog(site_catalog(code)).status_code == 200
    gw = stack.gateway(mine, "GW-1", "gw-secret-1")
    t0 = now_ms()
    foreign = gw.publish_raw(
        "telemetry",
        b'{"seq": 1, "readings": [{"point": "P0", "ts": %d, "value": 1}]}' % t0,
        topic=f"sw/v1/{other}/GW-1/telemetry",
    )
    gw.flush([foreign, gw.telemetry(make_readings(3, t0))])
    gw.close()
    assert await wait_readings(pg, mine, 3) == 3
    assert await count_readings(pg, other) == 0
    assert await pg.fetchval("SELECT count(*) FROM dead_letters WHERE site = $1", other) == 0


def test_wrong_gateway_password_is_refused(stack: StackHandle, site: str) -> None:
    with pytest.raises(ConnectionRefusedError):
        stack.gateway(site, "GW-1", "not-the-password")
