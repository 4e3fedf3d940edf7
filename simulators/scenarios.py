"""Scenarios: an incident injected into a simulated site at a known event time, with its ground
truth, the alerts that must follow it and by when (and, by omission, that nothing else may).

Each scenario builds its own site, tunes the few catalog parameters a customer would tune for a
fast demonstration (a shorter on-delay, a shorter stroke time, a slope window in time-lapse),
and schedules the incident and the site's recovery. `make(name, site, seed=, start_ms=)` gives
the `Incident`: the site to run from `start_ms`, the incident's start (after the scenario's
quiet lead), the expected alerts, how long to watch, and when the site is back to normal.

Deadlines are the rule's own delay plus two reporting periods (a reading may be sent late by
up to one) plus `SLACK_S` for the runner's step, the broker and the evaluator on a busy machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulators.signals import F64, I64, key_of, normal
from simulators.sites import DustPlant, OpenPit, SiteSim, TankFarm, UndergroundMine
from simulators.sites.base import OFFLINE_RULE, ValueFn
from simulators.sites.mine import RAMP, SHAFT
from simulators.truth import Expected

SLACK_S = 5.0
LEAD_S = 5.0


@dataclass(frozen=True, slots=True)
class Incident:
    scenario: str
    sim: SiteSim
    start_ms: int  # the incident starts; deadlines count from here
    expected: list[Expected]
    check_s: float  # after start_ms: every expected alert is due, and unexpected ones are looked for
    recover_s: float  # after start_ms: the site is back to normal and the conditions have cleared


Make = Callable[[str, int, int], Incident]
"""(site code, seed, incident start) → the incident."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    lead_s: float  # quiet running before the incident (windows fill, points report)
    make: Make
    summary: str


def _due(cross_s: float, period_s: float, delay_s: float = 0.0) -> float:
    """The deadline of an alert whose condition starts `cross_s` after the incident."""
    return round(cross_s + delay_s + 2 * period_s + SLACK_S, 1)


def _ramp(at_ms: int, per_s: float, top: float, hold_s: float, fall_s: float) -> ValueFn:
    """Normal values plus a rise of `per_s` a second up to `top`, held, then falling back to nothing."""

    def fn(ts: I64, values: F64) -> F64:
        tau = (ts - at_ms) / 1000.0
        rise = np.minimum(per_s * tau, top)
        fall = np.clip(1.0 - (tau - hold_s) / fall_s, 0.0, 1.0)
        return np.round(values + rise * fall, 1)

    return fn


def gas_leak(site: str, seed: int, at_ms: int) -> Incident:
    """A tank farm's combustible gas detector GT-01 sees a leak rising at 3 %LEL/s to 60 %LEL
    (level 1 at 25 yellow, level 2 at 50 orange, latched), then isolated: it falls back within
    50 s, and the alert stays latched until an operator resets it."""
    sim = TankFarm(site, seed=seed)
    gas = sim.point("GT-01")
    per_s, base = 3.0, 1.5
    sim.override(gas.code, at_ms, at_ms + 50_000, _ramp(at_ms, per_s, 60.0, 35.0, 15.0))
    cross = [(25 - base) / per_s + 1, (50 - base) / per_s + 1]  # + 1 s for the detector's noise
    expected = [
        Expected(site, "point", gas.code, "threshold", severity, _due(c, gas.period_s))
        for severity, c in zip((2, 3), cross, strict=True)
    ]
    return Incident("gas_leak", sim, at_ms, expected, check_s=35, recover_s=50)


CREW = 11


def crowding(site: str, seed: int, at_ms: int) -> Incident:
    """A visiting crew of 11 goes down the mine and into the high-risk working face WF-1, one
    every 1.5 s, on top of the face's own crew (at most 6): the warning at 8 people (yellow),
    the alarm at 10 (red); the crew leaves 30 s later."""
    sim = UndergroundMine(site, seed=seed)
    crew = [f"C-{i + 1:02d}" for i in range(CREW)]
    sim.tags += [{"code": tag, "person": f"外委施工队 {tag}"} for tag in crew]
    moves: list[tuple[int, str, str | None]] = []
    for i, tag in enumerate(crew):
        moves += [(at_ms - 8000 + 200 * i, tag, SHAFT), (at_ms - 4000 + 200 * i, tag, RAMP)]
        moves += [(at_ms + 1500 * i, tag, "WF-1"), (at_ms + 30_000 + 500 * i, tag, RAMP)]
        moves += [(at_ms + 38_000 + 500 * i, tag, SHAFT), (at_ms + 44_000 + 500 * i, tag, None)]
    sim.schedule(moves)
    # with nobody of its own at the face, the 8th crew member warns and the 10th alarms
    expected = [
        Expected(site, "zone", "WF-1", "headcount", 2, _due(1.5 * 7, 0)),
        Expected(site, "zone", "WF-1", "headcount", 4, _due(1.5 * 9, 0)),
    ]
    return Incident("crowding", sim, at_ms, expected, check_s=25, recover_s=55)


