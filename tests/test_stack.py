"""`sitewatch stack up|status|down` on a data dir of its own: resume with the same data."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import StackHandle, site_catalog, sw, traversable


def test_up_down_up_keeps_data(tmp_path: Path) -> None:
    traversable(tmp_path)
    data = tmp_path / "var"
    first = StackHandle(data)
    assert first.load_catalog(site_catalog("KEEP")).status_code == 200
    again = json.loads(sw("stack", "up", "--json", data_dir=data).stdout)  # already up: same answer
    assert again == {"api": first.api, "mqtt": {"host": "127.0.0.1", "port": first.mqtt_port}, "token": first.token}
    status = first.cli_json("stack", "status", "--json")
    assert status["running"] and set(status["components"]) == {"postgres", "mosquitto", "ingest", "alerting", "api"}
    pids = [c["pid"] for c in status["components"].values()]
    out = sw("stack", "down", data_dir=data).stdout
    assert "api" in out and "postgres" in out
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not first.cli_json("stack", "status", "--json")["running"]
    second = StackHandle(data)
    assert second.token == first.token
    r = second.load_catalog(site_catalog("KEEP"))
    assert r.status_code == 200 and r.json()["changed"] is False
    for name in ("postgres", "mosquitto", "ingest", "alerting", "api"):
        assert (data / "logs" / f"{name}.log").exists()
    sw("stack", "down", data_dir=data)
    assert "nothing was running" in sw("stack", "down", data_dir=data).stdout
    assert sw("stack", "down", "teapot", data_dir=data, check=False).returncode == 1
