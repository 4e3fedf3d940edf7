"""GET /api/v1/reports/daily and `sitewatch report daily`: the same-day figures per site and enterprise."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from zoneinfo import ZoneInfo

import pandas as pd

from tests.conftest import AlertListener, StackHandle, site_catalog, threshold_site, unique


def test_daily_report_counts_and_times_per_site_and_enterprise(stack: StackHandle) -> None:
    enterprise = unique("ENT-REP")
    site = threshold_site(stack, "REP", enterprise=enterprise, points=2)
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = int(time.time() * 1000)
    gw.flush([gw.telemetry([{"point": "P0", "ts": t, "value": 60.0}, {"point": "P1", "ts": t, "value": 70.0}])])
    gw.close()
    alerts = listener.wait(lambda m: len(m) >= 2)
    listener.close()
    first = next(a for a in alerts if a["source"]["code"] == "P0")
    with stack.http() as c:
        for _ in range(50):
            if c.get(f"/api/v1/alerts/{first['id']}").status_code == 200:
                break
            time.sleep(0.1)
        url = f"/api/v1/alerts/{first['id']}"
        assert c.post(f"{url}/acknowledge", json={"by": "a"}).status_code == 200
        assert c.post(f"{url}/handle", json={"by": "a", "note": "fixed"}).status_code == 200
        assert c.post(f"{url}/close", json={"by": "a"}).status_code == 200
        today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        report = c.get("/api/v1/reports/daily", params={"date": today, "site": site}).json()
        assert report["date"] == today
        row = report["sites"][0]
        assert (row["site"], row["raised"], row["closed_on_time"], row["closed_late"], row["open"], row["overdue"]) == (
            site,
            2,
            1,
            0,
            1,
            0,
        )
        assert row["ack_mean_s"] is not None and row["close_p90_s"] is not None
        assert report["enterprises"][0]["enterprise"] == enterprise and report["total"]["raised"] == 2
        csv_rows = list(
            csv.DictReader(
                io.StringIO(c.get("/api/v1/reports/daily", params={"date": today, "site": site, "format": "csv"}).text)
            )
        )
        assert csv_rows[0]["site"] == site and csv_rows[0]["raised"] == "2"
        xlsx = c.get("/api/v1/reports/daily", params={"date": today, "site": site, "format": "xlsx"})
        assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = pd.read_excel(io.BytesIO(xlsx.content))
        assert sheet.loc[0, "site"] == site and sheet.loc[0, "closed_on_time"] == 1
        assert c.get("/api/v1/reports/daily", params={"date": "yesterday"}).status_code == 422
    assert stack.load_catalog(site_catalog(unique("OTHER"), enterprise="ENT-REP-OTHER")).status_code == 200
    other = stack.token_for("enterprise", "--enterprise", "ENT-REP-OTHER")
    with stack.http(other) as c:
        assert all(r["site"] != site for r in c.get("/api/v1/reports/daily").json()["sites"])
    out = stack.cli("report", "daily", "--date", today, "--site", site).stdout
    assert site in out and "TOTAL" in out


def test_alarm_load_finds_floods_and_chattering_sources(stack: StackHandle) -> None:
    site = threshold_site(stack, "LOAD", points=12)
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = int(time.time() * 1000)
    flood = [{"point": f"P{i}", "ts": t, "value": 60.0} for i in range(12)]  # 12 alarms at once
    chatter = [{"point": "P0", "ts": t + 1000 * i, "value": 10.0 if i % 2 else 60.0} for i in range(1, 6)]
    gw.flush([gw.telemetry(flood), gw.telemetry(chatter)])
    gw.close()
    listener.wait(lambda m: sum(1 for x in m if x["change"] == "retrigger") >= 2)
    listener.close()
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    with stack.http() as c:
        for _ in range(50):
            load = c.get("/api/v1/reports/alarm-load", params={"date": today, "site": site}).json()
            if load["sites"] and load["sites"][0]["activations"] >= 14:
                break
            time.sleep(0.1)
    row = load["sites"][0]
    assert row["activations"] == 14 and row["floods"] >= 1 and row["per_10min_max"] >= 12
    assert [(c["source"]["code"], c["activations"]) for c in row["chattering"]] == [("P0", 3)]
    with stack.http() as c:
        text = c.get("/api/v1/reports/alarm-load", params={"date": today, "site": site, "format": "csv"}).text
    assert "P0 threshold ×3" in text
