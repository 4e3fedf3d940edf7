"""Open-pit slope trends (DOMAIN §2.2): displacement rate, acceleration and the improved tangent
angle over a sliding window, the inverse-velocity (Fukuzono) failure forecast, and rain raising
a site's slope alerts by one level.

Semantics (`reference/slope.py` is the per-reading oracle; both must emit identical signals):
- Samples: a `slope_trend` point's good (quality ≠ 2), finite readings strictly newer than its
  last accepted one. Older or equal ones are dropped: a late reading neither clears nor rewrites
  the displacement history.
- Window: W = `window_h`. The first reading of each W/`resolution` bucket (ts // bucket_ms) is
  kept as a knot in a ring of `resolution` + 2 knots per point; a reading at t is evaluated on
  the knots in [t - W, t) plus itself. The first half holds the samples before t - W/2, the
  second half the rest (the reading included).
- A reading is evaluated once the point's history spans W (t - first reading ≥ W) and each half
  holds ≥ 2 samples; otherwise it changes nothing (a data gap keeps the last levels: `offline`
  reports the gap).
- v (mm/d) is the least-squares slope over the window, v1 and v2 those of the two halves;
  the acceleration a = (v2 - v1) / (mean time of half 2 - mean time of half 1) (mm/d²).
- Tangent angle: T = S / v_steady makes dT/dt = v / v_steady, so α = atan(v2 / v_steady) over the
  recent half. Around the first `angle_deg` value a1 (± `angle_band_deg`, 2° by default) is the
  constant stage, blue; above it yellow, from a2 orange, from a3 red; below a1 - band no alert.
  Levels are compared in tangent space (same numbers in both implementations).
- v_steady is `steady_rate_mm_d`, else max(v at the point's first evaluated reading,
  `rate_mm_d[0]`): the floor keeps a nearly still slope's noise from normalising to steep angles.
- Rate and acceleration levels count the `rate_mm_d` / `accel_mm_d2` values reached. The
  point's severity is the highest of the three levels, plus one while its site is raining
  (capped at 4; rain raises alerts, it does not create them).
- Raining: any rainfall point of the site whose latest good reading is ≥ `site.rainfall_mm_h`.
- Forecast: when a ≥ `accel_mm_d2[0]` and v1 > 0, the line through (mean time, 1/v) of the two
  halves reaches 1/v = 0 at the forecast failure time; none beyond 365 days ahead.
- Signals (value = v, details = forecast, rate, acceleration, angle): on every severity change
  (kind None); when rain starts or stops, one per active slope point of the site at the rainfall
  reading's time (kind "rainfall", value = the rainfall); while active at an evaluated reading
  whose severity did not change, when the forecast appears, disappears or moves by more than 10 %
  of the time that remained to the last signalled forecast (kind "forecast_update").
- Readings are processed in (ts, point id) order, so the signals do not depend on how a stream
  is cut into batches.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from sitewatch.rules.base import PointInfo, Quiet, Readings, RuleCatalog, Signal

RULE = "slope_trend"
RAINFALL = "rainfall"
FORECAST_UPDATE = "forecast_update"
DAY_MS = 86_400_000.0
RESOLUTION = 48
ANGLE_BAND_DEG = 2.0
HORIZON_D = 365.0
MIN_HALF = 2  # samples per half window for a slope
NONE_MS = int(np.iinfo(np.int64).min)  # "no timestamp / no forecast" in int64 arrays

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Array = TypeVar("Array", I64, F64)


@dataclass(frozen=True, slots=True)
class SlopeParams:
    """A `slope_trend` spec compiled to integer milliseconds and tangent-space angle bands."""

    window_ms: int
    half_ms: int
    bucket_ms: int
    rate: tuple[float, ...]
    accel: tuple[float, ...]
    tangents: tuple[float, ...]  # tan of: blue lower bound, blue upper bound, orange, red
    steady: float | None

    @classmethod
    def of(cls, spec: dict[str, Any], resolution: int, band_deg: float) -> SlopeParams:
        window_ms = max(round(spec["window_h"] * 3_600_000), 2)  # two halves of at least 1 ms
        a1, a2, a3 = spec["angle_deg"]
        bands = (max(a1 - band_deg, 0.0), min(a1 + band_deg, a2), a2, a3)
        return cls(
            window_ms,
            window_ms // 2,
            max(window_ms // resolution, 1),
            tuple(float(x) for x in spec["rate_mm_d"]),
            tuple(float(x) for x in spec["accel_mm_d2"]),
            tuple(math.tan(math.radians(x)) for x in bands),
            spec.get("steady_rate_mm_d"),
        )


def slope_points(catalog: RuleCatalog, resolution: int, band_deg: float) -> dict[int, SlopeParams]:
    """Point id → compiled params of its first `slope_trend` spec."""
    found: dict[int, SlopeParams] = {}
    for point, spec in catalog.with_rule(RULE):
        found.setdefault(point.id, SlopeParams.of(spec, resolution, band_deg))
    return found


def rain_points(catalog: RuleCatalog) -> list[int]:
    """Rain gauges are known by their kind: their own rules (a threshold) are another family's."""
    return [p.id for p in catalog.points.values() if p.kind == RAINFALL]


