"""Site-sharded workers (`stack up --workers 2`): sites dealt to shards by points, each site's
traffic stored and evaluated by its owner only, and a worker killed for good has its shard taken
over by the other within seconds, with nothing lost and the alerts of an undisturbed run, then
handed back when it returns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults import harness
from tests.faults.conftest import WORKLOAD, own_stack


@pytest.fixture(scope="module")
def shard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.FaultStack]:
    yield from own_stack(tmp_path_factory, "shard-stack", workers=2)


@pytest.fixture(scope="module")
def shard_baseline(shard_stack: harness.FaultStack) -> harness.Result:
    result = harness.run(shard_stack, WORKLOAD, None, prefix="SHD")
    assert result.problems(None) == []
    return result


def shard_of(stack: harness.FaultStack, site: str) -> int:
    rows = harness.query(
        stack.dsn, "SELECT ss.shard FROM site_shards ss JOIN sites s ON s.id = ss.site_id WHERE s.code = $1", site
    )
    return int(rows[0]["shard"])


def test_sites_are_dealt_by_points_and_keep_their_shard(shard_stack: harness.FaultStack) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    sizes = [40, 30, 20, 10, 10, 5]
    doc = {
        "enterprises": [{"code": "ENT-SHD", "name": "shards"}],
        "sites": [
            {"code": f"D{tag}-{i}", "enterprise": "ENT-SHD", "name": f"d{i}", "kind": "tank_farm"}
            for i in range(len(sizes))
        ],
        "points": [
            {"code": f"P{j}", "site": f"D{tag}-{i}", "kind": "generic", "period_s": 60}
            for i, n in enumerate(sizes)
            for j in range(n)
        ],
    }
    with shard_stack.http() as c:
        r = c.put("/api/v1/catalog", json=doc)
        assert r.status_code == 200, r.text
        first = {f"D{tag}-{i}": shard_of(shard_stack, f"D{tag}-{i}") for i in range(len(sizes))}
        # the heaviest two go to different shards, and each shard gets a fair share of the points
        assert first[f"D{tag}-0"] != first[f"D{tag}-1"]
        weight = [0, 0]
        for i, n in enumerate(sizes):
            weight[first[f"D{tag}-{i}"]] += n
        assert set(first.values()) == {0, 1}
        doc["sites"].append({"code": f"D{tag}-NEW", "enterprise": "ENT-SHD", "name": "new", "kind": "tank_farm"})
        r = c.put("/api/v1/catalog", json=doc)
        assert r.status_code == 200, r.text
    assert {s: shard_of(shard_stack, s) for s in first} == first  # a site never moves
    assert shard_of(shard_stack, f"D{tag}-NEW") in (0, 1)


def test_each_worker_evaluates_only_its_own_sites(
    shard_stack: harness.FaultStack, shard_baseline: harness.Result
) -> None:
    workers = ("alerting", "alerting-1")
    before = [shard_stack.metric(n, "sitewatch_alerting_readings_total") or 0.0 for n in workers]
    run = harness.run(shard_stack, WORKLOAD, None, prefix="SHD")
    assert run.problems(shard_baseline) == []
    after = [shard_stack.metric(n, "sitewatch_alerting_readings_total") or 0.0 for n in workers]
    mine = shard_of(shard_stack, run.site)
    # the owner evaluated every reading of the site, the other worker none of them
    assert after[mine] - before[mine] == run.readings_published
    assert after[1 - mine] == before[1 - mine]


@pytest.mark.parametrize("service", ["alerting", "ingest"])
def test_a_dead_worker_is_taken_over_and_handed_back(
    shard_stack: harness.FaultStack, shard_baseline: harness.Result, service: str
) -> None:
    kill, back = harness.kill_owner(service)
    fault = harness.Fault(f"kill -9 the {service} worker owning the site", kill, back, outage_s=3.0)
    result = harness.run(shard_stack, WORKLOAD, fault, prefix="SHD")
    assert result.problems(shard_baseline) == []  # nothing lost or doubled, the undisturbed alerts
    assert result.readings_stored == result.readings_published and result.readings_doubled == 0
    assert result.notes["takeover_s"] < 15, result.notes
    assert result.notes["taken_by"].startswith(f"{service}-"), result.notes
    assert result.notes["handback_s"] < 15, result.notes
    taker = int(result.notes["taken_by"].split("@")[0].rpartition("-")[2])
    log = shard_stack.data_dir / "logs" / (f"{service}-{taker}.log" if taker else f"{service}.log")
    assert f"took over shard {result.notes['shard']} of {service}" in log.read_text()


def test_metrics_and_status_tell_the_workers_apart(shard_stack: harness.FaultStack) -> None:
    with shard_stack.http() as c:
        text = c.get("/metrics").text
        status = c.get("/status").json()
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "a family exported twice: Prometheus would refuse the scrape"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ready = {s.labels["worker"]: s.value for s in families["sitewatch_alerting_ready"].samples}
    assert ready == {"alerting-0": 1.0, "alerting-1": 1.0}
    assert {s.labels["worker"] for s in families["sitewatch_ingest_readings_stored"].samples} == {
        "ingest-0",
        "ingest-1",
    }
    assert set(status["services"]) == {"ingest", "ingest-1", "alerting", "alerting-1"}
    assert status["status"] in ("ok", "catching_up", "overloaded")
