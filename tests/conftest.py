"""Fixtures: one real stack (PostgreSQL + Mosquitto + services) per test session, driven through
the `sitewatch` CLI exactly as a user would, plus clients for its HTTP API, broker and database."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.gateway import Gateway
from sitewatch.tls import client_context, verify

SITEWATCH = str(Path(sys.executable).with_name("sitewatch"))


def sw(*args: str, data_dir: Path, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [SITEWATCH, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"sitewatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def traversable(path: Path) -> None:
    """Under root PostgreSQL runs as 'postgres', which must reach the data dir: pytest's are 0700."""
    for p in (path, *path.parents):
        if p == Path(tempfile.gettempdir()):
            break
        p.chmod(p.stat().st_mode | 0o711)


class StackHandle:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.refresh(json.loads(sw("stack", "up", "--no-simulators", "--json", data_dir=data_dir).stdout))

    def refresh(self, info: dict[str, Any]) -> None:
        self.api: str = info["api"]
        self.mqtt_host: str = info["mqtt"]["host"]
        self.mqtt_port: int = info["mqtt"]["port"]
        self.cafile: str | None = info["mqtt"].get("cafile")  # a stack with TLS (`stack up --tls`)
        self.token: str = info["token"]
        self.status: dict[str, Any] = self.cli_json("stack", "status", "--json")
        self.dsn: str = self.status["components"]["postgres"]["dsn"]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sw(*args, data_dir=self.data_dir, check=check)

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args).stdout)

    def up(self) -> None:
        self.refresh(self.cli_json("stack", "up", "--no-simulators", "--json"))

    def down(self, *components: str) -> None:
        self.cli("stack", "down", *components)

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.api,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
            verify=verify(self.cafile),
        )

    def load_catalog(self, doc: dict[str, Any], token: str | None = None) -> httpx.Response:
        with self.http(token) as c:
            return c.put("/api/v1/catalog", json=doc)

    def gateway(self, site: str, gateway: str, password: str, **kw: Any) -> Gateway:
        return Gateway(self.mqtt_host, self.mqtt_port, site, gateway, password, cafile=self.cafile, **kw).connect()

    def token_for(self, role: str, *extra: str) -> str:
        return self.cli("token", "create", "--role", role, *extra).stdout.strip()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    data_dir = tmp_path_factory.mktemp("stack")
    traversable(data_dir)
    handle = StackHandle(data_dir)
    try:
        yield handle
    finally:
        sw("stack", "down", data_dir=data_dir, check=False)


@pytest.fixture
async def pg(stack: StackHandle) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        yield conn
    finally:
        await conn.close()


def unique(prefix: str) -> str:
    """A fresh identifier, so tests sharing one stack never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def site_catalog(
    site: str, *, enterprise: str = "ENT-T", points: int = 5, kind: str = "tank_farm", password: str = "gw-secret-1"
) -> dict[str, Any]:
    """A small catalog: one enterprise, one site, one gateway GW-1, `points` generic points P0.., a zone."""
    return {
        "enterprises": [{"code": enterprise, "name": f"{enterprise} 有限公司"}],
        "sites": [
            {
                "code": site,
                "enterprise": enterprise,
                "name": f"site {site}",
                "kind": kind,
                "timezone": "Asia/Shanghai",
                "state": "operating",
                "shift_capacity": 50,
            }
        ],
        "gateways": [{"code": "GW-1", "site": site, "password": password}],
        "zones": [{"code": "Z-1", "site": site, "name": "1号区域", "risk": "high", "max_people": 9}],
        "points": [
            {"code": f"P{i}", "site": site, "kind": "generic", "unit": "", "period_s": 1} for i in range(points)
        ],
        "tags": [{"code": "T-1", "site": site, "person": "张三"}],
    }


class AlertListener:
    """Subscribes to `sw/v1/{site}/alerts` as the site's gateway, as an enterprise system would."""

    def __init__(self, stack: StackHandle, site: str, password: str = "gw-secret-1") -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("listener"))
        client.username_pw_set(f"{site}/GW-1", password)
        if stack.cafile:
            client.tls_set_context(client_context(stack.cafile))

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with self._lock:
                self.messages.append(json.loads(msg.payload))

        client.on_message = on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_connect = lambda c, *_: c.subscribe(f"sw/v1/{site}/alerts", 1)
        client.connect(stack.mqtt_host, stack.mqtt_port)
        client.loop_start()
        assert subscribed.wait(10), "no SUBACK"
        self._client = client

    def wait(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `predicate(messages)` holds; returns the messages."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self.messages):
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            raise AssertionError(f"condition not met; got {self.messages}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def threshold_site(
    stack: StackHandle,
    prefix: str,
    *,
    points: int = 1,
    enterprise: str = "ENT-T",
    rule: dict[str, Any] | None = None,
    escalation: dict[str, list[str]] | None = None,
) -> str:
    """Load a site whose points P0.. alarm above 50 (or `rule`) and never go offline during a test."""
    site = unique(prefix)
    doc = site_catalog(site, enterprise=enterprise, points=points)
    if escalation:
        doc["enterprises"][0]["escalation"] = escalation
    for point in doc["points"]:
        point.update(period_s=3600, rules=[rule or {"rule": "threshold", "above": [50]}])
    r = stack.load_catalog(doc)
    assert r.status_code == 200, r.text
    return site
