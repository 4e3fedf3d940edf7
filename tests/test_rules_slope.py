"""slope_trend (DOMAIN §2.2): hand-computed windows, the tangent-angle stages of a Fukuzono creep
curve, rain re-levelling, late data, reloads, and the vectorised family against the reference."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.catalog.rules import SlopeTrend
from sitewatch.rules import slope
from sitewatch.rules.base import PointInfo, Readings, RuleCatalog, Signal, SiteInfo
from sitewatch.rules.reference import slope as reference

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_700_000_000_000
Row = tuple[int, int, float, int]  # point id, ts, value, quality
Family = slope.Slope | reference.Slope
FAMILIES = [slope.Slope, reference.Slope]


def spec(**params: Any) -> dict[str, Any]:
    return SlopeTrend(rule="slope_trend", **params).model_dump(mode="json")


def catalog(slopes: dict[int, dict[str, Any]], gauges: Sequence[int] = (), sites: int = 1) -> RuleCatalog:
    """Slope points and rain gauges spread over `sites` sites (point id modulo the site count)."""
    site_infos = {s: SiteInfo(s, f"S{s}", "open_pit") for s in range(1, sites + 1)}
    points = {
        i: PointInfo(i, 1 + i % sites, f"SL-{i:02d}", "slope_displacement", "mm", 600.0, None, (p,))
        for i, p in slopes.items()
    }
    points |= {i: PointInfo(i, 1 + i % sites, f"RG-{i:02d}", "rainfall", "mm/h") for i in gauges}
    return RuleCatalog(site_infos, {}, points)


def batch(rows: Iterable[Row]) -> Readings:
    """Rows as the engine passes them: sorted by (point, ts), arrival order kept for ties."""
    full = sorted(rows, key=lambda r: (r[0], r[1]))
    n = len(full)
    return Readings(
        np.array([r[0] for r in full], np.int32),
        np.array([r[1] for r in full], np.int64),
        np.array([r[2] for r in full], np.float64),
        np.array([r[3] for r in full], np.int16),
        np.zeros(n, np.int32),
    )


def run(family: Family, cat: RuleCatalog, chunks: Iterable[Sequence[Row]]) -> list[Signal]:
    family.load(cat)
    return [s for chunk in chunks for s in family.on_readings(batch(chunk))]


def series(pid: int, days: float, step_h: float, displacement: Callable[[float], float]) -> list[Row]:
    """Readings of one point every `step_h` hours for `days`, displacement given in days → mm."""
    steps = range(int(days * 24 / step_h) + 1)
    return [(pid, T0 + round(k * step_h * HOUR), displacement(k * step_h / 24), 0) for k in steps]


def details(signal: Signal) -> dict[str, Any]:
    assert signal.details is not None
    return signal.details


# A Fukuzono creep curve: 10 days at the steady 1 mm/d, then 1/v falls linearly to 0 at day 30.
STEADY_DAYS, FAIL_DAYS = 10.0, 30.0
FAILURE_MS = T0 + round(FAIL_DAYS * DAY)


def creep(t: float) -> float:
    if t <= STEADY_DAYS:
        return t
    span = FAIL_DAYS - STEADY_DAYS  # v = span / (FAIL_DAYS - t): 1 mm/d when acceleration starts
    return STEADY_DAYS + span * math.log(span / (FAIL_DAYS - t))


@pytest.mark.parametrize("family", FAMILIES)
def test_creep_to_failure_rises_through_the_stages_with_a_close_forecast(family: type[Family]) -> None:
    cat = catalog({0: spec(steady_rate_mm_d=1.0)})
    rows = series(0, FAIL_DAYS - 0.1, 1.0, creep)
    signals = run(family(), cat, [rows])
    changes = [s for s in signals if s.kind is None]
    assert [s.severity for s in changes] == [1, 2, 3, 4]
    blue, yellow, orange, red = changes
    assert blue.ts_ms == T0 + DAY  # the first full window, constant stage: α = 45°
    assert blue.details == {
        "forecast_failure_ms": None,
        "rate_mm_d": pytest.approx(1.0),
        "accel_mm_d2": pytest.approx(0, abs=1e-9),
        "angle_deg": pytest.approx(45.0),
    }
    assert STEADY_DAYS * DAY < yellow.ts_ms - T0 < orange.ts_ms - T0 < red.ts_ms - T0
    assert 47 < details(yellow)["angle_deg"] < 80 and details(red)["angle_deg"] >= 85
    for s in (orange, red):  # the inverse-velocity forecast within 2 % of the time left
        assert abs(details(s)["forecast_failure_ms"] - FAILURE_MS) < 0.02 * (FAILURE_MS - s.ts_ms)
    updates = [s for s in signals if s.kind == "forecast_update"]
    assert updates and all(s.severity >= 2 for s in updates)
    sent = None
    for s in signals:  # each update moved more than 10 % of the time left to the forecast before
        forecast = details(s)["forecast_failure_ms"]
        if s.kind == "forecast_update" and sent is not None:
            assert abs(forecast - sent) * 10 > sent - s.ts_ms
        sent = forecast
    assert run(family(), cat, [rows[i : i + 7] for i in range(0, len(rows), 7)]) == signals


@pytest.mark.parametrize("family", FAMILIES)
def test_linear_creep_at_the_steady_rate_is_blue(family: type[Family]) -> None:
    signals = run(family(), catalog({3: spec(steady_rate_mm_d=3.0)}), [series(3, 2, 0.5, lambda t: 100 + 3 * t)])
    assert len(signals) == 1
    s = signals[0]
    assert (s.site_id, s.source_type, s.source_code, s.rule, s.severity, s.ts_ms) == (
        1,
        "point",
        "SL-03",
        "slope_trend",
        1,
        T0 + DAY,
    )
    assert s.value == pytest.approx(3.0)
    assert details(s)["angle_deg"] == pytest.approx(45.0) and details(s)["forecast_failure_ms"] is None
    assert s.message == "SL-03 边坡位移速率 3.00 mm/d, 加速度 0.00 mm/d², 切线角 45.0° (level 1)"


@pytest.mark.parametrize("family", FAMILIES)
def test_constant_acceleration_is_measured_exactly_and_forecast_through_the_half_windows(family: type[Family]) -> None:
    # S = 0.75 t²: a = 1.5 mm/d² (yellow: ≥ 0.5 and ≥ 1); v over the first day 0.75 < 2; α small.
    signals = run(family(), catalog({0: spec(steady_rate_mm_d=10.0)}), [series(0, 1, 0.5, lambda t: 0.75 * t * t)])
    [s] = signals
    assert (s.severity, s.ts_ms) == (2, T0 + DAY)
    assert details(s)["accel_mm_d2"] == pytest.approx(1.5, rel=1e-9)
    assert details(s)["rate_mm_d"] == pytest.approx(0.75, rel=1e-9)
    # Half-hourly samples: the halves' mean times are 11.5/48 and 36/48 d, where v = 1.5 t, and
    # the line through (t, 1/v) at those two times reaches zero at their sum.
    assert details(s)["forecast_failure_ms"] == pytest.approx(T0 + 47.5 / 48 * DAY, abs=2)
    assert details(s)["angle_deg"] == pytest.approx(math.degrees(math.atan(1.5 * 36 / 48 / 10)), rel=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_steady_rate_is_estimated_from_the_first_full_window_and_floored(family: type[Family]) -> None:
    # 3 mm/d for 2 days, then 3.5 mm/d: α = atan(3.5 / 3) ≈ 49° is past the blue band (43–47°).
    rows = series(0, 4, 0.5, lambda t: 3 * t if t <= 2 else 6 + 3.5 * (t - 2))
    changes = [(s.severity, round(details(s)["angle_deg"])) for s in run(family(), catalog({0: spec()}), [rows])]
    assert changes[0] == (1, 45) and changes[-1] == (2, 49)
    # A slope creeping at 0.5 mm/d is normalised by the blue rate, 2 mm/d: α ≈ 14°, no alert.
    assert run(family(), catalog({0: spec()}), [series(0, 4, 0.5, lambda t: 0.5 * t)]) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_rain_raises_active_slopes_of_its_site_by_one_level(family: type[Family]) -> None:
    cat = catalog({0: spec(steady_rate_mm_d=1.0), 2: spec(steady_rate_mm_d=1.0), 1: spec()}, gauges=[4, 6], sites=2)
    creeping = series(0, 2, 1, lambda t: t)  # site 1: blue
    still = series(2, 2, 1, lambda t: 5.0)  # site 1: no alert, rain does not create one
    other = series(1, 2, 1, lambda t: t)  # site 2: out of the rain
    rain = [
        (4, T0 + 30 * HOUR, 35.0, 0),
        (6, T0 + 31 * HOUR, 50.0, 0),
        (4, T0 + 32 * HOUR, 10.0, 0),
        (6, T0 + 40 * HOUR + 1, 0.0, 0),
    ]
    signals = run(family(), cat, [creeping + still + other + rain])
    got = [(s.source_code, s.severity, (s.ts_ms - T0) / HOUR, s.kind, s.value) for s in signals]
    assert got == [
        ("SL-00", 1, 24, None, pytest.approx(1.0)),
        ("SL-00", 2, 30, "rainfall", 35.0),
        ("SL-00", 1, 40 + 1 / HOUR, "rainfall", 0.0),
    ]
    assert signals[1].message == "SL-00 降雨 RG-04 35.0 mm/h ≥ 30 (level 2)"


@pytest.mark.parametrize("family", FAMILIES)
def test_rain_before_the_trend_starts_raises_it_and_caps_at_red(family: type[Family]) -> None:
    cat = catalog(
        {0: spec(steady_rate_mm_d=1.0), 2: spec(steady_rate_mm_d=1.0, rate_mm_d=[0.1, 0.2, 0.3, 0.5])}, gauges=[1]
    )
    rows = [(1, T0, 40.0, 0), *series(0, 1.5, 1, lambda t: t), *series(2, 1.5, 1, lambda t: t)]
    signals = run(family(), cat, [rows])
    assert [(s.source_code, s.severity, s.kind) for s in signals] == [("SL-00", 2, None), ("SL-02", 4, None)]
    assert signals[0].message.endswith("降雨 +1 (level 2)")


@pytest.mark.parametrize("family", FAMILIES)
def test_late_bad_and_duplicate_readings_change_nothing(family: type[Family]) -> None:
    cat = catalog({0: spec(steady_rate_mm_d=1.0)})
    rows = series(0, 2, 1, lambda t: t)
    clean = run(family(), cat, [rows[:30], rows[30:]])
    noise = [
        (0, T0 + 20 * HOUR, 999.0, 0),
        (0, T0 + 36 * HOUR, 999.0, 2),
        (0, T0 + 37 * HOUR, math.nan, 0),
        (0, rows[35][1], 999.0, 0),
    ]
    assert run(family(), cat, [rows[:30], rows[30:] + noise]) == clean


@pytest.mark.parametrize("family", FAMILIES)
def test_reload_keeps_the_state_of_points_that_still_exist(family: type[Family]) -> None:
    slopes = {0: spec(steady_rate_mm_d=1.0), 1: spec(steady_rate_mm_d=1.0)}
    rows = series(0, 3, 1, creep_fast) + series(1, 3, 1, creep_fast)
    first, second = [r for r in rows if r[1] < T0 + 40 * HOUR], [r for r in rows if r[1] >= T0 + 40 * HOUR]
    expected = run(family(), catalog(slopes), [rows])
    f = family()
    got = run(f, catalog(slopes), [first])
    f.load(catalog(slopes))
    assert got + f.on_readings(batch(second)) == expected
    renamed = catalog(slopes)
    renamed.points[1] = PointInfo(1, 1, "SL-99", "slope_displacement", "mm", 600.0, None, (slopes[1],))
    f = family()
    run(f, catalog(slopes), [first])
    f.load(renamed)
    after = f.on_readings(batch(second))
    assert min(s.ts_ms for s in after if s.source_code == "SL-99") == T0 + 64 * HOUR  # new: a full window first
    kept = [s for s in expected if s.ts_ms >= T0 + 40 * HOUR and s.source_code == "SL-00"]
    assert [s for s in after if s.source_code == "SL-00"] == kept


def creep_fast(t: float) -> float:
    return t + 2 * t * t


# Vectorised against reference ---------------------------------------------------------------


def random_case(seed: int) -> tuple[RuleCatalog, list[Row]]:
    """Two sites of noisy slopes whose velocity random-walks across every level, and rain gauges
    hovering around the limit, sometimes on a common minute grid (ties across points and
    duplicates); the stream is in (ts, point) order."""
    rng = np.random.default_rng(seed)
    n_slopes = int(rng.integers(1, 5))
    slopes = {}
    for i in range(n_slopes):
        steady = None if rng.random() < 0.5 else float(rng.uniform(0.5, 5))
        slopes[i] = spec(window_h=float(rng.choice([0.5, 1.0, 2.0])), steady_rate_mm_d=steady)
    gauges = list(range(n_slopes, n_slopes + int(rng.integers(0, 3))))
    rows: list[Row] = []
    end = T0 + 8 * HOUR
    for i in slopes:
        steps = rng.choice([0, 1, 2], size=400, p=[0.03, 0.96, 0.01])
        dt = np.where(steps == 0, 0, np.where(steps == 1, rng.integers(10_000, 600_000, 400), 2 * HOUR))
        ts = T0 + np.cumsum(dt)
        v = np.clip(np.cumsum(rng.normal(0, 3, 400)) + 3, -5, 60)  # mm/d
        disp = np.cumsum(v * dt / DAY) + rng.normal(0, float(rng.choice([0, 0.01, 0.3])), 400)
        quality = rng.choice([0, 1, 2], size=400, p=[0.9, 0.05, 0.05])
        disp[rng.random(400) < 0.01] = np.nan
        rows += [(i, int(t), float(x), int(q)) for t, x, q in zip(ts, disp, quality, strict=True) if t < end]
    for g in gauges:
        ts = T0 + np.cumsum(rng.integers(60_000, 900_000, 60))
        rain = rng.choice([0.0, 12.0, 29.99, 30.0, 31.0, 60.0], size=60)
        rows += [(g, int(t), float(x), 0) for t, x in zip(ts, rain, strict=True) if t < end]
    grid = int(rng.choice([1, 60_000]))
    rows = sorted(((p, t - (t - T0) % grid, x, q) for p, t, x, q in rows), key=lambda r: (r[1], r[0]))
    return catalog(slopes, gauges, sites=2), rows


def chunks(rows: list[Row], cuts: Iterable[int]) -> list[list[Row]]:
    edges = [0, *sorted({c % (len(rows) + 1) for c in cuts}), len(rows)]
    return [rows[a:b] for a, b in itertools.pairwise(edges)]


def compare(
    cat: RuleCatalog, parts: list[list[Row]], resolution: int, reload_at: int = -1, reload: RuleCatalog | None = None
) -> list[Signal]:
    """Both families over the same batches, loading `reload` (a copy of `cat` by default) before
    batch `reload_at`; the engine passes only readings of points in the loaded catalog."""
    out = []
    for family in (slope.Slope(resolution), reference.Slope(resolution)):
        family.load(cat)
        signals, points = [], cat.points
        for k, part in enumerate(parts):
            if k == reload_at:
                family.load(reload or RuleCatalog(dict(cat.sites), dict(cat.zones), dict(cat.points)))
                points = (reload or cat).points
            signals += family.on_readings(batch(r for r in part if r[0] in points))
        out.append(signals)
    assert out[0] == out[1]
    return out[0]


def edited(cat: RuleCatalog) -> RuleCatalog:
    """The catalog with a lower rain limit, new rate levels on SL-00, and its last point removed."""
    sites = {i: dataclasses.replace(s, rainfall_mm_h=20.0) for i, s in cat.sites.items()}
    points = {i: p for i, p in cat.points.items() if i != max(cat.points)}
    if 0 in points:
        points[0] = dataclasses.replace(points[0], rules=(spec(rate_mm_d=[1, 3, 6, 12]),))
    return RuleCatalog(sites, {}, points)


cases = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from([4, 8, 48]), st.lists(st.integers(0, 10**6), max_size=8))


@settings(max_examples=40, derandomize=True, deadline=None)
@given(cases)
def test_vectorised_equals_reference_and_batch_cuts_do_not_matter(case: tuple[int, int, list[int]]) -> None:
    seed, resolution, cuts = case
    cat, rows = random_case(seed)
    whole = compare(cat, [rows], resolution)
    assert compare(cat, chunks(rows, cuts), resolution, reload_at=len(cuts) // 2) == whole


@settings(max_examples=20, derandomize=True, deadline=None)
@given(cases)
def test_vectorised_equals_reference_with_late_readings_and_a_catalog_edit(case: tuple[int, int, list[int]]) -> None:
    seed, resolution, cuts = case
    cat, rows = random_case(seed)
    rng = np.random.default_rng(seed)
    for _ in range(len(rows) // 10):  # delay some readings by a few places in the stream
        i = int(rng.integers(0, len(rows)))
        rows.insert(min(i + int(rng.integers(1, 30)), len(rows)), rows.pop(i))
    compare(cat, chunks(rows, cuts), resolution, reload_at=len(cuts) // 2, reload=edited(cat))


def test_random_cases_reach_every_level_rain_and_forecast_updates() -> None:
    """The random cases above are only worth something if they exercise every path."""
    seen: set[tuple[int, str | None]] = set()
    for seed in range(25):
        cat, rows = random_case(seed)
        seen |= {(s.severity, s.kind) for s in compare(cat, [rows], 48)}
    assert {(k, None) for k in range(5)} <= seen
    assert {kind for _, kind in seen} == {None, "rainfall", "forecast_update"}
