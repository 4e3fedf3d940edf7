"""The evaluator end to end: gateways publish through Mosquitto, alerts appear on
`sw/v1/{site}/alerts` and in the alert store, timers fire without messages, restarts raise nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import asyncpg
import pytest

from tests.conftest import AlertListener, StackHandle, site_catalog, unique

LEVELS = {"rule": "threshold", "above": [50, 80], "deadband": 5}


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def site(stack: StackHandle) -> str:
    code = unique("AL")
    doc = site_catalog(code, points=3)
    doc["points"][0]["rules"] = [LEVELS]
    doc["points"][1]["rules"] = [{**LEVELS, "for_s": 1}]
    r = stack.load_catalog(doc)
    assert r.status_code == 200, r.text
    return code


def changes(messages: list[dict[str, Any]], source: str) -> list[tuple[str, int, bool]]:
    return [(m["change"], m["severity"], m["cleared"]) for m in messages if m["source"]["code"] == source]


async def test_threshold_alert_is_published_escalated_cleared_and_stored(
    stack: StackHandle, pg: asyncpg.Connection[Any], site: str
) -> None:
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t, "value": 10.0}, {"point": "P0", "ts": t + 1, "value": 60.0}])])
    first = listener.wait(lambda m: len(m) >= 1)[0]
    assert first["rule"] == "threshold" and first["severity"] == 2 and first["state"] == "open"
    assert first["source"] == {"type": "point", "code": "P0"} and first["site"] == site and not first["cleared"]
    assert first["due_at"].endswith("+08:00") and first["count"] == 1 and first["value"] == 60.0
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 2, "value": 85.0}])])
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 3, "value": 44.0}])])
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 4, "value": 70.0}])])
    messages = listener.wait(lambda m: len(changes(m, "P0")) >= 4)
    assert changes(messages, "P0") == [
        ("raise", 2, False),
        ("severity", 3, False),
        ("clear", 3, True),
        ("retrigger", 3, False),
    ]
    last = messages[-1]
    assert last["count"] == 2 and last["peak"] == 85.0 and len({m["id"] for m in messages}) == 1
    gw.close()
    listener.close()
    for _ in range(50):
        row = await pg.fetchrow("SELECT a.* FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1", site)
        if row is not None and row["count"] == 2:
            break
        await asyncio.sleep(0.1)
    assert row is not None and str(row["id"]) == last["id"] and row["severity"] == 3 and row["state"] == "open"
    history = [
        r["action"]
        for r in await pg.fetch("SELECT action FROM alert_history WHERE alert_id = $1 ORDER BY id", row["id"])
    ]
    assert history == ["raise", "severity", "clear", "retrigger"]


def test_on_delay_fires_on_time_without_further_messages(stack: StackHandle, site: str) -> None:
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.telemetry([{"point": "P1", "ts": t, "value": 60.0}])])
    gw.close()
    alert = listener.wait(lambda m: len(m) >= 1, timeout=5)[0]
    listener.close()
    assert alert["source"]["code"] == "P1"
    raised = dt.datetime.fromisoformat(alert["raised_at"])
    assert abs(raised.timestamp() * 1000 - (t + 1000)) < 5  # run start + for_s, not when the tick ran


async def test_restart_rebuilds_state_and_raises_nothing_twice(
    stack: StackHandle, pg: asyncpg.Connection[Any], site: str
) -> None:
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t, "value": 90.0}])])
    listener.wait(lambda m: len(m) >= 1)
    for _ in range(50):  # stored before the restart
        if await pg.fetchval("SELECT count(*) FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1", site):
            break
        await asyncio.sleep(0.1)
    stack.down("alerting")
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 1000, "value": 95.0}])])  # queued for the evaluator
    stack.up()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 2000, "value": 91.0}])])
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 3000, "value": 10.0}])])
    messages = listener.wait(lambda m: any(x["cleared"] for x in m), timeout=20)
    gw.close()
    listener.close()
    assert [x["change"] for x in messages] == ["raise", "clear"]
    assert (
        await pg.fetchval("SELECT count(*) FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1", site) == 1
    )
