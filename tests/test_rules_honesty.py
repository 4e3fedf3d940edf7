"""The data-honesty family (offline, frozen, stopped_but_running, fake_offline): hand-computed cases
on both implementations, and properties: the vectorised family equal to the per-reading oracle on
random streams with late data, ticks, gateway status and catalog changes, and one batch equal to
the same readings split into batches at time cuts."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.catalog.defaults import default_rules
from sitewatch.catalog.rules import point_rule
from sitewatch.rules.base import PointInfo, Readings, RuleCatalog, Signal, SiteInfo
from sitewatch.rules.honesty import Honesty, signal_order
from sitewatch.rules.reference.honesty import Honesty as Reference

T0 = 1_795_310_100_000
MIN = 60_000
Family = Honesty | Reference
IMPLEMENTATIONS = pytest.mark.parametrize("impl", [Honesty, Reference], ids=["vectorised", "reference"])
settings.register_profile("honesty", derandomize=True, deadline=None, max_examples=150)
PROFILE = settings.get_profile("honesty")

Row = tuple[int, int, float] | tuple[int, int, float, int] | tuple[int, int, float, int, int]
"""(point, ms after T0, value[, quality[, gateway]])."""


def rule(name: str, **params: Any) -> dict[str, Any]:
    """A rule as the catalog stores it, every default filled in."""
    return point_rule.validate_python({"rule": name, **params}).model_dump(mode="json")


def defaults(kind: str, unit: str = "") -> tuple[dict[str, Any], ...]:
    return tuple(point_rule.validate_python(r).model_dump(mode="json") for r in default_rules(kind, unit))


def point(pid: int, code: str, kind: str, unit: str = "", period_s: float = 10.0, site: int = 1,
          rules: tuple[dict[str, Any], ...] | None = None) -> PointInfo:  # fmt: skip
    return PointInfo(pid, site, code, kind, unit, period_s, None, defaults(kind, unit) if rules is None else rules)


def catalog(points: list[PointInfo], *sites: SiteInfo) -> RuleCatalog:
    sites = sites or (SiteInfo(1, "MINE-A", "open_pit"),)
    return RuleCatalog({s.id: s for s in sites}, {}, {p.id: p for p in points})


def family(impl: Callable[[], Family], points: list[PointInfo], *sites: SiteInfo) -> Family:
    f = impl()
    f.load(catalog(points, *sites))
    return f


def batch(*rows: Row) -> Readings:
    full = sorted(((*r, 0, 0)[:5] for r in rows), key=lambda r: (r[0], r[1]))
    return Readings(
        np.array([r[0] for r in full], dtype=np.int32),
        np.array([T0 + r[1] for r in full], dtype=np.int64),
        np.array([r[2] for r in full], dtype=np.float64),
        np.array([r[3] for r in full], dtype=np.int16),
        np.array([r[4] for r in full], dtype=np.int32),
    )


def brief(signals: list[Signal]) -> list[tuple[str, str, int, int]]:
    """(rule, source, severity, ms after T0) of each signal."""
    return [(s.rule, s.source_code, s.severity, s.ts_ms - T0) for s in signals]


# Hand-computed cases, on both implementations.

GENERIC = rule("offline")  # 3 × period_s


@IMPLEMENTATIONS
def test_offline_fires_at_its_due_time_and_clears_at_the_next_reading(impl: Callable[[], Family]) -> None:
    f = family(impl, [point(0, "FAN-1", "generic", rules=(GENERIC,))])
    assert f.on_readings(batch((0, 0, 1.0))) == []
    assert f.tick(T0 + 29_999) == []
    got = f.tick(T0 + 45_000)
    assert brief(got) == [("offline", "FAN-1", 2, 30_000)]  # at its due time, not at the tick
    assert got[0].kind == "point_offline" and got[0].source_type == "point"
    assert f.tick(T0 + 90_000) == []
    assert brief(f.on_readings(batch((0, 50_000, 1.0)))) == [("offline", "FAN-1", 0, 50_000)]


@IMPLEMENTATIONS
def test_a_point_that_never_reported_times_from_the_first_tick(impl: Callable[[], Family]) -> None:
    f = family(impl, [point(0, "FAN-1", "generic", rules=(GENERIC,))])
    assert f.tick(T0) == []
    assert f.tick(T0 + 29_999) == []
    assert brief(f.tick(T0 + 30_000)) == [("offline", "FAN-1", 2, 30_000)]


@IMPLEMENTATIONS
def test_bad_quality_proves_alive_but_older_readings_do_not(impl: Callable[[], Family]) -> None:
    f = family(impl, [point(0, "FAN-1", "generic", rules=(GENERIC,))])
    f.on_readings(batch((0, 0, 1.0)))
    assert brief(f.tick(T0 + 31_000)) == [("offline", "FAN-1", 2, 30_000)]
    assert f.on_readings(batch((0, 20_000, 1.0))) == []  # in flight before the outage began
    assert brief(f.on_readings(batch((0, 40_000, 1.0, 2)))) == [("offline", "FAN-1", 0, 40_000)]
    assert f.tick(T0 + 65_000) == []  # due at 70 s
    assert brief(f.tick(T0 + 70_000)) == [("offline", "FAN-1", 2, 70_000)]
    assert f.on_readings(batch((0, 35_000, 1.0))) == []  # late: older than its latest reading


@IMPLEMENTATIONS
def test_a_point_without_an_offline_rule_goes_silent_quietly(impl: Callable[[], Family]) -> None:
    f = family(impl, [point(0, "SP-1", "spark", rules=())])
    f.on_readings(batch((0, 0, 1.0)))
    assert f.tick(T0 + 10 * MIN) == []
    assert f.on_readings(batch((0, 11 * MIN, 1.0))) == []


GATEWAY_POINTS = [point(i, f"P{i}", "generic", rules=(GENERIC,)) for i in range(4)]


@IMPLEMENTATIONS
def test_a_gateway_dying_marks_all_its_points_offline_at_once(impl: Callable[[], Family]) -> None:
    f = family(impl, GATEWAY_POINTS)
    f.on_readings(batch((0, 0, 1.0, 0, 0), (1, 0, 1.0, 0, 0), (2, 0, 1.0, 0, 0), (3, 0, 1.0, 0, 1)))
    got = f.on_status(1, "GW-A", 0, False, T0 + 5_000)
    assert brief(got) == [("offline", "GW-A", 3, 5_000)]
    assert got[0].source_type == "gateway" and got[0].kind == "gateway_offline" and got[0].value == 3
    assert f.on_status(1, "GW-A", 0, False, T0 + 6_000) == []  # the retained will again
    # Only the point of the other gateway goes offline on its own: the gateway alert stands for the rest.
    assert brief(f.tick(T0 + 60_000)) == [("offline", "P3", 2, 30_000)]
    assert f.on_status(1, "GW-A", 0, True, T0 + 4_000) == []  # older than the will
    assert brief(f.on_status(1, "GW-A", 0, True, T0 + 70_000)) == [("offline", "GW-A", 0, 70_000)]
    # Its points are re-armed when it comes back; those that stay silent go offline on their own.
    assert brief(f.on_readings(batch((0, 75_000, 1.0, 0, 0)))) == []
    assert f.tick(T0 + 99_999) == []
    assert brief(f.tick(T0 + 100_000)) == [("offline", "P1", 2, 100_000), ("offline", "P2", 2, 100_000)]


@IMPLEMENTATIONS
def test_a_reading_through_a_dead_gateway_brings_it_back(impl: Callable[[], Family]) -> None:
    f = family(impl, GATEWAY_POINTS)
    f.on_readings(batch((0, 0, 1.0, 0, 0), (1, 0, 1.0, 0, 0), (2, 0, 1.0, 0, 7)))
    f.on_status(1, "GW-A", 0, False, T0 + 5_000)
    assert f.on_readings(batch((1, 3_000, 1.0, 0, 0))) == []  # sent before the will
    assert f.on_readings(batch((1, 8_000, 1.0, 0, 7))) == []  # P1 is back through another gateway
    got = f.on_readings(batch((0, 9_000, 1.0, 2, 0), (1, 6_000, 1.0, 0, 0)))  # P1's reading is late
    assert brief(got) == [("offline", "GW-A", 0, 9_000)]


FROZEN = (rule("frozen", frozen_s=7200), rule("offline"))


@IMPLEMENTATIONS
def test_a_frozen_sensor(impl: Callable[[], Family]) -> None:
    f = family(impl, [point(0, "LT-1", "generic", "%", 600.0, rules=FROZEN)])
    steady = [(0, k * 600_000, 12.5) for k in range(13)]  # 0 … 7200 s: a span of 2 h, not more
    assert f.on_readings(batch(*steady, (0, 7_500_000, 99.0, 2))) == []  # a bad reading is no value
    got = f.on_readings(batch((0, 7_800_000, 12.5)))
    assert brief(got) == [("frozen", "LT-1", 1, 7_800_000)]
    assert got[0].value == 12.5 and got[0].message == "LT-1 数值冻结 frozen value 12.5 % for 7800 s > 7200 s"
    assert f.on_readings(batch((0, 8_400_000, 12.5))) == []
    assert brief(f.on_readings(batch((0, 9_000_000, 12.6), (0, 9_600_000, 12.6)))) == [("frozen", "LT-1", 0, 9_000_000)]


@IMPLEMENTATIONS
def test_a_dry_rain_gauge_is_not_frozen(impl: Callable[[], Family]) -> None:
    f = family(impl, [point(0, "RG-1", "rainfall", "mm/h", 60.0)])
    assert f.on_readings(batch(*[(0, k * MIN, 0.0) for k in range(200)])) == []
    got = f.on_readings(batch(*[(0, (200 + k) * MIN, 0.5) for k in range(200)]))
    assert brief(got) == [("frozen", "RG-1", 1, 321 * MIN)]


POWER = [point(0, "PW-1", "power_kw", "kW"), point(1, "PW-2", "power_kw", "kW"), point(2, "GT-1", "gas_lel", "%LEL")]
STOPPED = SiteInfo(1, "MINE-A", "open_pit", state="stopped", power_baseline_kw=10.0)  # production: > 30 kW


def power(t: int, *kw: float) -> Readings:
    return batch(*[(i, t, v) for i, v in enumerate(kw)], (2, t, t / MIN))


@IMPLEMENTATIONS
def test_a_stopped_site_drawing_power_for_15_min(impl: Callable[[], Family]) -> None:
    f = family(impl, POWER, STOPPED)
    signals = []
    for minute in range(20):
        signals += f.on_readings(power(minute * MIN, 20.0, 20.0 if minute < 17 else 5.0))
        signals += f.tick(T0 + minute * MIN + 100)
    assert brief(signals) == [
        ("stopped_but_running", "MINE-A", 3, 15 * MIN),
        ("stopped_but_running", "MINE-A", 0, 17 * MIN),
    ]
    raised = signals[0]
    assert raised.source_type == "site" and raised.value == 40.0
    assert raised.message == "MINE-A 明停暗开 stopped but running (stopped): 40 kW > 3 × 10 kW for 900 s"


@IMPLEMENTATIONS
def test_an_on_delay_that_matured_between_ticks_raises_before_it_clears(impl: Callable[[], Family]) -> None:
    f = family(impl, POWER, STOPPED)
    got = f.on_readings(batch((0, 0, 40.0), (0, 10 * MIN, 50.0), (0, 16 * MIN, 1.0)))
    assert brief(got) == [
        ("stopped_but_running", "MINE-A", 3, 15 * MIN),
        ("stopped_but_running", "MINE-A", 0, 16 * MIN),
    ]
    assert got[0].value == 50.0  # the power just before it ended
    assert f.on_readings(batch((0, 17 * MIN, 40.0), (0, 31 * MIN, 10.0))) == []  # 14 min only
    assert [s.source_type for s in f.tick(T0 + 60 * MIN)] == ["point"]  # PW-1 offline, nothing more


@IMPLEMENTATIONS
def test_an_operating_site_or_one_without_a_baseline_is_not_stopped_but_running(impl: Callable[[], Family]) -> None:
    for site in (
        SiteInfo(1, "MINE-A", "open_pit", power_baseline_kw=10.0),
        SiteInfo(1, "MINE-A", "open_pit", state="stopped"),
    ):
        f = family(impl, POWER, site)
        assert f.on_readings(batch((0, 0, 400.0), (0, 30 * MIN, 400.0))) == []
        assert f.tick(T0 + 30 * MIN) == []


FAKE = [
    point(0, "PW-1", "power_kw", "kW", 10.0),
    point(1, "GT-1", "gas_lel", "%LEL", 5.0),
    point(2, "FAN-1", "fan_running", period_s=10.0),
]
OPERATING = SiteInfo(1, "MINE-A", "open_pit", power_baseline_kw=10.0)
GW_MONITORS, GW_POWER = 0, 1


@IMPLEMENTATIONS
def test_a_fake_offline_site(impl: Callable[[], Family]) -> None:
    f = family(impl, FAKE, OPERATING)
    f.tick(T0)
    signals = f.on_readings(batch((1, 0, 1.0, 0, GW_MONITORS), (2, 0, 1.0, 0, GW_MONITORS)))
    signals += f.on_status(1, "GW-M", GW_MONITORS, False, T0 + 20_000)
    for k in range(100):  # the power meter keeps reporting production every 10 s
        signals += f.on_readings(batch((0, k * 10_000, 50.0, 0, GW_POWER)))
        signals += f.tick(T0 + k * 10_000 + 100)
    signals += f.on_readings(batch((1, 995_000, 1.0, 0, GW_MONITORS)))
    assert brief(signals) == [
        ("offline", "GW-M", 3, 20_000),
        ("fake_offline", "MINE-A", 3, 920_000),
        ("offline", "GW-M", 0, 995_000),
        ("fake_offline", "MINE-A", 0, 995_000),
    ]
    assert signals[1].message == "MINE-A 虚假离线 fake offline: 2 monitoring points silent, 50 kW > 3 × 10 kW for 900 s"


@IMPLEMENTATIONS
def test_fake_offline_by_timers_and_cleared_when_the_power_data_goes_silent_too(impl: Callable[[], Family]) -> None:
    f = family(impl, FAKE, OPERATING)
    f.tick(T0)
    signals = f.on_readings(batch((0, 0, 50.0), (1, 0, 1.0), (2, 0, 1.0)))
    for k in range(1, 100):
        signals += f.on_readings(batch((0, k * 10_000, 50.0)))
        signals += f.tick(T0 + k * 10_000 + 100)
    signals += f.tick(T0 + 1_100_000)
    assert brief(signals) == [
        ("offline", "GT-1", 2, 15_000),
        ("offline", "FAN-1", 2, 30_000),  # every monitoring point is silent from here
        ("fake_offline", "MINE-A", 3, 930_000),
        ("offline", "PW-1", 2, 1_020_000),
        ("fake_offline", "MINE-A", 0, 1_020_000),
    ]


@IMPLEMENTATIONS
def test_a_silent_site_is_offline_not_fake_offline(impl: Callable[[], Family]) -> None:
    f = family(impl, FAKE, OPERATING)
    f.on_readings(batch((0, 0, 50.0, 0, 0), (1, 0, 1.0, 0, 0), (2, 0, 1.0, 0, 0)))
    assert brief(f.on_status(1, "GW", 0, False, T0 + 1_000)) == [("offline", "GW", 3, 1_000)]
    assert f.tick(T0 + 60 * MIN) == []


@IMPLEMENTATIONS
def test_load_keeps_state_and_applies_a_new_site_state_at_the_next_tick(impl: Callable[[], Family]) -> None:
    f = family(impl, POWER, OPERATING)
    f.tick(T0)
    f.on_readings(batch((0, 0, 40.0), (2, 0, 1.0)))
    assert [s.source_code for s in f.tick(T0 + 60_000)] == ["GT-1", "PW-1", "PW-2"]  # all offline at 30 s
    renumbered = [point(5, "GT-1", "gas_lel", "%LEL"), point(7, "PW-1", "power_kw", "kW")]
    f.load(catalog(renumbered, STOPPED))
    assert f.tick(T0 + 100_000) == []  # stays offline: no second raise; stopped from now
    assert brief(f.on_readings(batch((5, 110_000, 1.0)))) == [("offline", "GT-1", 0, 110_000)]
    assert brief(f.tick(T0 + 1_000_000)) == [
        ("offline", "GT-1", 2, 140_000),
        ("stopped_but_running", "MINE-A", 3, 1_000_000),
    ]
    f.load(catalog(renumbered, OPERATING))
    assert brief(f.tick(T0 + 1_000_500)) == [("stopped_but_running", "MINE-A", 0, 1_000_500)]


# Properties.

SITES = (
    SiteInfo(1, "S1", "open_pit", state="stopped", power_baseline_kw=5.0),
    SiteInfo(2, "S2", "dust_plant", state="rectification"),
)
PROPERTY_POINTS = [
    point(0, "PW-1", "power_kw", "kW", 1.0, rules=(rule("stopped_but_running", for_s=5), rule("fake_offline", for_s=3),
                                                    rule("offline"), rule("frozen", frozen_s=4, except_values=[0]))),
    point(1, "PW-2", "power_kw", "kW", 2.0, rules=(rule("offline"),)),
    point(2, "A-1", "generic", "", 1.0, rules=(rule("offline"), rule("frozen", frozen_s=3))),
    point(3, "A-2", "generic", "", 2.0, rules=()),
    point(4, "A-3", "generic", "", 1.0, rules=(rule("offline", factor=2),)),
    point(5, "PW-3", "power_kw", "kW", 1.0, site=2, rules=(rule("fake_offline", for_s=0),
                                                            rule("stopped_but_running", for_s=2, baseline_kw=4))),
    point(6, "B-1", "generic", "", 1.0, site=2, rules=(rule("offline"), rule("frozen", frozen_s=2))),
    point(7, "B-2", "generic", "", 3.0, site=2, rules=(rule("frozen", frozen_s=2, except_values=[5]),)),
]  # fmt: skip
CATALOGS = [
    catalog(PROPERTY_POINTS, *SITES),
    catalog(PROPERTY_POINTS[:7], SiteInfo(1, "S1", "open_pit", power_baseline_kw=3.0),
            SiteInfo(2, "S2", "dust_plant", state="stopped", power_baseline_kw=2.0)),
    catalog([PointInfo(9 - p.id, p.site_id, p.code, p.kind, p.unit, p.period_s * 2, None, p.rules)
             for p in PROPERTY_POINTS if p.id != 3], *SITES),
]  # fmt: skip
KEYS = [(p.site_id, p.code) for p in PROPERTY_POINTS]
IDS = [{(p.site_id, p.code): p.id for p in c.points.values()} for c in CATALOGS]  # per catalog: key → id
VALUES = [0.0, 4.0, 5.0, 6.0, 12.0, 20.0]
STEP = 250  # ms: times on a coarse grid, so that equal times and exact spans are common
Op = tuple[str, Any]  # ("read", rows), ("tick", ms), ("status", (gateway, online, ms)), ("load", index)


Reading = tuple[int, int, float, int, int]  # (index in KEYS, ms after T0, value, quality, gateway)


@st.composite
def rows(draw: st.DrawFn, now: int, late: int, n: int = 14) -> list[Reading]:
    """Up to n readings from `late` ms before `now` to 500 ms after. Drawn from a seeded generator:
    drawing every field through hypothesis would cost more than the test itself."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    return [
        (
            rng.randrange(len(KEYS)),
            now - STEP * rng.randint(-2, late // STEP),
            rng.choice(VALUES),
            rng.choice([0, 0, 0, 1, 2]),
            rng.randrange(3),
        )
        for _ in range(draw(st.integers(0, n)))
    ]


