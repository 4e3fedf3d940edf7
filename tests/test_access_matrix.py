"""Access control over every way in (issue 8, part 3): every HTTP endpoint of the app's own route
table × every kind of caller, every MQTT topic pattern × gateways, and secrets kept only as salted
hashes. A denied write leaves no trace but its audit entry.

A new endpoint without an expectation in `EXPECT` fails `test_every_route_has_an_expectation`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import pytest

from services.api.app import create_app
from sitewatch import auth
from sitewatch.catalog.broker import verify_password
from sitewatch.settings import Settings
from sitewatch.stack import Stack
from tests.conftest import StackHandle, site_catalog, unique
from tests.test_broker_credentials import HASH, Broker, Client, connected

Policy = Literal["public", "read", "scoped", "admin"]

# Every route of the app, in the order the matrix runs them (the alert steps and each create
# before what needs it): public (no token needed), read (any valid token; data filtered to what it
# sees), scoped (names a site, alert or hazard: 404 when the token may not see it), admin.
EXPECT: dict[tuple[str, str], Policy] = {
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/status"): "public",
    ("GET", "/"): "public",
    ("GET", "/ui"): "public",
    ("GET", "/ui/vendor/echarts.min.js"): "public",
    ("GET", "/api/v1/me"): "read",
    ("GET", "/api/v1/sites"): "read",
    ("GET", "/api/v1/sites/{site}/zones"): "scoped",
    ("GET", "/api/v1/sites/{site}/zones/{zone}"): "scoped",
    ("GET", "/api/v1/sites/{site}/points"): "scoped",
    ("GET", "/api/v1/points/{point}/readings"): "scoped",
    ("GET", "/api/v1/dead-letters"): "read",
    ("GET", "/api/v1/alerts"): "read",
    ("GET", "/api/v1/alerts/stream"): "read",
    ("GET", "/api/v1/alerts/{alert_id}"): "scoped",
    ("POST", "/api/v1/alerts/{alert_id}/shelve"): "scoped",
    ("POST", "/api/v1/alerts/{alert_id}/unshelve"): "scoped",
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): "scoped",
    ("POST", "/api/v1/alerts/{alert_id}/handle"): "scoped",
    ("POST", "/api/v1/alerts/{alert_id}/close"): "scoped",
    ("POST", "/api/v1/hazards"): "scoped",
    ("POST", "/api/v1/hazards/{hazard_id}/rectify"): "scoped",
    ("GET", "/api/v1/hazards"): "read",
    ("GET", "/api/v1/reports/daily"): "read",
    ("GET", "/api/v1/reports/monthly"): "read",
    ("GET", "/api/v1/reports/alarm-load"): "read",
    ("GET", "/api/v1/webhooks/deliveries"): "read",
    ("PUT", "/api/v1/catalog"): "admin",
    ("GET", "/api/v1/tokens"): "admin",
    ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin",
    ("GET", "/api/v1/audit"): "admin",
}

VALID = ("admin", "operator_sites", "operator_global", "enterprise")
INVALID = ("no_token", "expired", "revoked", "gateway_password")
GLOBAL = ("admin", "operator_global")  # see every site
Target = Literal["ours", "theirs"] | None
CREATED = {("POST", "/api/v1/hazards"): 201, ("POST", "/api/v1/tokens"): 201, ("GET", "/"): 307}


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the API serves, from its own route table."""
    app = create_app(Settings.from_env())
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI ≥ 0.120 keeps included routers nested

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    found = set()
    for route in routes:
        for method in route.methods or {"GET"}:  # a mount serves GET
            if method != "HEAD":
                found.add((method, route.path))
    return found


def expected(policy: Policy, role: str, target: Target) -> int | None:
    """The status a caller gets, or None for "allowed"."""
    if policy == "public":
        return None
    if role in INVALID:
        return 401
    if policy == "admin":
        return None if role == "admin" else 403
    if policy == "scoped" and target == "theirs" and role not in GLOBAL:
        return 404
    return None


