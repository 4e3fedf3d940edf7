"""`sitewatch loadtest`: a short run through the real stack loses nothing and finds every probe
alert; without a running stack it brings up a temporary one and removes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from simulators.loadtest import AlertLedger, LoadPlan
from tests.conftest import StackHandle, sw, traversable, unique


def _report(out: Path) -> dict[str, Any]:
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lost 0" in (out / "report.txt").read_text()
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


async def test_short_load_loses_nothing_and_alerts_every_probe(stack: StackHandle, tmp_path: Path) -> None:
    prefix = unique("LT")
    out = tmp_path / "report"
    proc = stack.cli(
        "loadtest", "--sites", "3", "--points-per-site", "40", "--rate", "5", "--duration", "4",
        "--probes", "5", "--prefix", prefix, "--out", str(out), "--quiet",
    )  # fmt: skip
    assert "SUSTAINED" in proc.stdout
    report = _report(out)
    assert report["lost"] == 0 and report["doubled"] == 0
    assert report["published"] >= 3 * 40 * 5 * 4 * 0.95
    assert report["probes"] >= 15 and report["recall"] == 1.0 and report["precision"] == 1.0
    assert report["latency_ms"]["p99"] < 1000
    assert report["samples"] and all(s["published_per_s"] >= 0 for s in report["samples"])
    # an independent count: every published reading is in PostgreSQL, once
    conn = await asyncpg.connect(stack.dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id JOIN sites s ON s.id = p.site_id"
            " WHERE s.code LIKE $1",
            f"{prefix}-%",
        )
    finally:
        await conn.close()
    assert stored == report["published"]


def test_without_a_stack_it_runs_a_temporary_one(tmp_path: Path) -> None:
    traversable(tmp_path)
    data_dir, out = tmp_path / "nothing-here", tmp_path / "report"
    proc = sw(
        "loadtest", "--sites", "1", "--points-per-site", "10", "--rate", "2", "--duration", "2",
        "--out", str(out), "--quiet", data_dir=data_dir,
    )  # fmt: skip
    assert "temporary stack" in proc.stderr
    report = _report(out)
    assert report["lost"] == 0 and report["recall"] == 1.0
    assert not (data_dir / "postgres").exists()  # nothing left where no stack was asked for


def test_ledger_counts_what_matches_no_crossing() -> None:
    ledger = AlertLedger()
    ledger.crossing("S", 101.0, 0.0)
    ledger.on_alert(b'{"site": "S", "value": 101.0, "change": "raise"}')
    ledger.on_alert(b'{"site": "S", "value": 101.0, "change": "clear"}')  # not an activation
    ledger.on_alert(b'{"site": "S", "value": 101.0, "change": "retrigger"}')  # a second one for one crossing
    ledger.on_alert(b'{"site": "T", "value": 5.0, "change": "raise"}')
    ledger.on_alert(b"not json")
    assert list(ledger.arrived) == [("S", 101.0)]
    assert ledger.unexpected == 2


def test_plan_catalog_gives_every_site_a_gateway_probe_and_points() -> None:
    plan = LoadPlan(sites=2, points_per_site=3, rate=0.5, duration=1, prefix="X")
    doc = plan.catalog("pw")
    assert [s["code"] for s in doc["sites"]] == ["X-0000", "X-0001"]
    assert len(doc["points"]) == 2 * 4 and {p["period_s"] for p in doc["points"] if p["code"] != "PROBE"} == {2}
    assert plan.readings_per_s == 3.0


def test_a_profile_plans_each_phase_at_its_rate() -> None:
    plan = LoadPlan(sites=2, points_per_site=3, rate=10, duration=99, profile=((1.5, 4.0), (0.5, 6.0)))
    assert plan.seconds == 10.0 and plan.factor(3.9) == 1.5 and plan.factor(4.1) == 0.5
    assert plan.due(4.0) == 60.0 and plan.due(10.0) == 60.0 + 30.0  # 15/s for 4 s, then 5/s for 6 s
    assert plan.readings_per_s == 2 * 3 * 90 / 10  # the mean planned rate
    n = np.array([0.0, 30.0, 60.0, 75.0, 90.0])
    assert np.allclose(plan.when(n), [0.0, 2.0, 4.0, 7.0, 10.0])  # `due`'s inverse
    assert np.allclose([plan.due(t) for t in plan.when(n)], n)


def test_probes_cover_at_most_a_hundred_sites_spread_over_all() -> None:
    assert LoadPlan(sites=7, points_per_site=1, rate=1, duration=1).probed == list(range(7))
    probed = LoadPlan(sites=500, points_per_site=1, rate=1, duration=1).probed
    assert len(probed) == 100 and probed[0] == 0 and probed[-1] == 495


async def test_an_overload_profile_reports_the_stack_status(stack: StackHandle, tmp_path: Path) -> None:
    out = tmp_path / "report"
    stack.cli(
        "loadtest", "--sites", "2", "--points-per-site", "20", "--rate", "5", "--profile", "2:2,0.5:2",
        "--flush", "0.2", "--prefix", unique("LP"), "--out", str(out), "--quiet",
    )  # fmt: skip
    report = _report(out)
    assert report["plan"]["profile"] == [[2.0, 2.0], [0.5, 2.0]]
    assert report["lost"] == 0 and report["final_status"] == "ok" and report["statuses"]
    assert {s["factor"] for s in report["samples"]} <= {2.0, 0.5}
    bad = stack.cli("loadtest", "--profile", "fast", check=False)
    assert bad.returncode != 0 and "FACTOR:SECONDS" in bad.stderr
