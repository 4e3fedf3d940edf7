"""API tokens (salted hashes, expiry, revocation, the CLI and the admin API; tokens issued before
migration 008 keep working) and the audit log of state-changing requests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.api.audit import AuditMiddleware, body_fields, client_address, networks
from sitewatch import auth
from sitewatch.stack import Stack
from sitewatch.store import migrate as migrations
from tests.conftest import StackHandle, site_catalog, sw, traversable, unique
from tests.test_storage import fresh_database

# --- pure functions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("30m", dt.timedelta(minutes=30)),
        ("8h", dt.timedelta(hours=8)),
        ("30d", dt.timedelta(days=30)),
        ("2w", dt.timedelta(weeks=2)),
    ],
)
def test_durations(text: str, delta: dt.timedelta) -> None:
    assert auth.parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "0h", "8", "h", "1.5h", "-1d", "8 hours", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        auth.parse_duration(text)


def test_token_ids_and_hashes() -> None:
    assert auth.token_id("sw_42.abcdefghijklmnopqrstuvwxyz012345") == 42
    for other in ("sw_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "sw_0.abcdefghijklmnop", "sw_1.short", "x_1.a"):
        assert auth.token_id(other) is None
    salt = secrets.token_bytes(32)
    assert auth.token_hash(salt, "sw_1.x") != auth.token_hash(secrets.token_bytes(32), "sw_1.x")
    assert auth.token_hash(salt, "sw_1.x") != auth.token_hash(salt, "sw_1.y")


def test_client_address_believes_only_trusted_proxies() -> None:
    proxies = networks(["10.0.0.0/8", "192.0.2.1"])
    assert client_address("198.51.100.7", "203.0.113.9", proxies) == "198.51.100.7"  # not a proxy: ignored
    assert client_address("10.1.2.3", "203.0.113.9", proxies) == "203.0.113.9"
    assert client_address("10.1.2.3", "1.1.1.1, 203.0.113.9, 192.0.2.1", proxies) == "203.0.113.9"  # right to left
    assert client_address("10.1.2.3", None, proxies) == "10.1.2.3"
    assert client_address("127.0.0.1", "203.0.113.9", []) == "127.0.0.1"  # the default: nobody is trusted
    with pytest.raises(ValueError):
        networks(["not-an-address"])


def test_body_fields_keep_no_secret() -> None:
    doc = {"by": "张调度", "note": "n", "password": "pw", "token": "t", "gateways": [{"password": "x"}], "site": "S"}
    assert body_fields(json.dumps(doc).encode(), "application/json") == {"by": "张调度", "site": "S"}
    assert body_fields(b"by: x", "application/yaml") == {}
    assert body_fields(b"[1, 2]", "application/json") == {}
    assert body_fields(b"{", "application/json") == {}


class FakePool:
    """Takes the audit log's INSERTs."""

    COLUMNS = ("at", "token_id", "token_name", "role", "method", "path", "route", "status", "client", "summary")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def execute(self, _sql: str, *args: Any) -> None:
        self.rows.append(dict(zip(self.COLUMNS, args, strict=True)))