TIME_LAPSE = 7200
"""slope_failure runs a slope in time-lapse: one second stands for two hours."""
WINDOW_S = 24 * 3600 / TIME_LAPSE  # the default 24 h window → 12 s
STEADY_MM_D = 2.0 * TIME_LAPSE  # a 2 mm/d constant stage → 14,400 mm/d
SLOPE_STAGES = ((0.0, 1.0), (10.0, 2.5), (16.0, 7.5), (23.0, 20.0), (30.0, 0.3))
"""(seconds after the incident, velocity in steady rates): constant (45°), initial acceleration
(68°), medium acceleration (82.4°), imminent failure (87.1°), then the slope has slid and what
remains creeps again. Before the incident it creeps at 0.3 (16.7°, no alert)."""
CREEP = 0.3


def slope_displacement(at_ms: int, stages: tuple[tuple[float, float], ...] = SLOPE_STAGES) -> Callable[[I64], F64]:
    """Cumulative displacement (mm) of the time-lapse slope: piecewise constant velocities."""
    per_ms = STEADY_MM_D / 86_400_000
    knots = [at_ms + round(s * 1000) for s, _ in stages]
    speeds = [CREEP] + [v for _, v in stages]
    heights = np.cumsum([0.0] + [speeds[i] * per_ms * (knots[i] - knots[i - 1]) for i in range(1, len(knots))])

    def disp(ts: I64) -> F64:
        i = np.searchsorted(knots, ts, side="right")  # the stage holding ts (0: before the incident)
        since = ts - np.array([knots[0], *knots], np.int64)[i]
        at_knot = np.array([0.0, *heights])[i]
        return at_knot + np.array(speeds)[i] * per_ms * since

    return disp


def slope_failure(site: str, seed: int, at_ms: int) -> Incident:
    """An open pit's prism GNSS-01, in time-lapse (1 s = 2 h, window 12 s for 24 h, steady rate
    14,400 mm/d for 2 mm/d), goes from creep through the improved tangent angle's four stages:
    constant velocity (45°, blue), initial acceleration (yellow), medium acceleration (≥ 80°,
    orange) and imminent failure (≥ 85°, red), then slides and creeps again. Its rule isolates
    the tangent angle: rate and acceleration levels are set out of reach (the first
    acceleration level, scaled, only adds the failure forecast). The day is dry."""
    sim = OpenPit(site, seed=seed)
    prism = sim.point("GNSS-01")
    window_h = WINDOW_S / 3600
    rule = {
        "rule": "slope_trend",
        "window_h": window_h,
        "steady_rate_mm_d": STEADY_MM_D,
        "rate_mm_d": [1e12, 2e12, 3e12, 4e12],
        "accel_mm_d2": [2e8, 1e18, 2e18, 3e18],
    }
    period = 0.5
    sim.tune(prism.code, period_s=period, rules=[rule, {"rule": "offline", "factor": 12}])
    disp = slope_displacement(at_ms)
    noise_key = key_of(seed, site, prism.code, "time-lapse")

    def timelapse(ts: I64, _normal: F64) -> F64:
        return np.round(25.0 + disp(ts) + 0.005 * normal(noise_key, ts), 3)

    sim.override(prism.code, None, None, timelapse)
    sim.override("RG-1", None, None, lambda ts, _v: np.zeros(len(ts)))
    half = WINDOW_S / 2
    starts = [s for s, _ in SLOPE_STAGES]
    expected = [
        Expected(site, "point", prism.code, "slope_trend", 1, _due(half, period)),
        Expected(site, "point", prism.code, "slope_trend", 2, _due(starts[1] + 2, period)),
        Expected(site, "point", prism.code, "slope_trend", 3, _due(starts[2] + half, period)),
        Expected(site, "point", prism.code, "slope_trend", 4, _due(starts[3] + half, period)),
    ]
    return Incident("slope_failure", sim, at_ms, expected, check_s=36, recover_s=starts[4] + WINDOW_S + 6)


def _steps(at_ms: int, changes: list[tuple[float, float]], before: float) -> ValueFn:
    """A digital state: `before`, then each (seconds after the incident, value) in turn."""
    times = np.array([at_ms + round(s * 1000) for s, _ in changes], np.int64)
    levels = np.array([before, *(v for _, v in changes)])

    def fn(ts: I64, _values: F64) -> F64:
        result: F64 = levels[np.searchsorted(times, ts, side="right")]
        return result

    return fn


