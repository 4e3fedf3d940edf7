"""The simulators: deterministic, realistic and quiet generators; scenarios whose ground truth
holds in simulated time (the product's evaluator in-process) and through the real stack; and
`sitewatch simulate`."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from simulators.dryrun import DryRun
from simulators.runner import Checker, Runner, Target, now_ms
from simulators.scenarios import SCENARIOS, Incident, make
from simulators.signals import HOUR_MS, MINUTE_MS
from simulators.sites import (
    BAD_VALUE,
    KINDS,
    Batch,
    DustPlant,
    Faults,
    OpenPit,
    SiteSim,
    TankFarm,
    UndergroundMine,
)
from simulators.sites.mine import MAGAZINE
from simulators.truth import Expected, Step, judge
from tests.conftest import SITEWATCH, StackHandle, unique

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MORNING = int(dt.datetime(2026, 3, 10, 6, 30, tzinfo=SHANGHAI).timestamp() * 1000)  # before the 08:00 shift change


def readings(sim: SiteSim, start: int, end: int, step_ms: int) -> list[tuple[int, dict[str, Any]]]:
    """(the step that sent it, reading) for every reading from start to end."""
    out = []
    for t in range(start, end + 1, step_ms):
        for m in sim.step(t):
            if isinstance(m, Batch) and m.channel == "telemetry":
                out += [(t, r) for r in m.items]
    return out


def positions(sim: SiteSim, start: int, end: int, step_ms: int) -> list[dict[str, Any]]:
    return [
        e
        for t in range(start, end + 1, step_ms)
        for m in sim.step(t)
        if isinstance(m, Batch) and m.channel == "positions"
        for e in m.items
    ]


# -- generators ------------------------------------------------------------------------------------
def test_a_seed_gives_the_same_readings_however_the_run_is_cut() -> None:
    def run(seed: int, step_ms: int) -> set[tuple[str, int, float, str]]:
        sim = TankFarm("DET", seed=seed)
        return {
            (r["point"], r["ts"], r["value"], r.get("quality", "good"))
            for _, r in readings(sim, MORNING, MORNING + 10 * MINUTE_MS, step_ms)
            if r["ts"] < MORNING + 9 * MINUTE_MS  # late ones near the end may still be held back
        }

    fine, coarse = run(7, 250), run(7, 3000)
    assert fine == coarse and len(fine) > 3000
    other = run(8, 250)
    assert len(other & fine) < len(fine) / 2, "another seed, other values"


def test_each_point_reports_at_its_period_and_analog_values_vary() -> None:
    sim = DustPlant("PER", seed=1, faults=Faults(0, 0, 0))
    by_point: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for _, r in readings(sim, MORNING, MORNING + 30 * MINUTE_MS, 1000):
        by_point[r["point"]].append((r["ts"], r["value"]))
    assert set(by_point) == {p.code for p in sim.points}
    for p in sim.points:
        ts = np.array([t for t, _ in by_point[p.code]])
        assert (np.diff(ts) == round(p.period_s * 1000)).all(), p.code
        assert ts[0] - MORNING < p.period_s * 1000
        values = {v for _, v in by_point[p.code]}
        assert (len(values) == 1) == p.digital, (p.code, sorted(values)[:5])


def test_bad_uncertain_and_late_readings_come_at_their_rates_on_analog_points_only() -> None:
    faults = Faults(bad=0.05, uncertain=0.05, late=0.1)
    sim = TankFarm("FLT", seed=2, faults=faults)
    rows = readings(sim, MORNING, MORNING + HOUR_MS, 1000)
    digital = {p.code for p in sim.points if p.digital}
    period = {p.code: p.period_s * 1000 for p in sim.points}
    analog = [(t, r) for t, r in rows if r["point"] not in digital]
    quality = Counter(r.get("quality", "good") for _, r in analog)
    n = len(analog)
    assert n > 9_000
    assert quality["bad"] / n == pytest.approx(0.05, rel=0.15)
    assert quality["uncertain"] / n == pytest.approx(0.05, rel=0.15)
    assert all(r["value"] == BAD_VALUE for _, r in analog if r.get("quality") == "bad")
    delays = [(sent - r["ts"]) / period[r["point"]] for sent, r in analog]
    late = [d for d in delays if d > 1000 / min(period.values())]  # later than the 1 s step explains
    assert len(late) / n == pytest.approx(0.1, rel=0.2)
    assert max(delays) <= 1.0 + 1000 / min(period.values()), "never so late that a point looks offline"
    assert all("quality" not in r and sent - r["ts"] < 1000 for sent, r in rows if r["point"] in digital)
    order = [r["ts"] for _, r in rows if r["point"] == "GT-01"]
    assert order != sorted(order), "late readings arrive out of order"


def test_shifts_move_workers_between_zones_within_every_limit() -> None:
    sim = UndergroundMine("SHIFTS", seed=4)
    start = int(dt.datetime(2026, 3, 10, 0, 0, tzinfo=SHANGHAI).timestamp() * 1000)
    events = positions(sim, start, start + 26 * HOUR_MS, 30_000)
    zone_of: dict[str, str | None] = {}
    entered: dict[str, int] = {}
    heard: dict[str, int] = {}
    risk = {z["code"]: z["risk"] for z in sim.zones}
    allowed = {z["code"]: set(z.get("allow", [])) for z in sim.zones}
    peak: Counter[str] = Counter()
    visits: Counter[tuple[str, int]] = Counter()  # (zone, shift) moves into it
    longest = gap = 0
    for e in events:
        tag, ts, before = e["tag"], e["ts"], zone_of.get(e["tag"])
        if before is not None:
            gap = max(gap, ts - heard[tag])
        heard[tag] = ts
        after = e["zone"] if e["kind"] == "locate" else None
        if before is None and after is not None:
            entered[tag] = ts
        if before is not None and after is None:
            longest = max(longest, ts - entered.pop(tag))
        if after is not None and after != before:
            visits[after, sim.shift_of(ts)] += 1
            assert risk[after] != "restricted" or tag in allowed[after], (tag, after)
        zone_of[tag] = after
        counts = Counter(z for z in zone_of.values() if z is not None)
        for zone, count in counts.items():
            peak[zone] = max(peak[zone], count)
        assert sum(counts.values()) <= (sim.shift_capacity or 0)
    assert all(peak[f] <= 6 for f in sim.faces), peak  # the warning is at 8
    assert peak[MAGAZINE] >= 1 and min(peak[f] for f in sim.faces) >= 5
    assert 7 * HOUR_MS < longest < 10 * HOUR_MS, "a shift is about 8 h, overtime is 10 h"
    assert 0 < gap <= 60_000 + 30_000, "located at least every heartbeat (a tag is lost after 15 min)"
    shifts = {n for _, n in visits}
    assert len(shifts) >= 3 and all(visits["WF-1", n] >= 6 for n in shifts if n != max(shifts))


QUIET_RUNS = {  # hours, step: the mine across the 08:00 shift change, the open pit past its 24 h slope window
    "underground_mine": (2, 20.0),
    "open_pit": (25, 120.0),
    "tank_farm": (3, 20.0),
    "dust_plant": (2, 20.0),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_quiet_site_raises_nothing_for_hours_of_simulated_time(kind: str) -> None:
    sim = KINDS[kind](f"QUIET-{kind}", seed=6)
    sent: list[Batch] = []
    step = sim.step

    def recording(t_ms: int) -> list[Any]:
        messages = step(t_ms)
        sent.extend(m for m in messages if isinstance(m, Batch))
        return messages

    sim.step = recording  # type: ignore[method-assign]
    hours, step_s = QUIET_RUNS[kind]
    assert DryRun([sim]).run(MORNING, MORNING + hours * HOUR_MS, step_s) == []
    items = [i for m in sent for i in m.items]
    changes: Counter[str] = Counter()  # what happened at the site meanwhile
    last: dict[str, float] = {}
    for i in items:
        if "point" in i:
            changes[i["point"]] += i["point"] in last and last[i["point"]] != i["value"]
            last[i["point"]] = i["value"]
        else:
            changes[i["kind"]] += 1
    if isinstance(sim, UndergroundMine):
        events = [i for i in items if "tag" in i]
        left = {e["tag"] for e in events if e["kind"] == "exit" and e["ts"] > MORNING}
        came = {e["tag"] for e in events if e.get("zone") == "SHAFT" and e["ts"] > MORNING + 90 * MINUTE_MS}
        assert (len(left), len(came)) == (30, 32) and not left & came, "at 08:00 the night crew left, the day crew came"
    elif isinstance(sim, TankFarm):
        assert sum(changes[p.code] for p in sim.points_of("valve_command")) >= 4, "valves were operated"
    elif isinstance(sim, OpenPit):
        assert changes["RG-1"] > 10 and max(i["value"] for i in items if i["point"] == "RG-1") > 2, "it rained"
    assert all(changes[p.code] > 10 for p in sim.points if not p.digital and p.kind != "rainfall")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_scenario_yields_exactly_its_ground_truth_in_simulated_time(name: str) -> None:
    incident = make(name, f"DRY-{name}", seed=3, start_ms=MORNING)
    steps = DryRun([incident.sim]).run(MORNING, incident.start_ms + round(incident.recover_s * 1000) + 5000, 0.25)
    report = judge(incident.expected, incident.start_ms, steps, [incident.sim.code])
    assert report.ok, (report.summary(), report.missing, report.unexpected, report.late)
    assert report.recall == report.precision == 1.0 and incident.expected


def test_judge_sorts_steps_into_matched_late_missing_and_unexpected() -> None:
    t0 = 1_000_000
    gas = Expected("S", "point", "GT-1", "threshold", 2, by_s=10)
    worse = Expected("S", "point", "GT-1", "threshold", 3, by_s=10)
    offline = Expected("S", "gateway", "GW", "offline", 3, by_s=5)

    def step(severity: int, after_s: float, site: str = "S", rule: str = "threshold") -> Step:
        return Step(site, "point", "GT-1", rule, severity, t0 + round(after_s * 1000), "id")

    report = judge([gas, worse, offline], t0, [step(2, 3), step(3, 12), step(4, 13), step(2, 1, "OTHER")], ["S"])
    assert [m.expected for m in report.matched] == [gas] and report.matched[0].latency_s == 3
    assert [m.expected for m in report.late] == [worse]
    assert report.missing == [offline]
    assert [s.severity for s in report.unexpected] == [4]
    assert report.recall == pytest.approx(1 / 3) and report.precision == pytest.approx(2 / 3) and not report.ok


# -- through the real stack ------------------------------------------------------------------------
@dataclass
class Live:
    incidents: list[Incident]
    quiet: list[SiteSim]
    checker: Checker
    began: int
    ended: int
    cli: subprocess.CompletedProcess[str]
    cli_prefix: str


@pytest.fixture(scope="module")
def live(stack: StackHandle) -> Iterator[Live]:
    """Every scenario on its own site and a quiet site of each kind, all at once, while
    `sitewatch simulate` runs a scenario of its own beside them."""
    prefix = unique("CLI")
    args = ["--scenario", "spark_burst", "--sites", "1", "--prefix", prefix, "--data-dir", str(stack.data_dir)]
    cli = subprocess.Popen(
        [SITEWATCH, "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    target = Target(stack.api, stack.token, stack.mqtt_host, stack.mqtt_port)
    began = now_ms()
    incidents = [make(name, unique(name.upper().replace("_", "-")), seed=5, start_ms=began) for name in SCENARIOS]
    quiet = [kind(unique(f"QUIET-{kind.kind}"), seed=6) for kind in KINDS.values()]
    sims = [i.sim for i in incidents] + quiet
    runner = Runner(target)
    checker = Checker(stack.mqtt_host, stack.mqtt_port)
    try:
        runner.load(sims)
        checker.subscribe_sites(sims)  # each site's gateway reads its own alerts, as PROTOCOL allows
        runner.start(sims)
        runner.run_until(max(i.start_ms + round(i.check_s * 1000) for i in incidents) + 2000)
        ended = now_ms()
        output, _ = cli.communicate(timeout=120)
        done = subprocess.CompletedProcess(cli.args, cli.returncode, output)
        yield Live(incidents, quiet, checker, began, ended, done, prefix)
    finally:
        if cli.poll() is None:
            cli.kill()
        runner.close()
        checker.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_scenario_yields_exactly_its_ground_truth_through_the_stack(live: Live, name: str) -> None:
    incident = next(i for i in live.incidents if i.scenario == name)
    site = incident.sim.code
    report = judge(incident.expected, incident.start_ms, live.checker.of([site], live.began, live.ended), [site])
    late = [(m.expected, m.latency_s) for m in report.late]
    assert report.ok, (report.summary(), report.missing, late, [(s, s.message) for s in report.unexpected])
    assert all(0 <= m.latency_s <= m.expected.by_s for m in report.matched)


def test_quiet_sites_of_every_kind_stay_alert_free_through_the_stack(live: Live) -> None:
    assert live.ended - live.began > 45_000
    assert live.checker.of([s.code for s in live.quiet], live.began) == []


def test_sitewatch_simulate_reports_each_ground_truth_alert_and_the_score(live: Live) -> None:
    out = live.cli.stdout
    assert live.cli.returncode == 0, out
    site = f"{live.cli_prefix}-SPARK-BURST"
    assert f"spark_burst on {site}" in out and f"{live.cli_prefix}-MINE-1" in out
    assert f"✓ {site} point DC-1.SP dust severity 3" in out and f"✓ {site} point DC-1.SP dust severity 4" in out
    assert "TOTAL 2/2 ground-truth alerts on time, 0 late, 0 missing, 0 unexpected: precision 1.00, recall 1.00" in out


def test_sitewatch_simulate_refuses_an_unknown_scenario(stack: StackHandle) -> None:
    proc = stack.cli("simulate", "--scenario", "flood", check=False)
    assert proc.returncode == 1 and "unknown scenario 'flood'" in proc.stderr and "gas_leak" in proc.stderr
