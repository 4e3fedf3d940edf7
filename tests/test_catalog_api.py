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


# --- every kind of mistake (issue 8): 422 listing each problem with its path, nothing changed ----------

CATALOG_TABLES = ("enterprises", "sites", "gateways", "zones", "points", "tags")
Doc = dict[str, Any]


async def catalog_snapshot(pg: asyncpg.Connection[Any]) -> dict[str, list[str]]:
    """Every row of every catalog table, as text: what a refused document must leave alone."""
    return {t: sorted(r[0] for r in await pg.fetch(f"SELECT to_jsonb(x)::text FROM {t} x")) for t in CATALOG_TABLES}


def _set(section: str, index: int, **fields: Any) -> Any:
    return lambda doc: doc[section][index].update(fields)


def _drop(section: str, index: int, field: str) -> Any:
    return lambda doc: doc[section][index].pop(field)


def _append(section: str, item: Any) -> Any:
    return lambda doc: doc[section].append(item(doc) if callable(item) else item)


MISTAKES: list[tuple[str, Any, list[tuple[str, str]]]] = [
    ("unknown enterprise", _set("sites", 0, enterprise="NO-ENT"), [("sites[0].enterprise", "unknown enterprise")]),
    ("unknown site", _set("gateways", 0, site="NO-SITE"), [("gateways[0].site", "unknown site")]),
    ("tag on unknown site", _set("tags", 0, site="NO-SITE"), [("tags[0].site", "unknown site")]),
    ("unknown pair", _set("points", 0, pair="NOPE"), [("points[0].pair", "no point 'NOPE'")]),
    (
        "duplicate point",
        _append("points", lambda d: dict(d["points"][0])),
        [("points[5].code", "duplicate of points[0]")],
    ),
    (
        "duplicate enterprise",
        _append("enterprises", lambda d: dict(d["enterprises"][0])),
        [("enterprises[1].code", "duplicate")],
    ),
    ("identifier with a space", _set("zones", 0, code="Z 1"), [("zones[0].code", "pattern")]),
    ("identifier of 65 characters", _set("points", 0, code="P" * 65), [("points[0].code", "pattern")]),
    ("identifier not ASCII", _set("tags", 0, code="标签"), [("tags[0].code", "pattern")]),
    ("unknown point kind", _set("points", 0, kind="teapot"), [("points[0].kind", "gas_lel")]),
    (
        "levels out of order",
        _set("points", 0, rules=[{"rule": "threshold", "above": [50, 25]}]),
        [("points[0].rules[0].above", "increasing")],
    ),
    (
        "low levels out of order",
        _set("points", 1, rules=[{"rule": "threshold", "below": [10, 20]}]),
        [("points[1].rules[0].below", "decreasing")],
    ),
    (
        "unknown rule",
        _set("points", 0, rules=[{"rule": "magic"}]),
        [("points[0].rules[0].rule", "'magic' is not one of")],
    ),
    (
        "rule field of the wrong type",
        _set("points", 0, rules=[{"rule": "threshold", "above": [50], "for_s": "x"}]),
        [("points[0].rules[0].for_s", "number")],
    ),
    ("number as text", _set("sites", 0, shift_capacity="many"), [("sites[0].shift_capacity", "integer")]),
    ("negative limit", _set("zones", 0, max_people=-1), [("zones[0].max_people", "greater than")]),
    ("period as text", _set("points", 0, period_s="fast"), [("points[0].period_s", "number")]),
    ("unknown site state", _set("sites", 0, state="closed"), [("sites[0].state", "operating")]),
    ("unknown zone risk", _set("zones", 0, risk="lethal"), [("zones[0].risk", "restricted")]),
    ("bad time zone", _set("sites", 0, timezone="Mars/Olympus"), [("sites[0].timezone", "unknown time zone")]),
    ("missing password", _drop("gateways", 0, "password"), [("gateways[0].password", "required")]),
    ("missing kind", _drop("points", 0, "kind"), [("points[0].kind", "required")]),
    ("missing enterprise", _drop("sites", 0, "enterprise"), [("sites[0].enterprise", "required")]),
    ("short password", _set("gateways", 0, password="short"), [("gateways[0].password", "at least 8")]),
    ("unknown field", _set("points", 0, colour="red"), [("points[0].colour", "unknown field")]),
    ("NUL in a name", _set("sites", 0, name="3号\x00矿"), [("sites[0].name", "U+0000")]),
    ("unknown section", lambda doc: doc.update(sensors=[]), [("sensors", "unknown section")]),
    ("section not a list", lambda doc: doc.update(tags={"code": "T-1"}), [("tags", "must be a list")]),
    ("entry not an object", _append("tags", None), [("tags[1]", "dictionary")]),
    ("allow-list on an open zone", _set("zones", 0, allow=["T-1"]), [("zones[0].allow", "restricted")]),
    (
        "bad webhook",
        _set("enterprises", 0, webhooks=[{"url": "ftp://x", "secret": "short"}]),
        [("enterprises[0].webhooks[0].url", "pattern"), ("enterprises[0].webhooks[0].secret", "16")],
    ),
    (
        "site moving to another enterprise",
        _append("sites", lambda d: {**d["sites"][0], "code": d["existing"], "enterprise": "ENT-T2"}),
        [("sites[1].enterprise", "cannot move")],
    ),
]


