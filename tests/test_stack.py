"""`sitewatch stack up|status|down` on a data dir of its own: resume with the same data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import StackHandle, site_catalog, sw, traversable


def test_up_down_up_keeps_data(tmp_path: Path) -> None:
    traversable(tmp_path)
    data = tmp_path / "var"
    first = StackHandle(data)
    assert first.load_catalog(site_catalog("KEEP")).status_code == 200
    again = json.loads(sw("stack", "up", "--no-simulators", "--json", data_dir=data).stdout)  # already up: same answer
    assert again == {
        "api": first.api,
        "mqtt": {"host": "127.0.0.1", "port": first.mqtt_port},
        "token": first.token,
        "ui": f"{first.api}/ui/",
    }
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


def test_stack_up_runs_the_demo_simulators_and_alerts_arrive_within_a_minute(tmp_path: Path) -> None:
    """`stack up` without --no-simulators (what `make demo` runs): simulated sites of every kind,
    scenarios on a loop, the first alert on the board within a minute; `down` stops them too."""
    traversable(tmp_path)
    data = tmp_path / "demo"
    out = sw("stack", "up", data_dir=data).stdout
    started = time.monotonic()
    try:
        assert "Dispatch room http://127.0.0.1:" in out and "/ui/" in out and "Admin token" in out
        status = json.loads(sw("stack", "status", "--json", data_dir=data).stdout)
        assert status["running"] and status["components"]["simulators"]["running"]
        with httpx.Client(base_url=status["api"], headers={"Authorization": f"Bearer {status['token']}"}) as api:
            alerts: list[dict[str, Any]] = []
            while not alerts and time.monotonic() - started < 60:
                time.sleep(1)
                alerts = [a for a in api.get("/api/v1/alerts").json()["alerts"] if a["site"].startswith("SIM-")]
            assert alerts, "no alert from the simulated sites within a minute"
            kinds = {s["kind"] for s in api.get("/api/v1/sites").json()["sites"] if s["code"].startswith("SIM-")}
        assert {"underground_mine", "open_pit", "tank_farm", "dust_plant"} <= kinds
    finally:
        sw("stack", "down", data_dir=data)
    status = json.loads(sw("stack", "status", "--json", data_dir=data).stdout)
    assert not status["components"]["simulators"]["running"]
    assert "interrupted: stopping the sites" in (data / "logs" / "simulators.log").read_text()