def kept(old: RuleCatalog, new: RuleCatalog, ids: list[int], was: Container[int]) -> list[int]:
    """Ids among `ids` that name the same point (site and code) as before and had that role."""
    return [
        i
        for i in ids
        if i in was and (old.points[i].site_id, old.points[i].code) == (new.points[i].site_id, new.points[i].code)
    ]


def forecast_moved(forecast: int | None, sent: int | None, ts_ms: int) -> bool:
    """Whether dispatch needs a fresh forecast: it appeared, vanished or moved > 10 % of the
    time that remained to the one last sent."""
    if forecast is None or sent is None:
        return (forecast is None) != (sent is None)
    return 10 * abs(forecast - sent) > max(sent - ts_ms, 0)


@dataclass(frozen=True, slots=True)
class Trend:
    """What one evaluated reading found (None fields: never evaluated)."""

    rate: float | None = None
    accel: float | None = None
    ratio: float | None = None  # v2 / v_steady = tan α
    forecast: int | None = None

    def details(self) -> dict[str, Any]:
        angle = None if self.ratio is None else math.degrees(math.atan(self.ratio))
        return {
            "forecast_failure_ms": self.forecast,
            "rate_mm_d": self.rate,
            "accel_mm_d2": self.accel,
            "angle_deg": angle,
        }