async def test_a_request_that_fails_is_audited_too() -> None:
    async def boom(request: Request) -> JSONResponse:
        await request.body()
        raise RuntimeError("a bug")

    async def fine(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/api/v1/boom", boom, methods=["POST"]),
            Route("/api/v1/fine", fine, methods=["GET", "DELETE"]),
            Route("/other", fine, methods=["POST"]),
        ]
    )
    pool = FakePool()
    app.state.pool = pool
    app.add_middleware(AuditMiddleware)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("192.0.2.5", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = b'{"by": "x", "secret": "s"}'
        boom_r = await client.post("/api/v1/boom", content=body, headers={"Content-Type": "application/json"})
        assert boom_r.status_code == 500
        assert (await client.get("/api/v1/fine")).status_code == 200  # GETs are not audited
        assert (await client.post("/other")).status_code == 200  # nor anything outside /api/v1
        assert (await client.delete("/api/v1/fine", headers={"X-Forwarded-For": "203.0.113.9"})).status_code == 200
    rows = pool.rows
    assert [(e["method"], e["path"], e["status"], e["client"]) for e in rows] == [
        ("POST", "/api/v1/boom", 500, "192.0.2.5"),
        ("DELETE", "/api/v1/fine", 200, "192.0.2.5"),  # X-Forwarded-For from an untrusted peer: ignored
    ]
    assert rows[0]["summary"] == {"bytes": len(body), "body": {"by": "x"}, "error": "RuntimeError"}
    assert rows[0]["token_id"] is None and rows[0]["route"] == "/api/v1/boom"


# --- tokens --------------------------------------------------------------------------------------


def me(stack: StackHandle, token: str) -> httpx.Response:
    return httpx.get(f"{stack.api}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_token_lifecycle_from_the_cli(stack: StackHandle) -> None:
    name = unique("cli")
    token = stack.token_for("operator", "--name", name, "--expires-in", "30d")
    assert me(stack, token).json()["name"] == name
    listed = {t["id"]: t for t in json.loads(stack.cli("token", "list", "--json").stdout)}
    mine = listed[auth.token_id(token)]
    assert mine["name"] == name and mine["role"] == "operator" and mine["state"] == "active"
    expires = dt.datetime.fromisoformat(mine["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < expires <= dt.timedelta(days=30)
    text = stack.cli("token", "list").stdout + stack.cli("token", "list", "--json").stdout
    assert token not in text and token.split(".")[1] not in text and name in text  # no secret shown

    assert "revoked at" in stack.cli("token", "revoke", name).stdout
    r = me(stack, token)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    again = stack.cli("token", "revoke", str(auth.token_id(token)))  # by id; idempotent
    assert again.returncode == 0
    listed = {t["id"]: t for t in json.loads(stack.cli("token", "list", "--json").stdout)}
    assert listed[auth.token_id(token)]["state"] == "revoked"

    twins = unique("twin")
    stack.token_for("operator", "--name", twins)
    stack.token_for("operator", "--name", twins)
    ambiguous = stack.cli("token", "revoke", twins, check=False)
    assert ambiguous.returncode == 1 and "revoke one by its id" in ambiguous.stderr
    for missing in ("no-such-token", "999999"):
        r2 = stack.cli("token", "revoke", missing, check=False)
        assert r2.returncode == 1 and "no token" in r2.stderr
    bad = stack.cli("token", "create", "--role", "admin", "--expires-in", "forever", check=False)
    assert bad.returncode == 1 and "expected a duration" in bad.stderr


def test_expired_unknown_and_missing_tokens_answer_401_saying_why(stack: StackHandle) -> None:
    short = stack.token_for("admin", "--expires-in", "1s")
    time.sleep(1.1)
    r = me(stack, short)
    assert r.status_code == 401 and "expired at" in r.json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    forged = short.split(".")[0] + "." + secrets.token_urlsafe(32)  # a real id, a wrong secret
    assert me(stack, forged).json()["detail"] == "unknown token"
    assert me(stack, "sw_" + secrets.token_urlsafe(32)).json()["detail"] == "unknown token"
    r = httpx.get(f"{stack.api}/api/v1/me", timeout=10)
    assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"


def test_tokens_through_the_admin_api(stack: StackHandle) -> None:
    site = unique("TK")
    ent = unique("ENT-TK")
    assert stack.load_catalog(site_catalog(site, enterprise=ent)).status_code == 200
    with stack.http() as admin:
        r = admin.post(
            "/api/v1/tokens", json={"role": "enterprise", "enterprise": ent, "sites": [site], "expires_in": "8h"}
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["role"] == "enterprise" and made["sites"] == [site] and made["state"] == "active"
        assert made["id"] == auth.token_id(made["token"])
        assert me(stack, made["token"]).json() == {"name": "", "role": "enterprise", "enterprise": ent, "sites": [site]}
        listed = admin.get("/api/v1/tokens").json()["tokens"]
        assert any(t["id"] == made["id"] for t in listed)
        assert all("token" not in t and "hash" not in t and "salt" not in t for t in listed)
        for bad in (
            {"role": "wizard"},
            {"role": "enterprise"},
            {"role": "enterprise", "enterprise": "NO-SUCH"},
            {"role": "operator", "expires_in": "soon"},
        ):
            assert admin.post("/api/v1/tokens", json=bad).status_code == 422, bad
        revoked = admin.delete(f"/api/v1/tokens/{made['id']}")
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert me(stack, made["token"]).status_code == 401
        assert admin.delete(f"/api/v1/tokens/{made['id']}").json()["revoked_at"] == revoked.json()["revoked_at"]
        for unknown in ("999999", "abc", "1" * 20, "²", "\u0663"):  # superscript two, Arabic-Indic three
            assert admin.delete(f"/api/v1/tokens/{unknown}").status_code == 404


async def test_tokens_issued_before_migration_008_keep_working(
    stack: StackHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = migrations.migration_files
    async for conn in fresh_database(stack):
        monkeypatch.setattr(migrations, "migration_files", lambda: [f for f in every() if f.version < 8])
        await migrations.migrate(conn)
        monkeypatch.undo()
        legacy = "sw_" + secrets.token_urlsafe(32)  # what `token create` printed before
        await conn.execute(
            "INSERT INTO api_tokens (token_hash, name, role) VALUES ($1, 'old admin', 'admin')",
            hashlib.sha256(legacy.encode()).hexdigest(),
        )
        await conn.execute(
            "INSERT INTO api_tokens (token_hash, name, role, revoked_at) VALUES ($1, 'old revoked', 'operator', now())",
            hashlib.sha256(b"sw_revoked-before").hexdigest(),
        )
        await migrations.migrate(conn)
        row = await conn.fetchrow("SELECT * FROM api_tokens WHERE name = 'old admin'")
        assert row["legacy"] and len(row["salt"]) == 32
        assert bytes(row["hash"]) == auth.token_hash(bytes(row["salt"]), legacy)  # the SQL HMAC is Python's
        principal = await auth.authenticate(conn, legacy)
        assert (principal.name, principal.role) == ("old admin", "admin")
        assert (await auth.authenticate(conn, legacy)).token_id == row["id"]  # again, from the cache
        with pytest.raises(auth.TokenRejected, match="revoked"):
            await auth.authenticate(conn, "sw_revoked-before")
        with pytest.raises(auth.TokenRejected, match="unknown"):
            await auth.authenticate(conn, "sw_" + secrets.token_urlsafe(32))
        new = await auth.create_token(conn, "operator", name="new")
        assert not (await conn.fetchrow("SELECT legacy FROM api_tokens WHERE id = $1", auth.token_id(new)))["legacy"]
        assert (await auth.authenticate(conn, new)).name == "new"


async def test_an_upgraded_data_dir_keeps_its_admin_token(tmp_path: Path) -> None:
    """A data dir from before migration 008: `stack up` migrates it and its admin token still works."""
    traversable(tmp_path)
    data = tmp_path / "var"
    first = StackHandle(data)
    legacy = "sw_" + secrets.token_urlsafe(32)
    conn = await asyncpg.connect(first.dsn)
    try:  # back to the schema before 008, holding an admin token as `stack up` stored it then
        await conn.execute(
            "DROP TABLE audit_log; DELETE FROM api_tokens; DELETE FROM schema_migrations WHERE version = 8;"
            " ALTER TABLE api_tokens DROP COLUMN salt, DROP COLUMN hash, DROP COLUMN legacy, DROP COLUMN expires_at,"
            " ADD COLUMN token_hash text NOT NULL UNIQUE"
        )
        await conn.execute(
            "INSERT INTO api_tokens (token_hash, name, role) VALUES ($1, 'stack admin', 'admin')",
            hashlib.sha256(legacy.encode()).hexdigest(),
        )
    finally:
        await conn.close()
    secrets_file = Stack(data).layout.secrets_file
    secrets_file.write_text(json.dumps({**json.loads(secrets_file.read_text()), "admin_token": legacy}))
    first.down()
    try:
        second = StackHandle(data)
        assert second.token == legacy
        assert me(second, legacy).json()["name"] == "stack admin"
        assert second.load_catalog(site_catalog("UPGRADED")).status_code == 200
    finally:
        sw("stack", "down", data_dir=data, check=False)


# --- the audit log -------------------------------------------------------------------------------


def test_audit_log_api(stack: StackHandle) -> None:
    started = dt.datetime.now(dt.UTC)
    name = unique("auditor")
    token = stack.token_for("operator", "--name", name)
    operator = stack.http(token)
    site = unique("AU")
    password = f"pw-{unique('au')}"
    with stack.http() as admin:
        doc = site_catalog(site, password=password)
        doc["enterprises"][0]["webhooks"] = [
            {"url": "https://example.invalid/hook", "secret": "webhook-secret-0123456789"}
        ]
        assert admin.put("/api/v1/catalog", json=doc, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
        made = admin.post("/api/v1/tokens", json={"role": "operator", "name": unique("audited")}).json()
        reads_before = admin.get("/api/v1/audit", params={"limit": 10000}).json()["entries"]
        for path in ("/api/v1/sites", "/api/v1/alerts", "/api/v1/me"):
            assert admin.get(path).status_code == 200
        assert operator.post("/api/v1/hazards", json={"by": "张调度", "title": "t", "site": site}).status_code == 201
        assert operator.post("/api/v1/hazards", json={"by": "张调度"}).status_code == 422  # refused: audited too
        assert operator.put("/api/v1/catalog", json=doc).status_code == 403

        entries = admin.get("/api/v1/audit", params={"since": started.isoformat()}).json()["entries"]
        assert not {e["path"] for e in entries} & {"/api/v1/sites", "/api/v1/alerts", "/api/v1/me"}
        assert len(admin.get("/api/v1/audit", params={"limit": 10000}).json()["entries"]) == len(reads_before) + 3
        catalog = next(e for e in entries if e["path"] == "/api/v1/catalog" and e["role"] == "admin")
        assert catalog["method"] == "PUT" and catalog["status"] == 200 and catalog["client"] == "127.0.0.1"
        assert catalog["summary"]["created"]["sites"] == 1 and catalog["summary"]["bytes"] > 100
        assert catalog["route"] == "/api/v1/catalog"
        text = json.dumps(entries, ensure_ascii=False)
        for secret in (password, "webhook-secret-0123456789", made["token"], token, stack.token):
            assert secret not in text

        mine = admin.get("/api/v1/audit", params={"actor": name}).json()["entries"]
        assert [(e["method"], e["path"], e["status"]) for e in mine] == [
            ("PUT", "/api/v1/catalog", 403),
            ("POST", "/api/v1/hazards", 422),
            ("POST", "/api/v1/hazards", 201),
        ]
        assert mine[2]["summary"]["body"] == {"by": "张调度", "site": site} and "hazard" in mine[2]["summary"]
        assert mine[0]["token_id"] == auth.token_id(token) and mine[0]["role"] == "operator"
        by_id = admin.get("/api/v1/audit", params={"actor": str(auth.token_id(token)), "limit": 1}).json()["entries"]
        assert by_id == mine[:1]
        until = mine[1]["at"]
        older = admin.get("/api/v1/audit", params={"actor": name, "until": until}).json()["entries"]
        assert [e["status"] for e in older] == [201]
        future = int(time.time() * 1000) + 3_600_000
        assert admin.get("/api/v1/audit", params={"since": future}).json()["entries"] == []
        assert admin.get("/api/v1/audit", params={"limit": 0}).status_code == 422
        assert admin.get("/api/v1/audit", params={"since": "yesterday"}).status_code == 422
    assert operator.get("/api/v1/audit").status_code == 403
    operator.close()


async def test_a_refused_token_is_named_in_the_audit_log(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    name = unique("gone")
    token = stack.token_for("admin", "--name", name)
    stack.cli("token", "revoke", name)
    alert_id = "00000000-0000-0000-0000-000000000000"
    with stack.http(token) as c:
        r = c.post(f"/api/v1/alerts/{alert_id}/close", json={"by": "x"})
    assert r.status_code == 401
    row = await pg.fetchrow("SELECT * FROM audit_log WHERE token_name = $1", name)
    summary = json.loads(row["summary"])
    assert row["status"] == 401 and row["role"] == "admin" and "revoked" in summary["auth"]
    assert summary["params"] == {"alert_id": alert_id}
