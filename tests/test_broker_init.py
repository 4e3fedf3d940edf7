"""`sitewatch broker init`: a deployment's broker configured from the catalog, started for real."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sitewatch.stack import free_port
from tests.conftest import StackHandle, site_catalog, unique

SITEWATCH = str(Path(sys.executable).with_name("sitewatch"))
PASSWORDS = {f"SITEWATCH_MQTT_PASSWORD_{n}": f"pw-{n.lower()}-123" for n in ("INGEST", "ALERTING", "API", "ADMIN")}


def can_connect(port: int, username: str, password: str) -> bool:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("probe"))
    client.username_pw_set(username, password)
    client.connect("127.0.0.1", port, keepalive=5)
    for _ in range(20):
        client.loop(timeout=0.1)
        if client.is_connected():
            break
    ok = client.is_connected()
    client.disconnect()
    return ok


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "mosquitto"


@pytest.fixture
def broker(stack: StackHandle, broker_dir: Path) -> Iterator[tuple[int, str]]:
    """A broker configured by `broker init` for a catalog with one site; yields (port, site)."""
    site = unique("B")
    assert stack.load_catalog(site_catalog(site, password="deploy-gw-password")).status_code == 200
    port = free_port()
    missing = subprocess.run(
        [SITEWATCH, "broker", "init", "--dir", str(broker_dir), "--dsn", stack.dsn],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert missing.returncode == 1 and "SITEWATCH_MQTT_PASSWORD_INGEST" in missing.stderr
    subprocess.run(
        [
            SITEWATCH,
            "broker",
            "init",
            "--dir",
            str(broker_dir),
            "--dsn",
            stack.dsn,
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--user",
            getpass.getuser(),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **PASSWORDS},
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(broker_dir / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            try:
                can_connect(port, "sitewatch-admin", PASSWORDS["SITEWATCH_MQTT_PASSWORD_ADMIN"])
                break
            except OSError:
                time.sleep(0.1)
        yield port, site
    finally:
        proc.terminate()
        proc.wait(10)


def test_broker_init_writes_a_working_broker(broker: tuple[int, str], broker_dir: Path) -> None:
    port, site = broker
    conf = (broker_dir / "mosquitto.conf").read_text()
    assert "max_queued_messages 0" in conf and "allow_anonymous false" in conf
    assert can_connect(port, "sitewatch-ingest", PASSWORDS["SITEWATCH_MQTT_PASSWORD_INGEST"])
    assert not can_connect(port, "sitewatch-ingest", "wrong")
    assert can_connect(port, f"{site}/GW-1", "deploy-gw-password")
