"""The same gateways and services, unchanged, on a 3-node NATS cluster that loses a node mid-stream.

Gateways publish through node 1, ingest and alerting hold their persistent sessions on node 2, and
node 3 is SIGKILLed halfway: every reading the gateways published must be stored exactly once, and
a threshold crossing published after the kill must raise exactly one alert, pushed back to the
gateway's subscription on node 1 (docs/scaling.md, "Beyond one machine").
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from simulators.gateway import Gateway
from sitewatch.catalog.validate import validate_catalog
from sitewatch.cluster import HOST, NatsCluster, free_ports, gateway_user, service_users
from sitewatch.store import catalog as catalog_store
from sitewatch.store import db
from sitewatch.store.migrate import migrate
from tests.conftest import StackHandle, site_catalog, unique

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nats-server") is None, reason="nats-server missing: scripts/install-system-deps.sh --cluster"
    ),
]

GATEWAYS = ("GW-1", "GW-2")
POINTS = 10  # P0..P9, generic, never alarming at the values sent
PERIOD_S = 0.1  # each gateway publishes one batch of all points every 100 ms
BEFORE_KILL_S = 6.0
AFTER_KILL_S = 6.0


def _database(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


async def _fresh_database(stack_dsn: str, doc: dict[str, Any]) -> str:
    """A new database in the stack's PostgreSQL, migrated and loaded with `doc` as PUT /catalog does."""
    name = f"cluster_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = _database(stack_dsn, name)
    conn = await db.connect(dsn)
    try:
        await migrate(conn)
        catalog, problems = validate_catalog(doc, await catalog_store.existing(conn))
        assert catalog is not None, problems
        await catalog_store.apply(conn, catalog)
    finally:
        await conn.close()
    return dsn


