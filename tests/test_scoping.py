"""Role scoping on every endpoint: no token is refused everywhere, and an enterprise token neither
sees nor acts on another enterprise's sites, alerts, readings, reports or hazards."""

from __future__ import annotations

import re

import httpx

from tests.conftest import StackHandle, site_catalog, unique
from tests.test_alert_lifecycle import raise_alert


def test_every_api_route_needs_a_token(stack: StackHandle) -> None:
    spec = httpx.get(f"{stack.api}/openapi.json").json()
    routes = [(method, path) for path, ops in spec["paths"].items() if path.startswith("/api/v1") for method in ops]
    assert len(routes) >= 17
    for method, path in routes:
        url = stack.api + re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        r = httpx.request(method.upper(), url, json={}, timeout=10)
        assert r.status_code == 401, (method, path, r.status_code)


def test_an_enterprise_token_reaches_nothing_of_another_enterprise(stack: StackHandle) -> None:
    theirs, alert, listener = raise_alert(stack, enterprise=unique("ENT-SC-THEIRS"))
    listener.close()
    ours = unique("ENT-SC-OURS")
    assert stack.load_catalog(site_catalog(unique("SC"), enterprise=ours)).status_code == 200
    token = stack.token_for("enterprise", "--enterprise", ours)
    with stack.http() as admin:
        hazard = admin.post("/api/v1/hazards", json={"by": "a", "title": "t", "alert_id": alert["id"]}).json()
    with stack.http(token) as c:
        aid = alert["id"]
        for path in (f"/api/v1/alerts/{aid}", f"/api/v1/points/P0/readings?site={theirs}"):
            assert c.get(path).status_code == 404, path
        for action in ("acknowledge", "handle", "close", "shelve", "unshelve"):
            assert c.post(f"/api/v1/alerts/{aid}/{action}", json={"by": "x", "note": "y"}).status_code == 404
        assert c.post(f"/api/v1/hazards/{hazard['id']}/rectify", json={"by": "x", "note": "y"}).status_code == 404
        assert c.post("/api/v1/hazards", json={"by": "x", "title": "t", "site": theirs}).status_code == 404
        assert c.post("/api/v1/hazards", json={"by": "x", "title": "t", "alert_id": aid}).status_code == 404
        empty = {
            f"/api/v1/alerts?site={theirs}": "alerts",
            f"/api/v1/dead-letters?site={theirs}": "dead_letters",
            f"/api/v1/reports/daily?site={theirs}": "sites",
            f"/api/v1/reports/monthly?site={theirs}": "sites",
            f"/api/v1/reports/alarm-load?site={theirs}": "sites",
            f"/api/v1/hazards?site={theirs}": "hazards",
        }
        for path, key in empty.items():
            assert c.get(path).json()[key] == [], path
        assert all(d["enterprise"] != theirs for d in c.get("/api/v1/webhooks/deliveries").json()["deliveries"])
        assert c.put("/api/v1/catalog", json=site_catalog(theirs)).status_code == 403