def test_every_route_has_an_expectation() -> None:
    routes = app_routes()
    assert routes - EXPECT.keys() == set(), "routes without an access expectation: add them to EXPECT"
    assert EXPECT.keys() - routes == set(), "expectations for routes that no longer exist"


@dataclasses.dataclass
class World:
    """Two enterprises' sites, alerts raised on them through MQTT, hazards and tokens of every kind."""

    stack: StackHandle
    ours: str
    theirs: str
    ours_enterprise: str
    theirs_enterprise: str
    tokens: dict[str, str | None]
    alerts: dict[tuple[str, str], str]  # (role or "untouched", target) → alert id
    hazards: dict[tuple[str, str], str]  # ("untouched", target) and what each role creates
    victim: str  # a token each non-admin tries to revoke
    spare: str  # the token the admin revokes

    def site(self, target: Target) -> str:
        return self.theirs if target == "theirs" else self.ours


def raise_alerts(stack: StackHandle, enterprise: str, prefix: str, n: int) -> tuple[str, list[str]]:
    """A site whose points P0..P{n-1} each raise a shelvable alert from one published batch."""
    site = unique(prefix)
    doc = site_catalog(site, enterprise=enterprise, points=n)
    for point in doc["points"]:
        point.update(period_s=3600, rules=[{"rule": "threshold", "above": [50], "severities": [2]}])
    assert stack.load_catalog(doc).status_code == 200
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    now = int(time.time() * 1000)
    gw.flush([gw.telemetry([{"point": f"P{i}", "ts": now, "value": 60.0} for i in range(n)])])
    gw.close()
    with stack.http() as c:
        deadline = time.monotonic() + 20
        while (found := c.get("/api/v1/alerts", params={"site": site}).json())["total"] < n:
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
    return site, sorted(a["id"] for a in found["alerts"])


@pytest.fixture(scope="module")
def world(stack: StackHandle) -> World:
    ours_ent, theirs_ent = unique("ENT-AM-OURS"), unique("ENT-AM-THEIRS")
    ours, ours_alerts = raise_alerts(stack, ours_ent, "AMO", 5)
    theirs, theirs_alerts = raise_alerts(stack, theirs_ent, "AMT", 3)
    alerts = {
        **{(role, "ours"): ours_alerts[i] for i, role in enumerate(VALID)},
        ("untouched", "ours"): ours_alerts[4],
        ("admin", "theirs"): theirs_alerts[0],
        ("operator_global", "theirs"): theirs_alerts[1],
        ("untouched", "theirs"): theirs_alerts[2],
    }
    hazards = {}
    with stack.http() as c:
        for target, site in (("ours", ours), ("theirs", theirs)):
            r = c.post("/api/v1/hazards", json={"by": "setup", "title": "untouched", "site": site})
            assert r.status_code == 201, r.text
            hazards[("untouched", target)] = r.json()["id"]
    expired = stack.token_for("admin", "--expires-in", "1s")
    revoked_name = unique("revoked")
    revoked = stack.token_for("admin", "--name", revoked_name)
    assert "revoked at" in stack.cli("token", "revoke", revoked_name).stdout
    tokens: dict[str, str | None] = {
        "admin": stack.token,
        "operator_sites": stack.token_for("operator", "--sites", ours),
        "operator_global": stack.token_for("operator"),
        "enterprise": stack.token_for("enterprise", "--enterprise", ours_ent),
        "no_token": None,
        "expired": expired,
        "revoked": revoked,
        "gateway_password": "gw-secret-1",
    }
    world = World(
        stack,
        ours,
        theirs,
        ours_ent,
        theirs_ent,
        tokens,
        alerts,
        hazards,
        victim=stack.token_for("operator", "--name", unique("victim")),
        spare=stack.token_for("operator", "--name", unique("spare")),
    )
    time.sleep(1.1)  # the 1-second token is expired now
    return world