async def _drop_database(stack_dsn: str, dsn: str) -> None:
    admin = await asyncpg.connect(stack_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {dsn.rsplit('/', 1)[1]} WITH (FORCE)")
    finally:
        await admin.close()


class Service:
    """`python -m services.<name>` with the environment the stack gives it, on a chosen broker node."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_ports(1)[0]
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / f"{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env, "SITEWATCH_PORT": str(self.port), "SITEWATCH_DATA_DIR": str(directory)},
                cwd=directory,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log.read_text()[-3000:]}"
            try:
                text = httpx.get(f"http://{HOST}:{self.port}/metrics", timeout=1).text
                if f"sitewatch_{self.name}_ready 1.0" in text:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cluster_site(stack: StackHandle, tmp_path: Path) -> Iterator[tuple[str, str, NatsCluster, dict[str, str]]]:
    """A site with two gateways and a hot point, in a fresh database, on a 3-node cluster with
    ingest and alerting running against node 2."""
    site = unique("CLU")
    doc = site_catalog(site, points=POINTS)
    passwords = {gw: secrets.token_urlsafe(12) for gw in GATEWAYS}
    doc["gateways"] = [{"code": gw, "site": site, "password": pw} for gw, pw in passwords.items()]
    for point in doc["points"]:
        point.update(period_s=3600, rules=[{"rule": "threshold", "above": [1000]}])
    doc["points"].append(
        {"code": "HOT", "site": site, "kind": "generic", "unit": "", "period_s": 3600,
         "rules": [{"rule": "threshold", "above": [50]}]}
    )  # fmt: skip
    dsn = asyncio.run(_fresh_database(stack.dsn, doc))
    service_passwords = {name: secrets.token_urlsafe(16) for name in ("ingest", "alerting")}
    users = [*service_users(service_passwords), *(gateway_user(site, gw, pw) for gw, pw in passwords.items())]
    cluster = NatsCluster(tmp_path / "nats", users)
    services: list[Service] = []
    try:
        cluster.start()
        for name in ("ingest", "alerting"):
            env = {
                "SITEWATCH_DSN": dsn,
                "SITEWATCH_MQTT_HOST": HOST,
                "SITEWATCH_MQTT_PORT": str(cluster.nodes[1].mqtt_port),
                "SITEWATCH_MQTT_USER": f"sitewatch-{name}",
                "SITEWATCH_MQTT_PASSWORD": service_passwords[name],
                "SITEWATCH_BROKER_PID": "",
            }
            services.append(Service(name, tmp_path / name, env))
        for svc in services:
            svc.wait_ready()
        yield site, dsn, cluster, passwords
    finally:
        for svc in services:
            svc.stop()
        cluster.stop()
        asyncio.run(_drop_database(stack.dsn, dsn))


def _batch(t_ms: int) -> list[dict[str, Any]]:
    return [{"point": f"P{i}", "ts": t_ms, "value": 20.0 + i} for i in range(POINTS)]


def _fetch(dsn: str, query: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        conn = await db.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


READINGS = (
    "SELECT p.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms FROM readings r"
    " JOIN points p ON p.id = r.point_id JOIN sites s ON s.id = p.site_id WHERE s.code = $1"
)
ALERTS = "SELECT a.id, a.source_code, a.rule FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1"


def test_node_loss_loses_no_reading_and_raises_once(
    cluster_site: tuple[str, str, NatsCluster, dict[str, str]],
) -> None:
    site, dsn, cluster, passwords = cluster_site
    node1 = cluster.nodes[0].mqtt_port
    gateways = {gw: Gateway(HOST, node1, site, gw, pw, client_id=unique(gw)).connect() for gw, pw in passwords.items()}
    alerts: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_alert(payload: bytes) -> None:
        with lock:
            alerts.append(json.loads(payload))

    gateways["GW-1"].subscribe_alerts(on_alert)
    sent: set[tuple[str, int]] = set()
    infos = []
    t_ms = int(time.time() * 1000) - 60_000  # a millisecond per batch: every (point, ts) distinct
    start = time.monotonic()
    killed_at: float | None = None
    hot_sent = False
    try:
        while time.monotonic() - start < BEFORE_KILL_S + AFTER_KILL_S:
            elapsed = time.monotonic() - start
            if killed_at is None and elapsed >= BEFORE_KILL_S:
                cluster.kill(2)  # node 3: neither the gateways' node nor the services'
                killed_at = elapsed
            for gw in gateways.values():
                t_ms += 1
                readings = _batch(t_ms)
                if gw.gateway == "GW-1" and killed_at is not None and elapsed >= killed_at + 1.0 and not hot_sent:
                    readings.append({"point": "HOT", "ts": t_ms, "value": 80.0})
                    readings.append({"point": "HOT", "ts": t_ms + 100_000, "value": 85.0})  # still above: same alert
                    hot_sent = True
                infos.append(gw.telemetry(readings))
                sent.update((r["point"], r["ts"]) for r in readings)
            time.sleep(PERIOD_S)
        assert killed_at is not None and hot_sent
        # every batch of both gateways PUBACKed by the cluster (a gateway dropped by its node in the
        # reshuffle after the kill reconnects, and paho sends what it holds once it is back)
        gateways["GW-1"].flush(infos, timeout=60)

        deadline = time.monotonic() + 45
        rows: list[Any] = []
        while time.monotonic() < deadline:
            rows = _fetch(dsn, READINGS, site)
            if len(rows) >= len(sent):
                break
            time.sleep(0.25)
        stored = [(r["code"], r["ms"]) for r in rows]
        missing = sent - set(stored)
        assert not missing, f"{len(missing)} of {len(sent)} readings lost, e.g. {sorted(missing)[:5]}"
        assert len(stored) == len(set(stored)) == len(sent), "a reading stored twice"

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                pushed = [a for a in alerts if a["source"]["code"] == "HOT"]
            if pushed and _fetch(dsn, ALERTS, site):
                break
            time.sleep(0.25)
        time.sleep(1.0)  # a second alert, were there one, would come right behind the first
        everything = _fetch(dsn, ALERTS, site)
        raised = [r for r in everything if r["source_code"] == "HOT"]
        assert [(r["source_code"], r["rule"]) for r in raised] == [("HOT", "threshold")]
        # a gateway its node dropped in the reshuffle after the kill announces itself offline (its
        # last will), as every gateway does when Mosquitto restarts in the fault matrix
        assert {(r["source_code"], r["rule"]) for r in everything} - {("HOT", "threshold")} <= {
            (gw, "offline") for gw in passwords
        }
        with lock:
            pushed = {a["id"] for a in alerts if a["source"]["code"] == "HOT"}
            assert pushed == {str(raised[0]["id"])}, f"alerts pushed to the gateway: {alerts}"
    finally:
        for gw in gateways.values():
            gw.close()