def trend_signal(
    point: PointInfo, tz: str, severity: int, ts_ms: int, trend: Trend, raining: bool, kind: str | None
) -> Signal:
    """A severity change or forecast update of one slope point."""
    d = trend.details()
    parts = [f"{point.code} 边坡位移速率 {_num(d['rate_mm_d'], ' mm/d')}"]
    parts.append(f"加速度 {_num(d['accel_mm_d2'], ' mm/d²')}")
    parts.append(f"切线角 {_num(d['angle_deg'], '°', 1)}")
    if trend.forecast is not None:
        when = datetime.fromtimestamp(trend.forecast / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
        parts.append(f"预测破坏 {when}")
    if raining and severity:
        parts.append("降雨 +1")
    message = ", ".join(parts) + f" (level {severity})"
    return Signal(point.site_id, "point", point.code, RULE, severity, ts_ms, trend.rate, message, kind, d)


def rain_signal(
    point: PointInfo, severity: int, ts_ms: int, trend: Trend, gauge: PointInfo, rain: float, limit: float
) -> Signal:
    """Rain starting or stopping re-levels an active slope point."""
    sign = "≥" if rain >= limit else "<"
    message = f"{point.code} 降雨 {gauge.code} {rain:.1f} mm/h {sign} {limit:g} (level {severity})"
    return Signal(point.site_id, "point", point.code, RULE, severity, ts_ms, rain, message, RAINFALL, trend.details())


def _num(value: float | None, unit: str, digits: int = 2) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return (text.lstrip("-") if float(text) == 0 else text) + unit  # no "-0.00" from rounding noise


@dataclass(slots=True)
class _State:
    """Per-point slope state, a row per point id (NaN / NONE_MS: not yet known)."""

    ring_ts: I64  # (points, capacity) knots; knot k sits in column k % capacity
    ring_value: F64
    knots: I64  # knots ever kept
    first_ts: I64
    last_ts: I64
    steady: F64  # estimated v_steady
    base: I64  # highest level before rain
    severity: I64  # as last signalled
    rate: F64
    accel: F64
    ratio: F64
    forecast: I64
    sent: I64  # the forecast of the last signal

    @classmethod
    def empty(cls, size: int, capacity: int) -> _State:
        def nan() -> F64:
            return np.full(size, np.nan)

        def none() -> I64:
            return np.full(size, NONE_MS, np.int64)

        ring = np.zeros((size, capacity), np.int64), np.zeros((size, capacity))
        zeros = np.zeros(size, np.int64)
        return cls(*ring, zeros, none(), none(), nan(), zeros.copy(), zeros.copy(), nan(), nan(), nan(), none(), none())

    def carry(self, old: _State, ids: I64) -> None:
        for f in fields(self):
            getattr(self, f.name)[ids] = getattr(old, f.name)[ids]


@dataclass(slots=True)
class _Rows:
    """Accepted slope readings of one batch, sorted by (point, ts), with what each one found."""

    pid: I64
    ts: I64
    evaluated: Bool
    base: I64
    rate: F64
    accel: F64
    ratio: F64
    forecast: I64


@dataclass(slots=True)
class _Rain:
    """Accepted rainfall readings of one batch, sorted by (site, ts, point)."""

    site: I64
    ts: I64
    pid: I64
    value: F64
    raining: Bool  # the site's state after the reading
    flip: Bool


def _fresh(pid: I64, ts: I64, last_ts: I64) -> Bool:
    """Rows (sorted by point, ts) newer than everything their point accepted before."""
    prev = last_ts[pid]
    prev[1:] = np.where(pid[1:] == pid[:-1], np.maximum(prev[1:], ts[:-1]), prev[1:])
    return ts > prev


def _firsts(keys: I64) -> Bool:
    """The first row of each run of equal (non-negative) keys."""
    return np.not_equal(np.diff(keys, prepend=-1), 0)


def _lasts(keys: I64) -> Bool:
    return np.not_equal(np.diff(keys, append=-1), 0)


def _ranks(counts: I64) -> I64:
    """0, 1, … within each group of `np.repeat(groups, counts)`."""
    return np.arange(int(np.sum(counts))) - np.repeat(np.cumsum(counts) - counts, counts)


def _last_where(mask: Bool) -> I64:
    """For each row, the latest row up to it where `mask` holds (-1: none)."""
    return np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1))


def _shift(values: I64, same: Bool, stored: I64) -> I64:
    """Each row's predecessor within its point, or the point's stored value for its first row."""
    return np.where(same, np.roll(values, 1), stored)


def _carried(values: Array, row: I64, has: Bool, stored: Array) -> Array:
    """The value found at `row` where `has`, else the stored one (row -1, a virtual row, reads a pad)."""
    return np.where(has, np.append(values, stored[:1])[row], stored)


def _slope(n: I64, st: F64, sy: F64, stt: F64, sty: F64) -> tuple[F64, F64]:
    """Least-squares (denominator, slope) from the window sums."""
    den = n * stt - st * st
    return den, (n * sty - st * sy) / den