def request_for(world: World, method: str, path: str, role: str, target: Target) -> tuple[str, dict[str, Any]]:
    """The concrete URL and httpx keyword arguments of one cell of the matrix."""
    site = world.site(target)
    allowed = expected(EXPECT[(method, path)], role, target) is None
    key = (role, target or "") if allowed else ("untouched", target or "")
    by = {"by": f"matrix {role}", "note": "matrix"}
    match path:
        case "/ui":
            return "/ui/", {}
        case "/api/v1/sites/{site}/zones" | "/api/v1/sites/{site}/points":
            return path.replace("{site}", site), {}
        case "/api/v1/sites/{site}/zones/{zone}":
            return f"/api/v1/sites/{site}/zones/Z-1", {}
        case "/api/v1/points/{point}/readings":
            return "/api/v1/points/P0/readings", {"params": {"site": site}}
        case "/api/v1/alerts/{alert_id}":
            return f"/api/v1/alerts/{world.alerts[('untouched', target or '')]}", {}
        case _ if path.startswith("/api/v1/alerts/{alert_id}/"):
            action = path.rsplit("/", 1)[1]
            return f"/api/v1/alerts/{world.alerts[key]}/{action}", {"json": by}
        case "/api/v1/hazards" if method == "POST":
            return path, {"json": {"by": f"matrix {role}", "title": "matrix", "site": site}}
        case "/api/v1/hazards/{hazard_id}/rectify":
            return f"/api/v1/hazards/{world.hazards[key]}/rectify", {"json": by}
        case "/api/v1/catalog":
            doc = site_catalog(world.theirs, enterprise=world.theirs_enterprise, points=3)
            if not allowed:  # what a forbidden write would change
                doc["sites"][0]["name"] = "taken over"
                doc["gateways"].append({"code": "GW-EVIL", "site": world.theirs, "password": "evil-password-1"})
            for point in doc["points"]:
                point.update(period_s=3600, rules=[{"rule": "threshold", "above": [50], "severities": [2]}])
            return path, {"json": doc}
        case "/api/v1/tokens" if method == "POST":
            return path, {"json": {"role": "admin", "name": unique("matrix")}}
        case "/api/v1/tokens/{token_id}":
            victim = world.spare if allowed else world.victim
            return f"/api/v1/tokens/{auth.token_id(victim)}", {}
    return path, {}


async def fingerprint(pg: asyncpg.Connection[Any], world: World) -> dict[str, list[str]]:
    """Everything a write could change for the matrix's sites and tokens, row by row."""
    sites = [r["id"] for r in await pg.fetch("SELECT id FROM sites WHERE code = ANY($1)", [world.ours, world.theirs])]
    ents = [world.ours_enterprise, world.theirs_enterprise]
    queries = {
        "alerts": "SELECT a::text FROM alerts a WHERE site_id = ANY($1)",
        "history": "SELECT h::text FROM alert_history h JOIN alerts a ON a.id = h.alert_id WHERE a.site_id = ANY($1)",
        "events": "SELECT e::text FROM alert_events e WHERE site_id = ANY($1)",
        "hazards": "SELECT z::text FROM hazards z WHERE site_id = ANY($1)",
        "sites": "SELECT s::text FROM sites s WHERE id = ANY($1)",
        "gateways": "SELECT g::text FROM gateways g WHERE site_id = ANY($1)",
        "points": "SELECT p::text FROM points p WHERE site_id = ANY($1)",
        "zones": "SELECT z::text FROM zones z WHERE site_id = ANY($1)",
        "tags": "SELECT t::text FROM tags t WHERE site_id = ANY($1)",
    }
    out = {name: sorted(r[0] for r in await pg.fetch(sql, sites)) for name, sql in queries.items()}
    out["enterprises"] = sorted(
        r[0] for r in await pg.fetch("SELECT e::text FROM enterprises e WHERE code = ANY($1)", ents)
    )
    out["tokens"] = sorted(r[0] for r in await pg.fetch("SELECT t::text FROM api_tokens t"))
    return out


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