SEVERAL = [m for m in MISTAKES if m[0] in {"unknown enterprise", "duplicate point", "unknown point kind",
                                            "levels out of order", "bad time zone", "unknown field"}]  # fmt: skip


def _several(doc: Doc) -> None:
    for _, mutate, _ in SEVERAL:
        mutate(doc)


MISTAKES.append(("several at once", _several, [problem for m in SEVERAL for problem in m[2]]))


@pytest.fixture(scope="module")
def existing_site(stack: StackHandle) -> str:
    """A site already in the catalog, of enterprise ENT-T, beside enterprise ENT-T2."""
    site = unique("OLD")
    doc = site_catalog(site)
    doc["enterprises"].append({"code": "ENT-T2", "name": "another"})
    assert stack.load_catalog(doc).status_code == 200
    return site


@pytest.mark.parametrize(("mutate", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
async def test_every_mistake_is_listed_and_nothing_changes(
    stack: StackHandle, pg: asyncpg.Connection[Any], existing_site: str, mutate: Any, expected: list[tuple[str, str]]
) -> None:
    doc = site_catalog(unique("M"))
    doc["existing"] = existing_site
    mutate(doc)
    doc.pop("existing")
    before = await catalog_snapshot(pg)
    r = stack.load_catalog(doc)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    problems = {p["path"]: p["message"] for p in detail["problems"]}
    assert detail["message"] == f"{len(expected)} problem(s); nothing was changed"
    assert sorted(problems) == sorted(path for path, _ in expected), problems
    for path, fragment in expected:
        assert fragment in problems[path], (path, problems[path], fragment)
    assert await catalog_snapshot(pg) == before


async def test_unreadable_documents_are_refused_through_the_api(
    stack: StackHandle, pg: asyncpg.Connection[Any]
) -> None:
    """The parser's messages are tested in test_catalog.py; here: 422 with one problem at "", nothing changed."""
    before = await catalog_snapshot(pg)
    with stack.http() as c:
        for body, content_type in [
            (b"[]", "application/json"),
            (b'{"sites": [], "sites": []}', "application/json"),
            (b"\xff\xfe{}", "application/json"),
            (b"sites: [ {code: 'x'", "application/yaml"),
        ]:
            r = c.put("/api/v1/catalog", content=body, headers={"Content-Type": content_type})
            assert r.status_code == 422, r.text
            [problem] = r.json()["detail"]["problems"]
            assert problem["path"] == "" and problem["message"], problem
    assert await catalog_snapshot(pg) == before