@st.composite
def operations(draw: st.DrawFn, loads: bool = True) -> list[Op]:
    ops: list[Op] = [("load", draw(st.integers(0, len(CATALOGS) - 1)))]
    now = 0
    for _ in range(draw(st.integers(1, 30))):
        now += STEP * draw(st.integers(0, 10))
        op = draw(st.sampled_from(["read"] * 4 + ["tick"] * 2 + ["status"] + (["load"] if loads else [])))
        if op == "read":
            ops.append(("read", draw(rows(now, late=4000))))
        elif op == "tick":
            ops.append(("tick", now))
        elif op == "status":
            ops.append(("status", (draw(st.integers(0, 2)), draw(st.booleans()), now - STEP * draw(st.integers(0, 6)))))
        else:
            ops.append(("load", draw(st.integers(0, len(CATALOGS) - 1))))
    return ops


class Driver:
    """Runs operations on one family, mapping point keys to the current catalog's ids."""

    def __init__(self, f: Family) -> None:
        self.f, self.ids = f, IDS[0]

    def __call__(self, op: Op) -> list[Signal]:
        kind, arg = op
        if kind == "load":
            self.f.load(CATALOGS[arg])
            self.ids = IDS[arg]
            return []
        if kind == "tick":
            return self.f.tick(T0 + arg)
        if kind == "status":
            g, online, t = arg
            return self.f.on_status(1, f"GW-{g}", g, online, T0 + t)
        known = [(self.ids[KEYS[k]], t, v, q, g) for k, t, v, q, g in arg if KEYS[k] in self.ids]
        return self.f.on_readings(batch(*known))


@PROFILE
@given(operations())
def test_vectorised_equals_reference(ops: list[Op]) -> None:
    fast, ref = Driver(Honesty()), Driver(Reference())
    for op in ops:
        assert fast(op) == ref(op), op


@settings(PROFILE, max_examples=100)
@given(operations(loads=False), rows(5000, late=5000, n=40), st.lists(st.integers(0, 5000), max_size=4))
def test_one_batch_equals_the_same_readings_split_at_time_cuts(
    history: list[Op], stream: list[Reading], cuts: list[int]
) -> None:
    for impl in (Honesty, Reference):
        whole = Driver(impl())
        for op in history:
            whole(op)
        split = copy.deepcopy(whole)
        shifted = [(k, t + 80_000, v, q, g) for k, t, v, q, g in stream]  # after the history
        got = whole(("read", shifted))
        bounds = [80_000 + c for c in sorted(cuts)]
        parts = [
            [r for r in shifted if lo <= r[1] < hi]
            for lo, hi in zip([-(2**62), *bounds], [*bounds, 2**62], strict=True)
        ]
        pieces = [s for part in parts for s in split(("read", part))]
        assert sorted(pieces, key=signal_order) == got