async def call(
    client: httpx.AsyncClient, method: str, url: str, token: str | None, kw: dict[str, Any]
) -> httpx.Response:
    if url == "/api/v1/alerts/stream":  # an endless stream: its status is all we need
        async with client.stream(method, url, headers=headers(token), **kw) as r:
            return r
    return await client.request(method, url, headers=headers(token), **kw)


async def test_every_endpoint_for_every_caller(world: World, pg: asyncpg.Connection[Any]) -> None:
    stack = world.stack
    started = dt.datetime.now(dt.UTC)
    cells = []
    async with httpx.AsyncClient(base_url=stack.api, timeout=30) as client:
        for (method, path), policy in EXPECT.items():
            for role in (*VALID, *INVALID):
                for target in ("ours", "theirs") if policy == "scoped" else (None,):
                    url, kw = request_for(world, method, path, role, target)
                    token = world.tokens[role]
                    before = await fingerprint(pg, world) if method != "GET" else None
                    response = await call(client, method, url, token, kw)
                    status = response.status_code
                    want = expected(policy, role, target)
                    cells.append((method, path, role, target, status))
                    where = f"{method} {url} as {role} ({target})"
                    if want is not None:
                        assert status == want, where
                    elif policy == "public":
                        assert status < 500 and status not in (401, 403), where
                    else:
                        assert status == CREATED.get((method, path), 200), where
                    if method == "GET":
                        continue
                    if (method, path) == ("POST", "/api/v1/hazards") and want is None:
                        world.hazards[(role, target or "")] = response.json()["id"]
                    if want is not None:
                        assert await fingerprint(pg, world) == before, f"{where}: a denied write changed something"
                    entry = await pg.fetchrow(
                        "SELECT token_id, role, status, client FROM audit_log"
                        " WHERE method = $1 AND path = $2 AND at >= $3 ORDER BY id DESC LIMIT 1",
                        method,
                        url,
                        started,
                    )
                    assert entry is not None and entry["status"] == status, f"{where}: no audit entry"
                    named = auth.token_id(token) if token and role not in ("no_token", "gateway_password") else None
                    assert entry["token_id"] == named and entry["client"] == "127.0.0.1", where
    assert len(cells) > 4 * len(EXPECT)
    what_allowed_writes_did(world)


def what_allowed_writes_did(world: World) -> None:
    """Every role's own alert went through the whole loop; the untouched ones did not move."""
    with world.stack.http() as c:
        for key, alert_id in world.alerts.items():
            body = c.get(f"/api/v1/alerts/{alert_id}").json()
            actions = [h["action"] for h in body["history"]]
            if key[0] == "untouched":
                assert body["state"] == "open" and actions == ["raise"], key
            else:
                assert body["state"] == "closed", key
                assert actions == ["raise", "shelve", "unshelve", "acknowledge", "handle", "close"], key
                assert {h["by"] for h in body["history"][1:]} == {f"matrix {key[0]}"}, key
        ledger = {h["id"]: h for site in (world.ours, world.theirs) for h in hazards_of(c, site)}
        for key, hazard_id in world.hazards.items():
            assert ledger[hazard_id]["rectified"] is (key[0] != "untouched"), key
        assert len(world.hazards) == 2 + 6  # each role on what it sees, and the two untouched
        sites = {s["code"]: s for s in c.get("/api/v1/sites").json()["sites"]}
        assert sites[world.theirs]["name"] == f"site {world.theirs}"  # never "taken over"
        assert c.get("/api/v1/me", headers=headers(world.victim)).status_code == 200  # not revoked
        assert c.get("/api/v1/me", headers=headers(world.spare)).status_code == 401  # the admin revoked it


