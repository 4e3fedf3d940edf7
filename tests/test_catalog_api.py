"""PUT /api/v1/catalog and `sitewatch catalog load`: validation, idempotence, broker credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.conftest import StackHandle, site_catalog, unique


async def test_load_is_idempotent_and_applies_default_rules(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    site = unique("C")
    doc = site_catalog(site, points=0)
    doc["points"] = [
        {"code": "GT-101", "site": site, "kind": "gas_lel", "unit": "%LEL", "period_s": 5},
        {
            "code": "DP-1",
            "site": site,
            "kind": "dust_dp",
            "unit": "Pa",
            "period_s": 10,
            "rules": [{"rule": "threshold", "above": [1500, 1800], "below": [300], "for_s": 30}],
        },
    ]
    first = stack.load_catalog(doc)
    assert first.status_code == 200, first.text
    assert first.json()["changed"] and first.json()["created"]["points"] == 2
    again = stack.load_catalog(doc)
    assert again.status_code == 200 and again.json()["changed"] is False
    rows = {
        r["code"]: r
        for r in await pg.fetch(
            "SELECT p.code, p.rules, p.rules_set FROM points p JOIN sites s ON s.id = p.site_id WHERE s.code = $1", site
        )
    }
    gas = json.loads(rows["GT-101"]["rules"])
    threshold = next(r for r in gas if r["rule"] == "threshold")
    assert threshold["above"] == [25, 50] and threshold["latch"] is True and not rows["GT-101"]["rules_set"]
    dp = json.loads(rows["DP-1"]["rules"])
    assert [r["rule"] for r in dp] == ["threshold"] and dp[0]["for_s"] == 30 and rows["DP-1"]["rules_set"]


async def test_invalid_document_lists_every_problem_and_changes_nothing(
    stack: StackHandle, pg: asyncpg.Connection[Any]
) -> None:
    site = unique("C")
    doc = site_catalog(site)
    doc["sites"][0]["kind"] = "volcano"
    doc["zones"][0]["site"] = "NO-SUCH-SITE"
    doc["points"][1]["kind"] = "teapot"
    doc["points"][2]["rules"] = [{"rule": "threshold", "above": [50, 25]}]
    doc["gateways"][0]["code"] = "bad code!"
    r = stack.load_catalog(doc)
    assert r.status_code == 422
    problems = r.json()["detail"]["problems"]
    paths = " ".join(p["path"] for p in problems)
    for where in ("sites[0].kind", "zones[0]", "points[1].kind", "points[2].rules[0]", "gateways[0].code"):
        assert where in paths, (where, problems)
    assert await pg.fetchval("SELECT count(*) FROM sites WHERE code = $1", site) == 0
    assert await pg.fetchval("SELECT count(*) FROM enterprises WHERE code = 'ENT-T' AND name = 'x'") == 0


def test_yaml_and_cli_load(stack: StackHandle, tmp_path: Path) -> None:
    site = unique("Y")
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(site_catalog(site), allow_unicode=True))
    out = stack.cli("catalog", "load", str(path))
    assert json.loads(out.stdout)["created"]["sites"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [ {code: 'x'")
    failed = stack.cli("catalog", "load", str(bad), check=False)
    assert failed.returncode == 1 and "not loaded" in failed.stderr
    with stack.http() as c:
        r = c.put(
            "/api/v1/catalog", content=yaml.safe_dump(site_catalog(site)), headers={"Content-Type": "application/yaml"}
        )
        assert r.status_code == 200 and r.json()["changed"] is False


def test_new_gateway_can_connect_without_broker_restart(stack: StackHandle) -> None:
    broker_pid = stack.cli_json("stack", "status", "--json")["components"]["mosquitto"]["pid"]
    site = unique("G")
    doc = site_catalog(site, password="first-password")
    doc["gateways"].append({"code": f"{site}-GW", "site": site, "password": "unique-gw-password"})
    assert stack.load_catalog(doc).status_code == 200
    stack.gateway(site, "GW-1", "first-password").close()
    # a gateway code unique across sites also logs in bare; GW-1 exists at every test site, so it does not
    stack.gateway(site, f"{site}-GW", "unique-gw-password", username=f"{site}-GW").close()
    with pytest.raises(ConnectionRefusedError):
        stack.gateway(site, "GW-1", "first-password", username="GW-1")
    assert stack.load_catalog(site_catalog(site, password="second-password")).status_code == 200
    with pytest.raises(ConnectionRefusedError):
        stack.gateway(site, "GW-1", "first-password")
    stack.gateway(site, "GW-1", "second-password").close()
    assert stack.cli_json("stack", "status", "--json")["components"]["mosquitto"]["pid"] == broker_pid


def test_catalog_needs_admin(stack: StackHandle) -> None:
    site = unique("A")
    assert stack.load_catalog(site_catalog(site)).status_code == 200
    operator = stack.token_for("operator")
    assert stack.load_catalog(site_catalog(site), token=operator).status_code == 403
    with stack.http("sw_not-a-token") as c:
        assert c.put("/api/v1/catalog", json={}).status_code == 401
