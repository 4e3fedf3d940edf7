"""The hazard ledger and the regulators' monthly dispatch table, through the API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

from tests.conftest import StackHandle, site_catalog, unique
from tests.test_alert_lifecycle import raise_alert


def test_hazards_from_an_alert_and_an_inspection_fill_the_monthly_table(stack: StackHandle) -> None:
    enterprise = unique("ENT-HZ")
    site, alert, listener = raise_alert(stack, enterprise=enterprise)
    listener.close()
    with stack.http() as c:
        made = c.post("/api/v1/hazards", json={"by": "监测系统", "title": "储罐液位超限", "alert_id": alert["id"]})
        assert made.status_code == 201, made.text
        from_alert = made.json()
        assert from_alert["site"] == site and from_alert["source"] == "self_check" and not from_alert["rectified"]
        assert c.post("/api/v1/hazards", json={"by": "x", "title": "again", "alert_id": alert["id"]}).status_code == 409
        found = c.post(
            "/api/v1/hazards",
            json={"by": "应急局检查组", "title": "安全阀未校验", "site": site, "source": "inspection"},
        ).json()
        assert c.post(f"/api/v1/hazards/{found['id']}/rectify", json={"by": "a", "note": ""}).status_code == 422
        fixed = c.post(f"/api/v1/hazards/{found['id']}/rectify", json={"by": "设备科", "note": "已送检并更换"})
        assert fixed.status_code == 200 and fixed.json()["rectified"]
        assert c.post(f"/api/v1/hazards/{found['id']}/rectify", json={"by": "a", "note": "b"}).status_code == 409
        url = f"/api/v1/alerts/{alert['id']}"
        assert c.post(f"{url}/handle", json={"by": "a", "note": "降液位"}).status_code == 200
        assert c.post(f"{url}/close", json={"by": "a", "note": "联锁已恢复，液位正常"}).status_code == 200
        ledger = c.get("/api/v1/hazards", params={"site": site}).json()["hazards"]
        assert [(h["source"], h["rectified"]) for h in ledger] == [("self_check", True), ("inspection", True)]
        assert ledger[0]["rectification_note"] == "联锁已恢复，液位正常"
        month = dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
        table = c.get("/api/v1/reports/monthly", params={"month": month, "site": site}).json()
        row = table["sites"][0]
        assert (
            row["self_check_found"],
            row["self_check_rectified"],
            row["inspection_found"],
            row["inspection_rectified"],
            row["supervision_found"],
            row["alerts_raised"],
        ) == (1, 1, 1, 1, 0, 1)
        assert table["enterprises"][0]["enterprise"] == enterprise
        rows = list(
            csv.DictReader(
                io.StringIO(
                    c.get("/api/v1/reports/monthly", params={"month": month, "site": site, "format": "csv"}).text
                )
            )
        )
        assert rows[0]["inspection_rectified"] == "1"
        assert c.get("/api/v1/reports/monthly", params={"month": "2026-13"}).status_code == 422
    assert stack.load_catalog(site_catalog(unique("HZ-OTHER"), enterprise="ENT-HZ-OTHER")).status_code == 200
    other = stack.token_for("enterprise", "--enterprise", "ENT-HZ-OTHER")
    with stack.http(other) as c:
        assert c.post("/api/v1/hazards", json={"by": "x", "title": "t", "site": site}).status_code == 404
        assert c.post(f"/api/v1/hazards/{found['id']}/rectify", json={"by": "x", "note": "y"}).status_code == 404
        assert c.get("/api/v1/hazards", params={"site": site}).json()["hazards"] == []