def hazards_of(client: httpx.Client, site: str) -> list[dict[str, Any]]:
    hazards: list[dict[str, Any]] = client.get("/api/v1/hazards", params={"site": site}).json()["hazards"]
    return hazards


async def test_scoped_tokens_read_nothing_of_the_other_enterprise(world: World) -> None:
    reads = [p for (m, p), policy in EXPECT.items() if m == "GET" and policy == "read" and "stream" not in p]
    async with httpx.AsyncClient(base_url=world.stack.api, timeout=30) as client:
        for role in ("operator_sites", "enterprise"):
            for path in reads:
                r = await client.get(path, headers=headers(world.tokens[role]))
                assert r.status_code == 200 and world.theirs not in r.text, (role, path)
                assert world.theirs_enterprise not in r.text, (role, path)


# --- MQTT ----------------------------------------------------------------------------------------


@pytest.fixture
def broker(stack: StackHandle, tmp_path: Path) -> Iterator[Broker]:
    """The stack's own broker, for MQTT 5 clients that report each PUBACK's reason."""
    handle = Broker(tmp_path, stack.mqtt_port)
    try:
        yield handle
    finally:
        handle.stop()


def telemetry(seq: int, value: float, point: str = "P0") -> bytes:
    return json.dumps(
        {"seq": seq, "readings": [{"point": point, "ts": int(time.time() * 1000), "value": value}]}
    ).encode()