class Slope(Quiet):
    """slope_trend over whole batches.

    Each reading's window sums are accumulated column by column over its last `resolution` + 2
    knots (masked outside its window), in the order the per-reading reference adds them, so both
    produce bit-identical numbers; only points whose forecast moves while active are walked
    reading by reading.
    """

    def __init__(self, resolution: int = RESOLUTION, angle_band_deg: float = ANGLE_BAND_DEG) -> None:
        self.resolution = resolution
        self.band = angle_band_deg
        self.capacity = resolution + 2
        self.catalog = RuleCatalog({}, {}, {})
        self.params: dict[int, SlopeParams] = {}
        self.gauges: list[int] = []
        self.state = _State.empty(0, self.capacity)
        self.rain_ts = np.zeros(0, np.int64)
        self.rain_value = np.zeros(0)
        self.load(self.catalog)  # usable (and silent) before the first catalog

    def load(self, catalog: RuleCatalog) -> None:
        size, params, gauges = catalog.size, slope_points(catalog, self.resolution, self.band), rain_points(catalog)
        state = _State.empty(size, self.capacity)
        state.carry(self.state, np.array(kept(self.catalog, catalog, list(params), self.params), np.int64))
        rain_ts, rain_value = np.full(size, NONE_MS, np.int64), np.full(size, np.nan)
        old = np.array(kept(self.catalog, catalog, gauges, self.gauges), np.int64)
        rain_ts[old], rain_value[old] = self.rain_ts[old], self.rain_value[old]
        self.catalog, self.params, self.gauges, self.state = catalog, params, gauges, state
        self.rain_ts, self.rain_value = rain_ts, rain_value

        ids = np.array(sorted(params), np.int64)
        self.is_slope, self.is_rain = np.zeros(size, bool), np.zeros(size, bool)
        self.is_slope[ids], self.is_rain[gauges] = True, True
        self.window, self.half, self.bucket = np.ones((3, size), np.int64)
        self.rate, self.accel, self.tangents = np.zeros((3, size, 4))
        self.steady_given = np.full(size, np.nan)
        for i, p in params.items():
            self.window[i], self.half[i], self.bucket[i] = p.window_ms, p.half_ms, p.bucket_ms
            self.rate[i], self.accel[i], self.tangents[i] = p.rate, p.accel, p.tangents
            self.steady_given[i] = np.nan if p.steady is None else p.steady

        site_index = {s: k for k, s in enumerate(sorted(catalog.sites))}
        self.site_of = np.zeros(size, np.int64)
        for point in catalog.points.values():
            self.site_of[point.id] = site_index[point.site_id]
        self.site_limit = np.array([catalog.sites[s].rainfall_mm_h for s in sorted(catalog.sites)], np.float64)
        high = rain_value[gauges] >= self.site_limit[self.site_of[gauges]]
        self.site_count = np.bincount(self.site_of[gauges][high], minlength=len(site_index)).astype(np.int64)
        self.site_members = ids[np.argsort(self.site_of[ids], kind="stable")]  # slope points grouped by site
        self.site_ptr = np.searchsorted(self.site_of[self.site_members], np.arange(len(site_index) + 1))

    def trend(self, point: int) -> tuple[int, Trend]:
        """A point's severity as last signalled and the trend of its last evaluated reading."""
        st = self.state
        return int(st.severity[point]), Trend(
            _opt(st.rate[point]), _opt(st.accel[point]), _opt(st.ratio[point]), _opt_ms(st.forecast[point])
        )

    def on_readings(self, readings: Readings) -> list[Signal]:
        pid, ts, value = readings.point_id.astype(np.int64), readings.ts_ms, readings.value
        good = (readings.quality != 2) & np.isfinite(value)
        r = np.flatnonzero(good & self.is_rain[pid])
        r = r[_fresh(pid[r], ts[r], self.rain_ts)]
        s = np.flatnonzero(good & self.is_slope[pid])
        s = s[_fresh(pid[s], ts[s], self.state.last_ts)]
        raining = self.site_count > 0
        rain = self._rain(pid[r], ts[r], value[r])
        return self._signals(self._trend(pid[s], ts[s], value[s]), rain, raining)

    def _rain(self, pid: I64, ts: I64, value: F64) -> _Rain:
        """Each rainfall reading's effect on its site's raining state (a count of high gauges)."""
        site = self.site_of[pid]
        limit = self.site_limit[site]
        high = (value >= limit).astype(np.int64)
        stored = (self.rain_value[pid] >= limit).astype(np.int64)
        delta = high - _shift(high, ~_firsts(pid), stored)
        last = _lasts(pid)
        self.rain_ts[pid[last]], self.rain_value[pid[last]] = ts[last], value[last]

        order = np.lexsort((pid, ts, site))
        site, delta = site[order], delta[order]
        first = _firsts(site)
        total = np.cumsum(delta)
        count = self.site_count[site] + total - (total - delta)[first][np.cumsum(first) - 1]
        after = count > 0
        before = np.where(first, self.site_count[site] > 0, np.roll(after, 1))
        end = _lasts(site)
        self.site_count[site[end]] = count[end]
        return _Rain(site, ts[order], pid[order], value[order], after, after != before)

    def _trend(self, pid: I64, ts: I64, value: F64) -> _Rows:
        """Window sums, levels and forecast of every reading; appends the batch's knots."""
        st, cap, n = self.state, self.capacity, len(pid)
        first = _firsts(pid)
        seg = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        points = pid[starts]
        knots0 = st.knots[points]

        bucket = ts // self.bucket[pid]
        is_knot = np.empty(n, bool)
        is_knot[1:] = bucket[1:] != bucket[:-1]
        last_knot = st.ring_ts[points, (knots0 - 1) % cap]
        is_knot[starts] = (knots0 == 0) | (bucket[starts] != last_knot // self.bucket[points])

        # Each point's knots laid out flat, oldest first: its ring, then this batch's.
        old, new = np.minimum(knots0, cap), np.bincount(seg[is_knot], minlength=len(points))
        off = np.cumsum(old + new) - (old + new)
        flat_ts, flat_value = np.zeros(int(np.sum(old + new)), np.int64), np.zeros(int(np.sum(old + new)))
        ring = np.repeat(np.arange(len(points)), old)
        col = _ranks(old)
        slot = (knots0[ring] - old[ring] + col) % cap
        flat_ts[off[ring] + col] = st.ring_ts[points[ring], slot]
        flat_value[off[ring] + col] = st.ring_value[points[ring], slot]
        before = np.cumsum(is_knot) - is_knot
        rank = before - before[starts][seg]  # this batch's knots of the point before the row
        kr = np.flatnonzero(is_knot)
        at = off[seg[kr]] + old[seg[kr]] + rank[kr]
        flat_ts[at], flat_value[at] = ts[kr], value[kr]
        lo = off[seg]
        hi = lo + old[seg] + rank

        start, mid = ts - self.window[pid], ts - self.half[pid]
        sums = np.zeros((4, 2, n))  # Στ, Σy, Στ², Στy of each half (τ in days before ts, y from value)
        count = np.zeros((2, n), np.int64)
        width = int(min(cap, np.max(hi - lo, initial=0)))
        for j in range(width):
            idx = hi - width + j
            take = idx >= lo
            idx = np.where(take, idx, 0)
            kt = flat_ts[idx]
            take &= kt >= start
            second = kt >= mid
            halves = np.stack((take & ~second, take & second))
            tau = np.where(halves, (kt - ts) / DAY_MS, 0.0)
            y = np.where(halves, flat_value[idx] - value, 0.0)
            count += halves
            sums[0] += tau
            sums[1] += y
            sums[2] += tau * tau
            sums[3] += tau * y
        count[1] += 1  # the reading itself: τ = y = 0

        first_ts = np.where(st.first_ts[pid] == NONE_MS, ts[starts][seg], st.first_ts[pid])
        with np.errstate(all="ignore"):
            den1, v1 = _slope(count[0], *sums[:, 0])
            den2, v2 = _slope(count[1], *sums[:, 1])
            den, v = _slope(count[0] + count[1], *(sums[:, 0] + sums[:, 1]))
            m1, m2 = sums[0, 0] / count[0], sums[0, 1] / count[1]
            evaluated = (ts - first_ts >= self.window[pid]) & (count >= MIN_HALF).all(0)
            evaluated &= (den1 > 0) & (den2 > 0) & (den > 0) & (m2 > m1)
            dt = m2 - m1
            a = (v2 - v1) / dt
            tau_f = m2 + dt * v1 / (v2 - v1)
        ratio = v2 / self._steady(pid, seg, evaluated, v)

        tg = self.tangents[pid].T
        angle = np.select([ratio >= tg[3], ratio >= tg[2], ratio > tg[1], ratio >= tg[0]], [4, 3, 2, 1], 0)
        rate_level = (v[:, None] >= self.rate[pid]).sum(1)
        accel_level = (a[:, None] >= self.accel[pid]).sum(1)
        base = np.maximum(np.maximum(rate_level, accel_level), angle).astype(np.int64)
        has_f = evaluated & (a >= self.accel[pid, 0]) & (v1 > 0) & (tau_f <= HORIZON_D)
        forecast = np.where(has_f, ts + np.rint(np.where(has_f, tau_f, 0.0) * DAY_MS).astype(np.int64), NONE_MS)

        ends = np.flatnonzero(_lasts(pid))
        st.last_ts[points], st.first_ts[points] = ts[ends], first_ts[starts]
        ordinal = knots0[seg] + rank
        kr = kr[ordinal[kr] >= knots0[seg[kr]] + new[seg[kr]] - cap]  # ring overwrites: keep the last ones
        st.ring_ts[pid[kr], ordinal[kr] % cap], st.ring_value[pid[kr], ordinal[kr] % cap] = ts[kr], value[kr]
        st.knots[points] = knots0 + new
        return _Rows(pid, ts, evaluated, base, v, a, ratio, forecast)

    def _steady(self, pid: I64, seg: I64, evaluated: Bool, v: F64) -> F64:
        """v_steady per row: given, else estimated once at the point's first evaluated reading."""
        known = np.where(np.isnan(self.steady_given[pid]), self.state.steady[pid], self.steady_given[pid])
        need = np.flatnonzero(evaluated & np.isnan(known))
        need = need[_firsts(seg[need])]
        estimate = np.maximum(v[need], self.rate[pid[need], 0])
        self.state.steady[pid[need]] = estimate
        filled = np.full(int(np.max(seg, initial=-1)) + 1, np.nan)
        filled[seg[need]] = estimate
        return np.where(np.isnan(known), filled[seg], known)

    def _signals(self, rows: _Rows, rain: _Rain, raining0: Bool) -> list[Signal]:
        """Merge each slope point's readings with its site's rain flips, carry the last evaluated
        trend forward and emit where the severity changes or an active forecast moves."""
        st = self.state
        flips = np.flatnonzero(rain.flip)
        per_flip = self.site_ptr[rain.site[flips] + 1] - self.site_ptr[rain.site[flips]]
        flip = np.repeat(flips, per_flip)  # one virtual row per (rain flip, slope point of its site)
        vq = self.site_members[np.repeat(self.site_ptr[rain.site[flips]], per_flip) + _ranks(per_flip)]
        nr = len(rows.pid)
        q = np.r_[rows.pid, vq]
        ts = np.r_[rows.ts, rain.ts[flip]]
        src = np.r_[rows.pid, rain.pid[flip]]
        real = np.r_[np.ones(nr, bool), np.zeros(len(flip), bool)]
        order = np.lexsort((real, src, ts, q))
        q, ts, src, real = q[order], ts[order], src[order], real[order]
        raining = self._raining(self.site_of[q], ts, src, rain, raining0)
        row = np.r_[np.arange(nr), np.full(len(flip), -1)][order]  # index into rows, -1 virtual
        flip = np.r_[np.full(nr, -1), flip][order]  # index into rain, -1 real
        evaluated = np.r_[rows.evaluated, np.zeros(len(vq), bool)][order]

        last = _last_where(evaluated)
        has = (last >= 0) & (q[np.maximum(last, 0)] == q)
        r = row[np.maximum(last, 0)]
        base = _carried(rows.base, r, has, st.base[q])
        rate = _carried(rows.rate, r, has, st.rate[q])
        accel = _carried(rows.accel, r, has, st.accel[q])
        ratio = _carried(rows.ratio, r, has, st.ratio[q])
        forecast = _carried(rows.forecast, r, has, st.forecast[q])
        severity = np.where(base >= 1, np.minimum(base + raining, 4), 0)
        same = ~_firsts(q)
        change = severity != _shift(severity, same, st.severity[q])
        eligible = evaluated & ~change & (severity > 0)
        moving = eligible & ((forecast != NONE_MS) | (_shift(forecast, same, st.forecast[q]) != NONE_MS))

        walk = np.isin(q, q[moving])
        updates = self._forecast_updates(np.flatnonzero(walk), q, ts, forecast, change, eligible)
        changed = np.flatnonzero(change)
        final = changed[_lasts(q[changed]) & ~walk[changed]]  # the walked points have their sent forecast
        st.sent[q[final]] = forecast[final]
        end = _lasts(q)
        st.base[q[end]], st.severity[q[end]], st.forecast[q[end]] = base[end], severity[end], forecast[end]
        st.rate[q[end]], st.accel[q[end]], st.ratio[q[end]] = rate[end], accel[end], ratio[end]

        emit = np.r_[changed, updates].astype(np.int64)
        emit = emit[np.lexsort((q[emit], real[emit], src[emit], ts[emit]))]  # as the reference walks them
        out = []
        for i in emit.tolist():
            info = self.catalog.points[int(q[i])]
            trend = Trend(_opt(rate[i]), _opt(accel[i]), _opt(ratio[i]), _opt_ms(forecast[i]))
            sev, t = int(severity[i]), int(ts[i])
            if not real[i]:
                gauge, site = self.catalog.points[int(src[i])], self.catalog.sites[info.site_id]
                out.append(rain_signal(info, sev, t, trend, gauge, float(rain.value[flip[i]]), site.rainfall_mm_h))
            else:
                kind = None if change[i] else FORECAST_UPDATE
                tz = self.catalog.sites[info.site_id].timezone
                out.append(trend_signal(info, tz, sev, t, trend, bool(raining[i]), kind))
        return out

    def _raining(self, site: I64, ts: I64, src: I64, rain: _Rain, raining0: Bool) -> Bool:
        """Whether each timeline row's site is raining after the rainfall readings ordered before
        it by (ts, point id), the rainfall reading itself included for a flip's rows."""
        raining = raining0[site]
        touched = np.zeros(len(raining0), bool)
        touched[rain.site] = True
        ask = np.flatnonzero(touched[site])
        nr = len(rain.site)
        keys_site = np.r_[rain.site, site[ask]]
        kind = np.r_[np.zeros(nr, bool), np.ones(len(ask), bool)]
        order = np.lexsort((kind, np.r_[rain.pid, src[ask]], np.r_[rain.ts, ts[ask]], keys_site))
        keys_site, kind = keys_site[order], kind[order]
        last = _last_where(~kind)
        state = np.r_[rain.raining, np.zeros(len(ask), bool)][order]
        found = (last >= 0) & (keys_site[np.maximum(last, 0)] == keys_site)
        raining[ask[order[kind] - nr]] = np.where(found, state[np.maximum(last, 0)], raining0[keys_site])[kind]
        return raining

    def _forecast_updates(self, rows: I64, q: I64, ts: I64, forecast: I64, change: Bool, eligible: Bool) -> list[int]:
        """Walk the few points whose forecast may have moved while active, reading by reading."""
        out = []
        sent = self.state.sent
        for i in rows.tolist():
            p = int(q[i])
            if change[i]:
                sent[p] = forecast[i]
            elif eligible[i] and forecast_moved(_opt_ms(forecast[i]), _opt_ms(sent[p]), int(ts[i])):
                out.append(i)
                sent[p] = forecast[i]
        return out


def _opt(x: np.floating[Any]) -> float | None:
    value = float(x)
    return None if math.isnan(value) else value


def _opt_ms(x: np.integer[Any]) -> int | None:
    return None if x == NONE_MS else int(x)