def valve_fail(site: str, seed: int, at_ms: int) -> Incident:
    """A tank's emergency shutoff valve ESV-01 is commanded closed and its feedback stays open
    (stroke time tuned to 10 s): a stroke timeout (orange). Maintenance frees it after 25 s, it
    closes; 10 s later it is commanded open again and follows in 4 s."""
    sim = TankFarm(site, seed=seed)
    command, feedback = sim.point("ESV-01.CMD"), sim.point("ESV-01.FB")
    stroke = 10.0
    sim.tune(feedback.code, rules=[{"rule": "valve_mismatch", "stroke_s": stroke}, OFFLINE_RULE])
    sim.override(command.code, None, None, _steps(at_ms, [(0, 1), (35, 0)], 0))
    sim.override(feedback.code, None, None, _steps(at_ms, [(25, 1), (39, 0)], 0))
    expected = [Expected(site, "point", feedback.code, "valve_mismatch", 3, _due(stroke, command.period_s))]
    return Incident("valve_fail", sim, at_ms, expected, check_s=22, recover_s=45)


def dust_filter(site: str, seed: int, at_ms: int) -> Incident:
    """A dust collector's filter clogs: DC-1's differential pressure climbs 60 Pa/s from about
    1,050 Pa past 1,500 (yellow) and 1,800 Pa (orange), each held for the on-delay (tuned to
    5 s, reported every 2 s); the bags are cleaned after 40 s."""
    sim = DustPlant(site, seed=seed)
    dp = sim.point("DC-1.DP")
    on_delay, period = 5.0, 2.0
    rule = {"rule": "threshold", "above": [1500, 1800], "below": [300], "deadband": 50, "for_s": on_delay}
    sim.tune(dp.code, period_s=period, rules=[rule, OFFLINE_RULE, {"rule": "frozen"}])
    sim.override(dp.code, at_ms, at_ms + 40_000, _ramp(at_ms, 60.0, 950.0, 40.0, 1.0))
    low = 925.0  # the bottom of the normal saw-tooth
    expected = [
        Expected(site, "point", dp.code, "threshold", severity, _due((level - low) / 60, period, on_delay))
        for severity, level in ((2, 1500), (3, 1800))
    ]
    return Incident("dust_filter", sim, at_ms, expected, check_s=32, recover_s=45)


SPARKS_S = (0.2, 3.2, 6.2)


def spark_burst(site: str, seed: int, at_ms: int) -> Incident:
    """DC-1's spark detector sees three sparks 3 s apart: the first alarms at once (orange), the
    third within the window escalates (red). The window is tuned to 30 s, after which the
    alert clears."""
    sim = DustPlant(site, seed=seed)
    spark = sim.point("DC-1.SP")
    window = 30.0
    sim.tune(spark.code, rules=[{"rule": "dust", "check": "spark", "window_s": window, "repeat": 3}, OFFLINE_RULE])
    times = np.array([at_ms + round(s * 1000) for s in SPARKS_S], np.int64)
    period_ms = round(spark.period_s * 1000)

    def sparks(ts: I64, _values: F64) -> F64:
        counts = np.searchsorted(times, ts, side="right") - np.searchsorted(times, ts - period_ms, side="right")
        return counts.astype(np.float64)

    sim.override(spark.code, None, None, sparks)
    expected = [
        Expected(site, "point", spark.code, "dust", 3, _due(SPARKS_S[0], spark.period_s / 2)),
        Expected(site, "point", spark.code, "dust", 4, _due(SPARKS_S[2], spark.period_s / 2)),
    ]
    return Incident("spark_burst", sim, at_ms, expected, check_s=16, recover_s=SPARKS_S[-1] + window + 4)


def gateway_death(site: str, seed: int, at_ms: int) -> Incident:
    """The tank farm's instrument gateway GW-TANK loses power: its connection drops without a
    goodbye, the broker publishes its last will, and one orange gateway-offline alert stands for
    all its points. It comes back 20 s later (online status). The will covers the points last
    heard through the gateway: the lead lets every point report first (its slowest reports
    every 10 s, maybe late by a period)."""
    sim = TankFarm(site, seed=seed)
    sim.outage("GW-TANK", at_ms, at_ms + 20_000)
    expected = [Expected(site, "gateway", "GW-TANK", "offline", 3, SLACK_S)]
    return Incident("gateway_death", sim, at_ms, expected, check_s=10, recover_s=25)


def _power_rules(**tuned: float) -> list[dict[str, object]]:
    """A power meter's default rules with the site rules' on-delays tuned."""
    return [
        {"rule": "stopped_but_running", "for_s": tuned.get("stopped_s", 900.0)},
        {"rule": "fake_offline", "for_s": tuned.get("fake_s", 900.0)},
        OFFLINE_RULE,
        {"rule": "frozen", "except_values": [0]},
    ]