async def test_mqtt_topics_for_gateways(stack: StackHandle, broker: Broker, pg: asyncpg.Connection[Any]) -> None:
    ours, theirs = unique("AMQ"), unique("AMQ")
    for site, ent in ((ours, unique("ENT-MQ")), (theirs, unique("ENT-MQ"))):
        doc = site_catalog(site, enterprise=ent, points=1, password=f"pw-{site}")
        doc["gateways"].append({"code": "GW-2", "site": site, "password": f"pw2-{site}"})
        doc["points"][0].update(period_s=3600, rules=[{"rule": "threshold", "above": [50], "severities": [2]}])
        assert stack.load_catalog(doc).status_code == 200
    admin = connected(broker, "sitewatch-admin", Stack(stack.data_dir).secrets["mqtt_admin"])
    admin.subscribe("sw/#")  # sees whatever the broker lets through
    own = f"{ours}/GW-1"
    subscribers = {}
    for pattern in (f"sw/v1/{ours}/alerts", f"sw/v1/{theirs}/alerts", "#", "sw/v1/+/alerts", f"sw/v1/{theirs}/#"):
        subscribers[pattern] = connected(broker, own, f"pw-{ours}")
        subscribers[pattern].subscribe(pattern)
    gw = connected(broker, own, f"pw-{ours}")
    other_site_gw = connected(broker, f"{theirs}/GW-1", f"pw-{theirs}")
    seq = int(time.time() * 1000)
    denied = [
        (gw, f"sw/v1/{theirs}/GW-1/telemetry", telemetry(seq + 1, 61.25)),  # another site's gateway
        (gw, f"sw/v1/{ours}/GW-2/telemetry", telemetry(seq + 2, 61.25)),  # another gateway of its site
        (gw, f"sw/v1/{theirs}/GW-1/positions", b'{"seq": 1, "events": []}'),
        (gw, f"sw/v1/{ours}/GW-2/status", b'{"state": "offline"}'),
        (gw, f"sw/v1/{ours}/alerts", b'{"forged": true}'),  # the platform's topic
        (gw, f"sw/v1/{theirs}/alerts", b'{"forged": true}'),
        (gw, "sw/v1", b"x"),
        (other_site_gw, f"sw/v1/{ours}/GW-1/telemetry", telemetry(seq + 3, 61.25)),  # a gateway of another site
    ]
    for client, topic, payload in denied:
        assert client.publish(topic, payload).getName() == "Not authorized", topic
    locate = {
        "seq": seq + 5,
        "events": [{"tag": "T-1", "ts": int(time.time() * 1000), "kind": "locate", "zone": "Z-1"}],
    }
    allowed = [
        (f"sw/v1/{ours}/GW-1/status", b'{"state": "online"}'),
        (f"sw/v1/{ours}/GW-1/positions", json.dumps(locate).encode()),
        (f"sw/v1/{ours}/GW-1/telemetry", telemetry(seq + 4, 70.0)),  # raises an alert on our site
    ]
    for topic, payload in allowed:
        assert not gw.publish(topic, payload).is_failure, topic
    assert not other_site_gw.publish(f"sw/v1/{theirs}/GW-1/telemetry", telemetry(seq + 6, 80.0)).is_failure
    alert_topics = {f"sw/v1/{ours}/alerts", f"sw/v1/{theirs}/alerts"}
    seen = drain(admin, until=lambda got: alert_topics <= {t for t, _ in got}, timeout=20)
    assert set(allowed) <= set(seen)  # through the broker
    assert not set(seen) & {(t, p) for _, t, p in denied}  # refused by it
    assert all("forged" not in json.loads(p) for t, p in seen if t in alert_topics)

    # stored: what the gateways may publish; nowhere: the rest
    site_ids = {
        r["code"]: r["id"] for r in await pg.fetch("SELECT code, id FROM sites WHERE code = ANY($1)", [ours, theirs])
    }
    want = {(site_ids[ours], "GW-1", seq + 4), (site_ids[ours], "GW-1", seq + 5), (site_ids[theirs], "GW-1", seq + 6)}
    for _ in range(200):
        if await messages_stored(pg, seq) == want:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything else published before these would be stored by now
    assert await messages_stored(pg, seq) == want
    assert not await pg.fetchval(
        "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id"
        " WHERE p.site_id = ANY($1) AND r.value = 61.25",
        list(site_ids.values()),
    )
    assert not await pg.fetchval("SELECT count(*) FROM dead_letters WHERE topic = ANY($1)", [t for _, t, _ in denied])
    assert await pg.fetchval("SELECT count(*) FROM positions WHERE site_id = $1 AND tag = 'T-1'", site_ids[ours]) == 1

    # subscriptions: its own site's alerts, through any pattern; never another site's, nor telemetry
    for pattern, client in subscribers.items():
        got = drain(client, until=lambda got: False, timeout=0.5 if pattern.startswith(f"sw/v1/{theirs}") else 2)
        topics = {t for t, _ in got}
        if pattern.startswith(f"sw/v1/{theirs}"):
            assert topics == set(), pattern
        else:
            assert topics == {f"sw/v1/{ours}/alerts"}, pattern
            assert all("forged" not in json.loads(p) for _, p in got), pattern


async def messages_stored(pg: asyncpg.Connection[Any], seq: int) -> set[tuple[int, str, int]]:
    rows = await pg.fetch("SELECT site_id, gateway, seq FROM ingest_messages WHERE seq BETWEEN $1 AND $1 + 9", seq)
    return {(r["site_id"], r["gateway"], r["seq"]) for r in rows}


def drain(client: Client, *, until: Any, timeout: float) -> list[tuple[str, bytes]]:
    """The messages `client` receives until `until(messages)` holds or `timeout` passes."""
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    while not until(got) and time.monotonic() < deadline:
        try:
            got.append(client.messages.get(timeout=max(0.01, deadline - time.monotonic())))
        except Exception:  # queue.Empty
            break
    return got


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("{site}/GW-1", "wrong-password"),
        ("{site}/GW-1", "pw2-{site}"),  # its neighbour's password
        ("{site}/GW-9", "pw-{site}"),  # no such gateway
        ("nobody", "whatever"),
        ("sitewatch-admin", "pw-{site}"),
        ("", ""),
    ],
)
def test_mqtt_connect_refused_with_wrong_credentials(
    stack: StackHandle, broker: Broker, username: str, password: str
) -> None:
    site = unique("AMC")
    doc = site_catalog(site, password=f"pw-{site}")
    doc["gateways"].append({"code": "GW-2", "site": site, "password": f"pw2-{site}"})
    assert stack.load_catalog(doc).status_code == 200
    assert not connected(broker, f"{site}/GW-1", f"pw-{site}").reason.is_failure
    assert broker.connect(username.format(site=site), password.format(site=site)).reason.is_failure


