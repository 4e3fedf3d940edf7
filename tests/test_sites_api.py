"""The dispatch board's endpoints through the real stack: sites, live zones (kept by ingest in
tag_locations), points with their latest state and slope trend, alert sources, the monthly
report's days, /me, and scoping on each."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import numpy as np
import pytest

from sitewatch.catalog.rules import SlopeTrend
from sitewatch.rules.base import PointInfo, Readings, RuleCatalog, SiteInfo
from sitewatch.rules.reference import slope as reference
from tests.conftest import AlertListener, StackHandle, site_catalog, threshold_site, unique

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def local(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, SHANGHAI).isoformat(timespec="milliseconds")


def poll(c: httpx.Client, path: str, until: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """GET `path` until it answers 200 with a body for which `until(body)` holds; the body."""
    deadline = time.monotonic() + timeout
    while True:
        r = c.get(path)
        if r.status_code == 200 and until(r.json()):
            return r.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {path}: {r.status_code} {r.text}")
        time.sleep(0.02)


def by_code(zones: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {z["code"]: z for z in zones}


def mine(stack: StackHandle, enterprise: str = "ENT-BOARD") -> str:
    """An underground mine: a high-risk zone (9 allowed), a plain one, one capped at 3; tags with names."""
    code = unique("MINE")
    doc = site_catalog(code, enterprise=enterprise, kind="underground_mine", points=1)
    doc["points"][0]["period_s"] = 3600
    doc["zones"] = [
        {"code": "Z-HIGH", "site": code, "name": "302 采场", "risk": "high"},
        {"code": "Z-PLAIN", "site": code, "name": "运输巷"},
        {"code": "Z-CAP", "site": code, "name": "泵房", "max_people": 3},
    ]
    doc["tags"] = [{"code": f"T-{i:02d}", "site": code, "person": f"工人{i}"} for i in range(12)]
    assert stack.load_catalog(doc).status_code == 200
    return code


def test_zones_count_people_against_their_limits(stack: StackHandle) -> None:
    site = mine(stack)
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms() - 60_000
    zones_url = f"/api/v1/sites/{site}/zones"
    with stack.http() as c:
        empty = c.get(zones_url).json()
        assert empty["on_site"] == 0 and empty["shift_capacity"] == 50
        assert [z["code"] for z in empty["zones"]] == ["Z-CAP", "Z-HIGH", "Z-PLAIN"]
        assert by_code(empty["zones"])["Z-HIGH"] == {
            "code": "Z-HIGH",
            "name": "302 采场",
            "risk": "high",
            "limit": 9,
            "headcount": 0,
            "warn_at": 8,
            "alarm_at": 10,
            "state": "normal",
        }
        plain, cap = by_code(empty["zones"])["Z-PLAIN"], by_code(empty["zones"])["Z-CAP"]
        assert (plain["limit"], plain["warn_at"], plain["alarm_at"]) == (None, None, None)
        assert (cap["limit"], cap["warn_at"], cap["alarm_at"]) == (3, 4, 4)  # too small to warn first

        gw.flush(
            [gw.positions([{"tag": f"T-{i:02d}", "ts": t + i, "kind": "locate", "zone": "Z-HIGH"} for i in range(8)])]
        )
        listener.wait(lambda m: any(x["rule"] == "headcount" and x["severity"] == 2 for x in m))
        high = by_code(poll(c, zones_url, lambda b: by_code(b["zones"])["Z-HIGH"]["headcount"] == 8)["zones"])["Z-HIGH"]
        assert high["state"] == "warning"

        # the 9th and 10th: the API reads the alarm's headcount as soon as the alarm is out (a
        # positions batch does not wait out ingest's 200 ms linger; 100 ms of grace for a busy machine)
        gw.flush(
            [gw.positions([{"tag": f"T-{i:02d}", "ts": t + i, "kind": "locate", "zone": "Z-HIGH"} for i in (8, 9)])]
        )
        listener.wait(lambda m: any(x["rule"] == "headcount" and x["severity"] == 4 for x in m))
        at_alarm = poll(c, zones_url, lambda b: by_code(b["zones"])["Z-HIGH"]["headcount"] == 10, timeout=0.1)
        high = by_code(at_alarm["zones"])["Z-HIGH"]
        assert (high["headcount"], high["limit"], high["state"]) == (10, 9, "alarm")
        assert at_alarm["on_site"] == 10

        gw.flush(
            [
                gw.positions(
                    [
                        {"tag": "T-00", "ts": t + 100, "kind": "exit"},
                        {"tag": "T-01", "ts": t + 101, "kind": "sos"},  # no zone: stays in Z-HIGH
                        {"tag": "T-02", "ts": t + 102, "kind": "sos", "zone": "Z-PLAIN"},  # moves
                        {"tag": "T-03", "ts": t + 3 - 1, "kind": "locate", "zone": "Z-PLAIN"},  # late: ignored
                        {"tag": "V-1", "ts": t + 103, "kind": "locate", "zone": "Z-PLAIN"},  # a visitor's tag
                    ]
                )
            ]
        )
        after = by_code(poll(c, zones_url, lambda b: by_code(b["zones"])["Z-PLAIN"]["headcount"] == 2)["zones"])
        assert (after["Z-HIGH"]["headcount"], after["Z-HIGH"]["state"]) == (8, "warning")
        assert after["Z-PLAIN"]["headcount"] == 2

        detail = c.get(f"{zones_url}/Z-HIGH").json()
        assert [o["tag"] for o in detail["occupants"]] == [f"T-{i:02d}" for i in (1, *range(3, 10))]
        first = detail["occupants"][0]
        assert first == {"tag": "T-01", "person": "工人1", "since": local(t + 1), "last_seen": local(t + 101)}
        plain_detail = c.get(f"{zones_url}/Z-PLAIN").json()
        assert [(o["tag"], o["person"], o["since"]) for o in plain_detail["occupants"]] == [
            ("T-02", "工人2", local(t + 102)),
            ("V-1", None, local(t + 103)),
        ]
        assert {k: v for k, v in plain_detail.items() if k != "occupants"} == after["Z-PLAIN"]
        assert c.get(f"{zones_url}/NO-SUCH").status_code == 404
    gw.close()
    listener.close()


def test_a_redelivered_positions_message_moves_nobody_twice(stack: StackHandle) -> None:
    site = mine(stack)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms() - 60_000

    def message(events: list[dict[str, Any]]) -> bytes:
        return json.dumps({"seq": 500, "events": events}).encode()

    first = [{"tag": "T-00", "ts": t, "kind": "locate", "zone": "Z-CAP"}]
    gw.flush([gw.publish_raw("positions", message(first)), gw.publish_raw("positions", message(first))])
    # the same seq again, carrying more: a redelivery, acknowledged and dropped whole
    resent = [*first, {"tag": "T-01", "ts": t + 1, "kind": "locate", "zone": "Z-CAP"}]
    gw.flush([gw.publish_raw("positions", message(resent))])
    gw.flush([gw.positions([{"tag": "T-02", "ts": t + 2, "kind": "locate", "zone": "Z-PLAIN"}])])  # a marker
    with stack.http() as c:
        zones = by_code(
            poll(c, f"/api/v1/sites/{site}/zones", lambda b: by_code(b["zones"])["Z-PLAIN"]["headcount"] == 1)["zones"]
        )
        assert zones["Z-CAP"]["headcount"] == 1
        assert [o["tag"] for o in c.get(f"/api/v1/sites/{site}/zones/Z-CAP").json()["occupants"]] == ["T-00"]
    gw.close()


async def test_a_zone_outside_the_catalog_is_listed_without_risk(
    stack: StackHandle, pg: asyncpg.Connection[Any]
) -> None:
    site = mine(stack)
    site_id = await pg.fetchval("SELECT id FROM sites WHERE code = $1", site)
    # ingest rejects unknown zones; rows from before a zone was known are kept as they are
    await pg.execute(
        "INSERT INTO tag_locations (site_id, tag, ts, zone, since) VALUES ($1, 'T-OLD', now(), 'Z-GONE', now())",
        site_id,
    )
    with stack.http() as c:
        body = c.get(f"/api/v1/sites/{site}/zones").json()
        gone = by_code(body["zones"])["Z-GONE"]
        assert (gone["risk"], gone["limit"], gone["headcount"], gone["state"]) == (None, None, 1, "normal")
        assert [z["code"] for z in body["zones"]] == ["Z-CAP", "Z-GONE", "Z-HIGH", "Z-PLAIN"]
        assert body["on_site"] == 1
        assert c.get(f"/api/v1/sites/{site}/zones/Z-GONE").json()["occupants"][0]["tag"] == "T-OLD"


def test_points_show_the_latest_reading_alert_last_hour_and_levels(stack: StackHandle) -> None:
    site = threshold_site(stack, "PTS", points=2, rule={"rule": "threshold", "above": [50, 80], "below": [5]})
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    earlier = t - 30 * 60_000 - t % 60_000 + 1000  # two readings in one minute, half an hour ago
    gw.flush(
        [
            gw.telemetry(
                [
                    {"point": "P0", "ts": earlier, "value": 10.0},
                    {"point": "P0", "ts": earlier + 1, "value": 20.0},
                    {"point": "P0", "ts": t, "value": 60.0, "quality": "uncertain"},
                ]
            )
        ]
    )
    alert = listener.wait(lambda m: len(m) >= 1)[0]
    gw.close()
    listener.close()
    url = f"/api/v1/sites/{site}/points"
    with stack.http() as c:
        while True:
            asked = dt.datetime.now(dt.UTC)
            body = poll(c, url, lambda b: None not in (b["points"][0]["alert"], b["points"][0]["last"]))
            if dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) == asked.replace(second=0, microsecond=0):
                break  # the minutes did not turn during the request: the spark's slots are known
    minute = asked.replace(second=0, microsecond=0)

    def slot(ms: int) -> int:
        at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(second=0, microsecond=0)
        return 59 - int((minute - at).total_seconds() // 60)

    assert body["site"] == site and body["total"] == 2
    p0, p1 = body["points"]
    assert (p0["code"], p0["kind"], p0["unit"], p0["period_s"]) == ("P0", "generic", "", 3600)
    assert p0["last"] == {"ts": local(t), "value": 60.0, "quality": "uncertain"}
    assert p0["alert"] == {
        "id": alert["id"],
        "rule": "threshold",
        "severity": 2,
        "state": "open",
        "cleared": False,
        "overdue": False,
    }
    expected: list[float | None] = [None] * 60
    expected[slot(earlier)], expected[slot(t)] = 15.0, 60.0
    assert p0["spark"] == expected
    assert p0["thresholds"] == {"above": [50, 80], "below": [5]} and p0["trend"] is None
    assert (p1["code"], p1["last"], p1["alert"], p1["spark"]) == ("P1", None, None, [None] * 60)
    with stack.http() as c:
        assert c.get(url, params={"kind": "gas_lel"}).json() == {"site": site, "total": 0, "points": []}
        paged = c.get(url, params={"kind": "generic", "limit": 1, "offset": 1}).json()
        assert paged["total"] == 2 and [p["code"] for p in paged["points"]] == ["P1"]
        assert c.get(url, params={"limit": 0}).status_code == 422
        source = c.get(f"/api/v1/alerts/{alert['id']}").json()["source_info"]
        assert source == {
            "type": "point",
            "code": "P0",
            "name": "",
            "kind": "generic",
            "unit": "",
            "thresholds": {"above": [50, 80], "below": [5]},
        }


# A Fukuzono creep: velocity k / (t_f - t) mm/d, failing 10 minutes after the last reading,
# judged over a 3-minute window with levels reached one after another.
SLOPE = SlopeTrend(
    rule="slope_trend",
    window_h=0.05,
    rate_mm_d=[60.0, 75.0, 85.0, 150.0],
    accel_mm_d2=[5000.0, 20000.0, 40000.0, 80000.0],
    steady_rate_mm_d=60.0,
).model_dump(mode="json")


def creep(end: int) -> list[tuple[int, float]]:
    fail = end + 600_000
    return [(ts, -0.694 * math.log((fail - ts) / DAY_MS)) for ts in range(end - 330_000, end + 1, 3000)]


def test_a_slope_points_trend_is_the_evaluators(stack: StackHandle) -> None:
    site = unique("PIT")
    doc = site_catalog(site, kind="open_pit", points=0)
    doc["points"] = [
        {
            "code": "SL-1",
            "site": site,
            "kind": "slope_displacement",
            "name": "东帮 GNSS-1",
            "unit": "mm",
            "period_s": 3600,
            "rules": [SLOPE],
        }
    ]
    assert stack.load_catalog(doc).status_code == 200
    series = creep(now_ms() - 2000)
    # where the evaluator changes its mind last: the series ends there, so the alert's details are
    # those of the last reading
    family = reference.Slope()
    info = PointInfo(1, 1, "SL-1", "slope_displacement", "mm", 3600.0, None, (SLOPE,))
    family.load(RuleCatalog({1: SiteInfo(1, site, "open_pit")}, {}, {1: info}))
    n = len(series)
    signals = family.on_readings(
        Readings(
            np.ones(n, np.int32),
            np.array([ts for ts, _ in series], np.int64),
            np.array([v for _, v in series]),
            np.zeros(n, np.int16),
            np.zeros(n, np.int32),
        )
    )
    assert [s.severity for s in signals] == [2, 3], "the series should climb from yellow to orange"
    series = [(ts, v) for ts, v in series if ts <= signals[-1].ts_ms]
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    gw.flush([gw.telemetry([{"point": "SL-1", "ts": ts, "value": v} for ts, v in series])])
    gw.close()
    messages = listener.wait(lambda m: any(x["rule"] == "slope_trend" and x["severity"] == 3 for x in m))
    listener.close()
    last = [x for x in messages if x["rule"] == "slope_trend"][-1]
    with stack.http() as c:
        body = poll(
            c,
            f"/api/v1/sites/{site}/points",
            lambda b: b["points"][0]["alert"] is not None and b["points"][0]["trend"] is not None,
        )
    point = body["points"][0]
    assert (point["name"], point["last"]["value"]) == ("东帮 GNSS-1", series[-1][1])
    trend, details = point["trend"], last["details"]
    assert trend["severity"] == last["severity"] == point["alert"]["severity"] == 3
    for k in ("rate_mm_d", "accel_mm_d2", "angle_deg"):
        assert trend[k] == pytest.approx(details[k], rel=1e-12), k
    assert trend["forecast_failure_ms"] == details["forecast_failure_ms"] is not None
    assert trend["forecast"] == local(details["forecast_failure_ms"])


async def test_sites_monthly_days_and_alert_sources(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    enterprise = unique("ENT-MD")
    site = threshold_site(stack, "MD", points=2, enterprise=enterprise, rule={"rule": "threshold", "above": [50, 80]})
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.telemetry([{"point": "P0", "ts": t, "value": 60.0}, {"point": "P1", "ts": t, "value": 90.0}])])
    gw.close()
    alerts = {m["source"]["code"]: m for m in listener.wait(lambda m: len(m) >= 2)}
    listener.close()
    with stack.http() as c:
        url = f"/api/v1/alerts/{alerts['P0']['id']}"
        poll(c, "/api/v1/alerts?site=" + site, lambda b: b["total"] == 2)
        for step, note in (("acknowledge", ""), ("handle", "复位"), ("close", "")):
            assert c.post(f"{url}/{step}", json={"by": "值班", "note": note}).status_code == 200
        # P1's alert past its due time: the same-day clock marks it overdue within a second
        await pg.execute("UPDATE alerts SET due_at = now() - interval '1 s' WHERE id = $1", alerts["P1"]["id"])
        poll(c, f"/api/v1/alerts/{alerts['P1']['id']}", lambda b: b["overdue"])

        listed = {s["code"]: s for s in c.get("/api/v1/sites").json()["sites"]}
        assert listed[site] == {
            "code": site,
            "name": f"site {site}",
            "enterprise": enterprise,
            "enterprise_name": f"{enterprise} 有限公司",
            "kind": "tank_farm",
            "timezone": "Asia/Shanghai",
            "state": "operating",
            "shift_capacity": 50,
            "open": {"1": 0, "2": 0, "3": 1, "4": 0},
            "overdue": 1,
        }
        assert list(listed) == sorted(listed)

        today = dt.datetime.now(SHANGHAI).date()
        report = c.get("/api/v1/reports/monthly", params={"site": site}).json()
        days = report["days"]
        assert (
            days[0]["date"] == today.replace(day=1).isoformat()
            and len(days) == ((today.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)).day
        )
        by_date = {d["date"]: d for d in days}
        assert by_date.pop(today.isoformat()) == {
            "date": today.isoformat(),
            "raised": {"1": 0, "2": 1, "3": 1, "4": 0},
            "closed_on_time": 1,
            "closed_late": 0,
            "overdue": 1,
        }
        quiet = {"raised": {"1": 0, "2": 0, "3": 0, "4": 0}, "closed_on_time": 0, "closed_late": 0, "overdue": 0}
        assert all({k: v for k, v in d.items() if k != "date"} == quiet for d in by_date.values())
        assert report["sites"][0]["alerts_raised"] == 2  # the figures beside the days are unchanged
    other = unique("ENT-MD-OTHER")
    assert stack.load_catalog(site_catalog(unique("MDO"), enterprise=other)).status_code == 200
    with stack.http(stack.token_for("enterprise", "--enterprise", other)) as c:
        days = c.get("/api/v1/reports/monthly").json()["days"]
        assert all(sum(d["raised"].values()) == 0 for d in days)


def test_an_alert_on_a_zone_names_the_people_in_it(stack: StackHandle) -> None:
    site = mine(stack)
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = now_ms()
    gw.flush([gw.positions([{"tag": f"T-{i:02d}", "ts": t + i, "kind": "locate", "zone": "Z-CAP"} for i in range(4)])])
    gw.close()
    alarm = listener.wait(lambda m: any(x["severity"] == 4 for x in m))[-1]
    listener.close()
    with stack.http() as c:
        body = poll(c, f"/api/v1/alerts/{alarm['id']}", lambda _: True)  # stored behind the publish
    source = body["source_info"]
    assert (source["type"], source["code"], source["limit"], source["headcount"], source["state"]) == (
        "zone",
        "Z-CAP",
        3,
        4,
        "alarm",
    )
    assert [(o["tag"], o["person"]) for o in source["occupants"]] == [(f"T-{i:02d}", f"工人{i}") for i in range(4)]
    assert body["source"] == {"type": "zone", "code": "Z-CAP"} and body["history"]  # the rest is unchanged


def test_me_and_scoping_of_every_board_endpoint(stack: StackHandle) -> None:
    ours_ent, theirs_ent = unique("ENT-BO"), unique("ENT-BT")
    ours, theirs = mine(stack, ours_ent), mine(stack, theirs_ent)
    token = stack.token_for("enterprise", "--enterprise", ours_ent, "--name", "调度台")
    with stack.http(token) as c:
        assert c.get("/api/v1/me").json() == {
            "name": "调度台",
            "role": "enterprise",
            "enterprise": ours_ent,
            "sites": None,
        }
        assert [s["code"] for s in c.get("/api/v1/sites").json()["sites"]] == [ours]
        for path in ("zones", "zones/Z-HIGH", "points"):
            assert c.get(f"/api/v1/sites/{ours}/{path}").status_code == 200, path
            assert c.get(f"/api/v1/sites/{theirs}/{path}").status_code == 404, path
            assert c.get(f"/api/v1/sites/NO-SUCH-SITE/{path}").status_code == 404, path
    operator = stack.token_for("operator", "--sites", f"{theirs},{ours}")
    with stack.http(operator) as c:
        assert c.get("/api/v1/me").json() == {
            "name": "",
            "role": "operator",
            "enterprise": None,
            "sites": sorted([ours, theirs]),
        }
        assert sorted(s["code"] for s in c.get("/api/v1/sites").json()["sites"]) == sorted([ours, theirs])
    with stack.http() as c:
        me = c.get("/api/v1/me").json()
        assert (me["role"], me["sites"]) == ("admin", None)
        assert {ours, theirs} <= {s["code"] for s in c.get("/api/v1/sites").json()["sites"]}
    assert httpx.get(f"{stack.api}/api/v1/me").status_code == 401