def stopped_power(site: str, seed: int, at_ms: int) -> Incident:
    """A tank farm declared `stopped` (idle draw about 35 kW, baseline 80 kW) secretly runs its
    pumps: 380 kW, above 3 × baseline, for 30 s; stopped-but-running (明停暗开, orange) after the
    on-delay, tuned to 10 s (power reported every 2 s)."""
    sim = TankFarm(site, seed=seed, state="stopped")
    meter = sim.point("PM-1")
    on_delay, period = 10.0, 2.0
    sim.tune(meter.code, period_s=period, rules=_power_rules(stopped_s=on_delay))
    sim.override(meter.code, at_ms, at_ms + 30_000, lambda ts, v: np.round(v - 35.0 + 380.0, 1))
    expected = [Expected(site, "site", site, "stopped_but_running", 3, _due(0, period, on_delay))]
    return Incident("stopped_power", sim, at_ms, expected, check_s=22, recover_s=32)


def fake_offline(site: str, seed: int, at_ms: int) -> Incident:
    """A one-collector dust plant's monitoring gateway stops sending (the upload is cut, the
    connection stays up) while its power meter shows production (420 kW, 3 × 60 kW baseline):
    every monitoring point goes offline (yellow, after 3 periods of 2 s), then fake offline
    (虚假离线, orange) after the on-delay, tuned to 10 s. Data flows again after 30 s."""
    sim = DustPlant(site, seed=seed, collectors=1)
    on_delay, period = 10.0, 2.0
    monitoring = [p for p in sim.points if p.gateway == "GW-DUST"]
    for p in monitoring:
        sim.tune(p.code, period_s=period)
    sim.tune("PM-1", rules=_power_rules(fake_s=on_delay))
    sim.mute("GW-DUST", at_ms, at_ms + 30_000)
    silent = 3 * period
    expected = [Expected(site, "point", p.code, "offline", 2, _due(silent, 0)) for p in monitoring]
    expected.append(Expected(site, "site", site, "fake_offline", 3, _due(silent, 0, on_delay)))
    return Incident("fake_offline", sim, at_ms, expected, check_s=24, recover_s=34)


class _Freeze:
    """The value of the first sample it sees, ever after (a transmitter stuck on one reading)."""

    def __init__(self) -> None:
        self.value = math.nan

    def __call__(self, ts: I64, values: F64) -> F64:
        if math.isnan(self.value):
            self.value = float(values[0])
        return np.full(len(ts), self.value)


def frozen_sensor(site: str, seed: int, at_ms: int) -> Incident:
    """A tank's temperature transmitter TK-01.TT sticks on one value for 40 s; the frozen-value
    rule, tuned to 15 s (reported every 2 s), flags it (blue) and clears when it moves again."""
    sim = TankFarm(site, seed=seed)
    point = sim.point("TK-01.TT")
    frozen_s, period = 15.0, 2.0
    rules = [{"rule": "threshold", "above": [40, 50], "deadband": 1}, OFFLINE_RULE]
    sim.tune(point.code, period_s=period, rules=[*rules, {"rule": "frozen", "frozen_s": frozen_s}])
    sim.override(point.code, at_ms, at_ms + 40_000, _Freeze())
    expected = [Expected(site, "point", point.code, "frozen", 1, _due(frozen_s + period, period))]
    return Incident("frozen_sensor", sim, at_ms, expected, check_s=28, recover_s=44)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("gas_leak", LEAD_S, gas_leak, "gas rising through both levels (yellow, orange), latched"),
        Scenario("crowding", 10.0, crowding, "11 people in a high-risk face: warning at 8, alarm at 10"),
        Scenario("slope_failure", WINDOW_S + 4, slope_failure, "a slope through the 4 tangent-angle stages"),
        Scenario("valve_fail", LEAD_S, valve_fail, "a shutoff valve that fails to close: stroke timeout"),
        Scenario("dust_filter", LEAD_S, dust_filter, "a clogged dust filter: differential pressure high, higher"),
        Scenario("spark_burst", LEAD_S, spark_burst, "three sparks: alarm, then escalation"),
        Scenario("gateway_death", 22.0, gateway_death, "a gateway dies: its last will, one gateway alert"),
        Scenario("stopped_power", LEAD_S, stopped_power, "a stopped site drawing production power (明停暗开)"),
        Scenario("fake_offline", LEAD_S, fake_offline, "monitoring silent while power shows production (虚假离线)"),
        Scenario("frozen_sensor", LEAD_S, frozen_sensor, "a transmitter stuck on one value"),
    )
}


def make(name: str, site: str, *, seed: int = 0, start_ms: int) -> Incident:
    """Scenario `name` on a new site `site` that starts running at `start_ms`."""
    scenario = SCENARIOS[name]
    return scenario.make(site, seed, start_ms + round(scenario.lead_s * 1000))
