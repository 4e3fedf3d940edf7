"""Per-reading oracle of the slope_trend family: the semantics of `sitewatch.rules.slope`, one
reading at a time in (ts, point id) order, with plain Python sums over each reading's window."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from sitewatch.rules.base import Quiet, Readings, RuleCatalog, Signal
from sitewatch.rules.slope import (
    ANGLE_BAND_DEG,
    DAY_MS,
    FORECAST_UPDATE,
    HORIZON_D,
    MIN_HALF,
    RESOLUTION,
    SlopeParams,
    Trend,
    forecast_moved,
    kept,
    rain_points,
    rain_signal,
    slope_points,
    trend_signal,
)


@dataclass(slots=True)
class _Point:
    knots: deque[tuple[int, float]]
    first_ts: int | None = None
    last_ts: int | None = None
    steady: float | None = None  # estimated v_steady
    base: int = 0
    severity: int = 0
    trend: Trend = field(default_factory=Trend)
    sent: int | None = None  # the forecast of the last signal


@dataclass(slots=True)
class _Gauge:
    last_ts: int | None = None
    value: float | None = None


@dataclass(slots=True)
class _Half:
    n: int = 0
    st: float = 0.0
    sy: float = 0.0
    stt: float = 0.0
    sty: float = 0.0

    def add(self, tau: float, y: float) -> None:
        self.n += 1
        self.st += tau
        self.sy += y
        self.stt += tau * tau
        self.sty += tau * y

    def __add__(self, other: _Half) -> _Half:
        return _Half(
            self.n + other.n, self.st + other.st, self.sy + other.sy, self.stt + other.stt, self.sty + other.sty
        )

    def den(self) -> float:
        return self.n * self.stt - self.st * self.st

    def slope(self) -> float:
        return (self.n * self.sty - self.st * self.sy) / self.den()


class Slope(Quiet):
    """slope_trend, one reading at a time."""

    def __init__(self, resolution: int = RESOLUTION, angle_band_deg: float = ANGLE_BAND_DEG) -> None:
        self.resolution = resolution
        self.band = angle_band_deg
        self.catalog = RuleCatalog({}, {}, {})
        self.params: dict[int, SlopeParams] = {}
        self.points: dict[int, _Point] = {}
        self.gauges: dict[int, _Gauge] = {}

    def load(self, catalog: RuleCatalog) -> None:
        params = slope_points(catalog, self.resolution, self.band)
        gauges = rain_points(catalog)
        points = {i: self.points[i] for i in kept(self.catalog, catalog, list(params), self.points)}
        self.points = {i: points.get(i) or _Point(deque(maxlen=self.resolution + 2)) for i in params}
        old_gauges = {i: self.gauges[i] for i in kept(self.catalog, catalog, gauges, self.gauges)}
        self.gauges = {i: old_gauges.get(i) or _Gauge() for i in gauges}
        self.params = params
        self.catalog = catalog

    def on_readings(self, readings: Readings) -> list[Signal]:
        out: list[Signal] = []
        rows = sorted(range(len(readings)), key=lambda i: (int(readings.ts_ms[i]), int(readings.point_id[i])))
        for i in rows:
            pid, ts, value = int(readings.point_id[i]), int(readings.ts_ms[i]), float(readings.value[i])
            if readings.quality[i] == 2 or not math.isfinite(value):
                continue
            if pid in self.gauges:
                out += self._rain(pid, ts, value)
            if pid in self.points:
                out += self._reading(pid, ts, value)
        return out

    def _raining(self, site_id: int) -> bool:
        limit = self.catalog.sites[site_id].rainfall_mm_h
        return any(
            g.value is not None and g.value >= limit
            for i, g in self.gauges.items()
            if self.catalog.points[i].site_id == site_id
        )

    def _rain(self, pid: int, ts: int, value: float) -> list[Signal]:
        gauge = self.gauges[pid]
        if gauge.last_ts is not None and ts <= gauge.last_ts:
            return []
        site = self.catalog.points[pid].site_id
        before = self._raining(site)
        gauge.last_ts, gauge.value = ts, value
        after = self._raining(site)
        if before == after:
            return []
        out = []
        for q in sorted(self.points):
            info, st = self.catalog.points[q], self.points[q]
            if info.site_id != site:
                continue
            severity = min(st.base + after, 4) if st.base else 0
            if severity != st.severity:
                limit = self.catalog.sites[site].rainfall_mm_h
                out.append(rain_signal(info, severity, ts, st.trend, self.catalog.points[pid], value, limit))
                st.severity, st.sent = severity, st.trend.forecast
        return out

    def _reading(self, pid: int, ts: int, value: float) -> list[Signal]:
        st, p = self.points[pid], self.params[pid]
        if st.last_ts is not None and ts <= st.last_ts:
            return []
        if st.first_ts is None:
            st.first_ts = ts
        st.last_ts = ts
        halves = (_Half(), _Half())
        for kt, kv in [*st.knots, (ts, value)]:
            if kt >= ts - p.window_ms:
                halves[kt >= ts - p.half_ms].add(float(kt - ts) / DAY_MS, kv - value)
        if not st.knots or ts // p.bucket_ms != st.knots[-1][0] // p.bucket_ms:
            st.knots.append((ts, value))
        evaluated = self._evaluate(st, p, ts, *halves)
        info = self.catalog.points[pid]
        raining = self._raining(info.site_id)
        severity = min(st.base + raining, 4) if st.base else 0
        tz = self.catalog.sites[info.site_id].timezone
        if severity != st.severity:
            st.severity, st.sent = severity, st.trend.forecast
            return [trend_signal(info, tz, severity, ts, st.trend, raining, None)]
        if evaluated and severity and forecast_moved(st.trend.forecast, st.sent, ts):
            st.sent = st.trend.forecast
            return [trend_signal(info, tz, severity, ts, st.trend, raining, FORECAST_UPDATE)]
        return []

    def _evaluate(self, st: _Point, p: SlopeParams, ts: int, h1: _Half, h2: _Half) -> bool:
        """Update the point's levels and trend from one window; False when it is not evaluable."""
        assert st.first_ts is not None
        whole = h1 + h2
        if ts - st.first_ts < p.window_ms or h1.n < MIN_HALF or h2.n < MIN_HALF:
            return False
        if h1.den() <= 0 or h2.den() <= 0 or whole.den() <= 0:
            return False
        m1, m2 = h1.st / h1.n, h2.st / h2.n
        if m2 <= m1:
            return False
        v1, v2, v = h1.slope(), h2.slope(), whole.slope()
        dt = m2 - m1
        a = (v2 - v1) / dt
        if p.steady is None and st.steady is None:
            st.steady = max(v, p.rate[0])
        steady = p.steady if p.steady is not None else st.steady
        assert steady is not None
        ratio = v2 / steady
        forecast = None
        if a >= p.accel[0] and v1 > 0:
            tau_f = m2 + dt * v1 / (v2 - v1)
            if tau_f <= HORIZON_D:
                forecast = ts + round(tau_f * DAY_MS)
        lo, hi, orange, red = p.tangents
        if ratio >= red:
            angle = 4
        elif ratio >= orange:
            angle = 3
        elif ratio > hi:
            angle = 2
        elif ratio >= lo:
            angle = 1
        else:
            angle = 0
        rate = sum(v >= x for x in p.rate)
        accel = sum(a >= x for x in p.accel)
        st.base = max(rate, accel, angle)
        st.trend = Trend(v, a, ratio, forecast)
        return True