# --- secrets at rest -----------------------------------------------------------------------------


async def test_passwords_and_tokens_are_stored_only_as_salted_hashes(
    stack: StackHandle, pg: asyncpg.Connection[Any]
) -> None:
    password = f"shared-{unique('pw')}"  # the same on two sites: two different hashes
    sites = [unique("AMH"), unique("AMH")]
    for site in sites:
        assert stack.load_catalog(site_catalog(site, enterprise=unique("ENT-H"), password=password)).status_code == 200
    with stack.http() as c:
        made = c.post("/api/v1/tokens", json={"role": "operator", "name": unique("hashed")})
        assert made.status_code == 201
    token = made.json()["token"]
    secrets_ = [password, token, hashlib.sha256(token.encode()).hexdigest(), stack.token]

    hashes = [
        r["password_hash"]
        for r in await pg.fetch(
            "SELECT g.password_hash FROM gateways g JOIN sites s ON s.id = g.site_id WHERE s.code = ANY($1)", sites
        )
    ]
    assert len(hashes) == 2 and hashes[0] != hashes[1]
    for hashed in hashes:
        match = HASH.fullmatch(hashed)
        assert match is not None and verify_password(password, hashed)
    assert hashes[0].split("$")[3] != hashes[1].split("$")[3]  # salts

    # nowhere in the database in plaintext: every table but the readings themselves
    tables = [
        r["relname"]
        for r in await pg.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " AND c.relname NOT IN ('readings', 'positions')"
        )
    ]
    assert {"gateways", "api_tokens", "audit_log", "enterprises"} <= set(tables)
    for table in tables:
        for secret in secrets_:
            found = await pg.fetchval(f"SELECT count(*) FROM {table} x WHERE strpos(x::text, $1) > 0", secret)
            assert found == 0, f"{table} holds a secret in plaintext"

    rows = await pg.fetch("SELECT id, salt, hash FROM api_tokens")
    assert all(len(r["salt"]) == auth.SALT_BYTES for r in rows) and len({r["salt"] for r in rows}) == len(rows)
    mine = next(r for r in rows if r["id"] == auth.token_id(token))
    assert bytes(mine["hash"]) == auth.token_hash(bytes(mine["salt"]), token)
    columns = {
        r[0]
        for r in await pg.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'api_tokens'")
    }
    assert "token_hash" not in columns and {"salt", "hash", "expires_at", "revoked_at"} <= columns

    # the broker's files: `user:$7$101$salt$hash` lines, no plaintext
    broker_dir = Stack(stack.data_dir).layout.broker
    passwd = (broker_dir / "passwd").read_text()
    for line in passwd.splitlines():
        user, _, hashed = line.partition(":")
        assert HASH.fullmatch(hashed), user
    for name in (f"{sites[0]}/GW-1", f"{sites[1]}/GW-1"):
        hashed = next(line.split(":", 1)[1] for line in passwd.splitlines() if line.startswith(f"{name}:"))
        assert verify_password(password, hashed)
    service_passwords = [v for k, v in Stack(stack.data_dir).secrets.items() if k.startswith("mqtt_")]
    for text in (passwd, (broker_dir / "acl").read_text(), (broker_dir / "services.json").read_text()):
        assert all(secret not in text for secret in [password, *service_passwords])
