"""The evaluator end to end: gateways publish through Mosquitto, alerts appear on
`sw/v1/{site}/alerts` and in the alert store, timers fire without messages, restarts raise nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
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
    for point in doc["points"]:
        point["period_s"] = 3600  # no offline alerts while a test runs
    doc["points"][0]["rules"] = [LEVELS]
    doc["points"][1]["rules"] = [{**LEVELS, "for_s": 1}]
    r = stack.load_catalog(doc)
    assert r.status_code == 200, r.text
    return code


def changes(messages: list[dict[str, Any]], source: str) -> list[tuple[str, int, bool]]:
    """(change, severity, cleared) of the threshold alert of `source`."""
    return [
        (m["change"], m["severity"], m["cleared"])
        for m in messages
        if m["source"]["code"] == source and m["rule"] == "threshold"
    ]


async def test_threshold_alert_is_published_escalated_cleared_and_stored(
    stack: StackHandle, pg: asyncpg.Connection[Any], site: str
) -> None:
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t, "value": 10.0}, {"point": "P0", "ts": t + 1, "value": 60.0}])])
    first = next(
        m
        for m in listener.wait(lambda m: len(changes(m, "P0")) >= 1)
        if m["source"]["code"] == "P0" and m["rule"] == "threshold"
    )
    assert first["rule"] == "threshold" and first["severity"] == 2 and first["state"] == "open"
    assert first["source"] == {"type": "point", "code": "P0"} and first["site"] == site and not first["cleared"]
    assert first["due_at"].endswith("+08:00") and first["count"] == 1 and first["value"] == 60.0
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 2, "value": 85.0}])])
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 3, "value": 44.0}])])
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 4, "value": 70.0}])])
    messages = [
        m
        for m in listener.wait(lambda m: len(changes(m, "P0")) >= 4)
        if m["source"]["code"] == "P0" and m["rule"] == "threshold"
    ]
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
        row = await pg.fetchrow(
            "SELECT a.* FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1 AND a.source_code = 'P0'", site
        )
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
    alert = next(m for m in listener.wait(lambda m: len(changes(m, "P1")) >= 1, timeout=5) if m["rule"] == "threshold")
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
    listener.wait(lambda m: len(changes(m, "P0")) >= 1)
    for _ in range(50):  # stored before the restart
        if await pg.fetchval(
            "SELECT count(*) FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1 AND a.rule = 'threshold'",
            site,
        ):
            break
        await asyncio.sleep(0.1)
    stack.down("alerting")
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 1000, "value": 95.0}])])  # queued for the evaluator
    stack.up()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 2000, "value": 91.0}])])
    gw.flush([gw.telemetry([{"point": "P0", "ts": t + 3000, "value": 10.0}])])
    messages = listener.wait(lambda m: any(x["cleared"] for x in m if x["rule"] == "threshold"), timeout=20)
    gw.close()
    listener.close()
    assert changes(messages, "P0") == [("raise", 3, False), ("clear", 3, True)]
    assert (
        await pg.fetchval("SELECT count(*) FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1", site) == 1
    )


def test_tenth_person_in_a_high_risk_zone_yields_exactly_one_alarm(stack: StackHandle) -> None:
    code = unique("HC")
    doc = site_catalog(code, kind="underground_mine", points=1)
    doc["points"][0]["period_s"] = 3600
    doc["zones"] = [{"code": "WF-302", "site": code, "name": "302 采场", "risk": "high"}]  # default: 9 allowed
    assert stack.load_catalog(doc).status_code == 200
    listener = AlertListener(stack, code)
    gw = stack.gateway(code, "GW-1", "gw-secret-1")
    t = now_ms()
    for person in range(9):
        gw.flush([gw.positions([{"tag": f"T-{person:03d}", "ts": t + person, "kind": "locate", "zone": "WF-302"}])])
    time.sleep(1.0)
    assert not [m for m in listener.messages if m["severity"] == 4], "nine people are allowed"
    gw.flush([gw.positions([{"tag": "T-009", "ts": t + 9, "kind": "locate", "zone": "WF-302"}])])
    listener.wait(lambda m: any(x["severity"] == 4 for x in m))
    gw.flush([gw.positions([{"tag": "T-010", "ts": t + 10, "kind": "locate", "zone": "WF-302"}])])  # an 11th
    time.sleep(1.0)
    gw.close()
    listener.close()
    alarms = [m for m in listener.messages if m["severity"] == 4]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["rule"] == "headcount" and alarm["source"] == {"type": "zone", "code": "WF-302"}
    assert alarm["value"] == 10 and alarm["state"] == "open"
    assert len({m["id"] for m in listener.messages if m["rule"] == "headcount"}) == 1


async def test_restart_rebuilds_zone_occupancy(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    code = unique("HR")
    doc = site_catalog(code, kind="underground_mine", points=1)
    doc["points"][0]["period_s"] = 3600
    doc["zones"] = [{"code": "WF-1", "site": code, "risk": "high"}]
    assert stack.load_catalog(doc).status_code == 200
    listener = AlertListener(stack, code)
    gw = stack.gateway(code, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.positions([{"tag": f"T-{i}", "ts": t + i, "kind": "locate", "zone": "WF-1"} for i in range(10)])])
    listener.wait(lambda m: any(x["severity"] == 4 for x in m))
    for _ in range(100):  # the positions are stored and the evaluator's checkpoint has passed them
        stored = await pg.fetchval(
            "SELECT count(*) FROM positions p JOIN sites s ON s.id = p.site_id WHERE s.code = $1", code
        )
        checkpoint = await pg.fetchval("SELECT value::bigint FROM storage_info WHERE key = 'alerting_checkpoint_ms'")
        if stored == 10 and checkpoint and checkpoint >= t + 9:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"positions stored: {stored}, checkpoint {checkpoint} < {t + 9}")
    stack.down("alerting")
    # queued while it is down: 10 → 7 people, below the warning (8) as well as the alarm (10)
    gw.flush([gw.positions([{"tag": f"T-{i}", "ts": t + 20 + i, "kind": "exit"} for i in range(3)])])
    stack.up()
    messages = listener.wait(lambda m: any(x["cleared"] for x in m if x["rule"] == "headcount"), timeout=20)
    gw.close()
    listener.close()
    headcount = [(x["change"], x["value"]) for x in messages if x["rule"] == "headcount" and x["severity"] == 4]
    assert headcount == [("severity", 10), ("clear", 7)]


def test_a_last_will_right_after_a_first_reading_covers_that_point(stack: StackHandle) -> None:
    """The reading and the will reach alerting in one batch: it must judge them in delivery order,
    so the dead gateway's alert covers the point instead of a point alert following later."""
    site = unique("LW")
    doc = site_catalog(site, points=1)
    doc["points"][0].update(period_s=1, rules=[{"rule": "offline", "factor": 4}])
    assert stack.load_catalog(doc).status_code == 200
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1", client_id=unique("dying"))
    alerting = stack.cli_json("stack", "status", "--json")["components"]["alerting"]["pid"]
    os.kill(alerting, signal.SIGSTOP)  # both wait at the broker, then arrive together
    try:
        gw.flush([gw.telemetry([{"point": "P0", "ts": now_ms(), "value": 1.0}])])
        gw.die()
        time.sleep(0.3)
    finally:
        os.kill(alerting, signal.SIGCONT)
    listener.wait(lambda m: any(x["source"]["type"] == "gateway" and x["rule"] == "offline" for x in m))
    time.sleep(6)  # beyond the point's offline time (4 s): a point alert would have come by now
    point_alerts = [m for m in listener.messages if m["source"] == {"type": "point", "code": "P0"}]
    listener.close()
    assert point_alerts == [], [(m["change"], m["message"], m["raised_at"]) for m in point_alerts]
