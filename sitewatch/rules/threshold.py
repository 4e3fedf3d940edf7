"""Threshold rules, vectorised and exact: two levels above and/or below, hysteresis, on-delay,
latching, evaluated per reading in event time without a per-reading Python loop.

Each point has four binary level states ("slots"): above level 1 and 2, below level 1 and 2.
Below levels are evaluated on the negated value so that every slot follows the same rule:
active once x ≥ enter, inactive once x < enter − deadband, unchanged in between. Within a batch
(sorted by point, then time) that is a forward fill of the last decisive reading, done with
`np.maximum.accumulate` over row indices; the state before the batch seeds each point's first row.

A slot is *effective* once it has been active for `for_s` (sample and hold: the condition is
assumed to persist between readings, so the level rises at run start + for_s, and `tick` raises
it then even if no reading arrives). The point's severity is the highest severity among its
effective slots; a latched point never lowers it (an operator resets it). A signal is emitted at
each change of severity: a rise at the latest due time of the slots that became effective, a
fall at the reading that ended it.

Readings of bad quality, outside the detector's valid [min, max], or older than the point's
last evaluated instant are not evaluated.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sitewatch.rules.base import Quiet, Readings, RuleCatalog, Signal

SLOTS = 4  # above 1, above 2, below 1, below 2
NEVER = np.iinfo(np.int64).min


def describe(code: str, unit: str, severity: int, value: float, limit: float, below: bool) -> str:
    """The alert message; shared with the reference implementation so both say the same."""
    if severity == 0:
        return f"{code} 恢复正常 back to normal: {value:g} {unit}".rstrip()
    sign = "≤" if below else "≥"
    return f"{code} {value:g} {unit} {sign} {limit:g}".replace("  ", " ")


class ThresholdParams:
    """Per-point parameters of the `threshold` rule, as arrays indexed by point id."""

    def __init__(self, catalog: RuleCatalog) -> None:
        n = catalog.size
        self.enabled = np.zeros(n, dtype=bool)
        self.enter = np.full((n, SLOTS), np.inf)  # +inf: the slot never activates
        self.severity = np.zeros((n, SLOTS), dtype=np.int8)
        self.deadband = np.zeros(n)
        self.for_ms = np.zeros(n, dtype=np.int64)
        self.latch = np.zeros(n, dtype=bool)
        self.vmin = np.full(n, -np.inf)
        self.vmax = np.full(n, np.inf)
        self.code = [""] * n
        self.unit = [""] * n
        self.site = np.zeros(n, dtype=np.int64)
        for point, spec in catalog.with_rule("threshold"):
            if self.enabled[point.id]:
                continue  # the first threshold rule of a point governs
            i = point.id
            self.enabled[i] = True
            sev = list(spec.get("severities") or [2, 3])
            for level, limit in enumerate(spec.get("above") or []):
                self.enter[i, level] = limit
                self.severity[i, level] = sev[level]
            for level, limit in enumerate(spec.get("below") or []):
                self.enter[i, 2 + level] = -limit
                self.severity[i, 2 + level] = sev[level]
            self.deadband[i] = spec.get("deadband") or 0.0
            self.for_ms[i] = round((spec.get("for_s") or 0.0) * 1000)
            self.latch[i] = bool(spec.get("latch"))
            self.vmin[i] = -np.inf if spec.get("min") is None else spec["min"]
            self.vmax[i] = np.inf if spec.get("max") is None else spec["max"]
            self.code[i], self.unit[i], self.site[i] = point.code, point.unit, point.site_id
        # contiguous per-slot copies for the batch path's gathers
        self.enter_by_slot = np.ascontiguousarray(self.enter.T)
        self.severity_by_slot = np.ascontiguousarray(self.severity.T)
        self.used = np.isfinite(self.enter_by_slot)

    def limit(self, point: int, slot: int) -> tuple[float, bool]:
        below = slot >= 2
        return (-self.enter[point, slot] if below else self.enter[point, slot]), below

    def signal(self, point: int, severity: int, ts_ms: int, value: float, slots: npt.NDArray[np.bool_]) -> Signal:
        """The signal of a point reaching `severity`; `slots` are its effective slots."""
        top = int(np.argmax(np.where(slots, self.severity[point], -1))) if severity else 0
        limit, below = self.limit(point, top)
        return Signal(
            int(self.site[point]),
            "point",
            self.code[point],
            "threshold",
            severity,
            ts_ms,
            value,
            describe(self.code[point], self.unit[point], severity, value, limit, below),
            kind=("low" if below else "high") if severity else None,
        )


class ThresholdState:
    """The per-point state both implementations keep (so either can take over the other's)."""

    def __init__(self, size: int, old: ThresholdState | None = None) -> None:
        self.active = np.zeros((size, SLOTS), dtype=bool)
        self.run_start = np.zeros((size, SLOTS), dtype=np.int64)
        self.effective = np.zeros((size, SLOTS), dtype=bool)
        self.emitted = np.zeros(size, dtype=np.int8)
        self.last_ts = np.full(size, NEVER, dtype=np.int64)
        self.last_value = np.zeros(size)
        if old is not None:
            keep = min(size, len(old.emitted))
            for name in ("active", "run_start", "effective", "emitted", "last_ts", "last_value"):
                getattr(self, name)[:keep] = getattr(old, name)[:keep]


def _ffill_index(valid: npt.NDArray[np.bool_], rows: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """For each row, the index of the latest row at or before it where `valid` holds."""
    idx = np.where(valid, rows, 0)
    np.maximum.accumulate(idx, out=idx)
    return idx


_UP, _KEEP, _DOWN = np.int8(1), np.int8(-1), np.int8(0)


class ThresholdFamily(Quiet):
    """What both implementations share: parameters, state, and the operator's and restart's hooks."""

    def __init__(self) -> None:
        self.params = ThresholdParams(RuleCatalog({}, {}, {}))
        self.state = ThresholdState(0)

    def load(self, catalog: RuleCatalog) -> None:
        self.params = ThresholdParams(catalog)
        self.state = ThresholdState(catalog.size, self.state)

    def restore(self, point: int, severity: int, below: bool) -> None:
        """After a restart, take an open alert's level as the point's state, so the next readings
        clear it or keep it instead of raising it again."""
        if point >= len(self.state.emitted) or not self.params.enabled[point]:
            return
        side = slice(2, 4) if below else slice(0, 2)
        reached = (self.params.severity[point, side] <= severity) & np.isfinite(self.params.enter[point, side])
        for st in (self.state.active, self.state.effective):
            st[point, side] = reached
        self.state.emitted[point] = severity

    def reset(self, point: int) -> None:
        """An operator reset a latched alarm: the point's severity is evaluated afresh."""
        if point < len(self.state.emitted):
            self.state.emitted[point] = 0


class Threshold(ThresholdFamily):
    """The vectorised threshold family."""

    def on_readings(self, readings: Readings) -> list[Signal]:
        prm, st = self.params, self.state
        pid = readings.point_id
        known = pid < len(prm.enabled)
        pid_k = np.where(known, pid, 0)
        keep = (
            known
            & prm.enabled[pid_k]
            & (readings.quality != 2)
            & (readings.value >= prm.vmin[pid_k])
            & (readings.value <= prm.vmax[pid_k])
            & (readings.ts_ms >= st.last_ts[pid_k])
        )
        if not keep.any():
            return []
        p, t, v = pid[keep], readings.ts_ms[keep], readings.value[keep]
        n = len(p)
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(p[1:], p[:-1], out=first[1:])
        last = np.empty(n, dtype=bool)
        last[-1] = True
        last[:-1] = first[1:]
        rows = np.arange(n)
        fi = np.flatnonzero(first)  # state is read only at each point's first row
        li = np.flatnonzero(last)  # and written only at each point's last row
        pf, pl = p[fi], p[li]
        # the (point, slot) state as flat views: 1-D gathers and scatters are several times faster
        active_flat, start_flat, eff_flat = (a.reshape(-1) for a in (st.active, st.run_start, st.effective))
        pf_at, pl_at = pf * SLOTS, pl * SLOTS
        db = prm.deadband[p]
        for_ms = prm.for_ms[p]
        delayed = bool((prm.for_ms[pf] > 0).any())
        effective = np.zeros((n, SLOTS), dtype=bool)
        level = np.zeros(n, dtype=np.int64)  # the highest severity among effective slots
        rise_at = np.full(n, NEVER, dtype=np.int64)  # the latest due time of slots becoming effective
        for slot in range(SLOTS):
            prior_active = active_flat[pf_at + slot]
            if not prm.used[slot][pf].any() and not prior_active.any():
                continue
            enter = prm.enter_by_slot[slot][p]
            x = v if slot < 2 else -v
            decisive = np.where(x >= enter, _UP, np.where(x < enter - db, _DOWN, _KEEP))
            seeded = decisive.copy()
            undecided = decisive[fi] < 0
            seeded[fi[undecided]] = prior_active[undecided]
            active = seeded[_ffill_index(seeded >= 0, rows)] > 0
            before = np.empty(n, dtype=bool)
            before[1:] = active[:-1]
            before[fi] = prior_active
            starts = active & ~before
            was = np.empty(n, dtype=bool)
            if delayed:
                carried = fi[active[fi] & prior_active]  # runs continuing from the previous batch
                run_start = t.copy()
                run_start[carried] = start_flat[p[carried] * SLOTS + slot]
                anchors = starts.copy()
                anchors[carried] = True
                run_start = run_start[_ffill_index(anchors, rows)]
                eff = active & (t - run_start >= for_ms)
                was[1:] = eff[:-1]
                was[fi] = eff_flat[pf_at + slot]
                np.maximum(rise_at, np.where(eff & ~was, run_start + for_ms, NEVER), out=rise_at)
                start_flat[pl_at + slot] = run_start[li]
            else:  # no on-delay in this batch: a slot is effective as soon as it is active
                eff = active
                was[1:] = eff[:-1]
                was[fi] = eff_flat[pf_at + slot]
                np.maximum(rise_at, np.where(eff & ~was, t, NEVER), out=rise_at)
                started = np.flatnonzero(starts)
                if len(started):  # keep each point's latest run start, as the delayed path does
                    start_flat[p[started] * SLOTS + slot] = t[started]
            effective[:, slot] = eff
            np.maximum(level, np.where(eff, prm.severity_by_slot[slot][p], 0), out=level)
            active_flat[pl_at + slot] = active[li]
            eff_flat[pl_at + slot] = eff[li]
        prior = st.emitted[pf].astype(np.int64)
        if prm.latch[pf].any():
            latch = prm.latch[p]
            seeded_level = level.copy()
            seeded_level[fi] = np.where(latch[fi], np.maximum(level[fi], prior), level[fi])
            segment = np.cumsum(first)
            held = np.maximum.accumulate(segment * 8 + seeded_level) - segment * 8
            level = np.where(latch, held, level)
        before_level = np.empty(n, dtype=np.int64)
        before_level[1:] = level[:-1]
        before_level[fi] = prior
        changed = np.nonzero(level != before_level)[0]
        signals = [
            prm.signal(
                int(p[i]),
                int(level[i]),
                int(rise_at[i]) if level[i] > before_level[i] else int(t[i]),
                float(v[i]),
                effective[i],
            )
            for i in changed.tolist()
        ]
        st.emitted[pl] = level[li]
        st.last_ts[pl] = t[li]
        st.last_value[pl] = v[li]
        signals.sort(key=lambda s: s.ts_ms)
        return signals

    def tick(self, now_ms: int) -> list[Signal]:
        prm, st = self.params, self.state
        due = st.run_start + prm.for_ms[:, None]
        pending = st.active & ~st.effective & (due <= now_ms)
        points = np.nonzero(pending.any(axis=1))[0]
        signals = []
        for point in points.tolist():
            newly = pending[point]
            st.effective[point] |= newly
            level = int(np.where(st.effective[point], prm.severity[point], 0).max())
            if prm.latch[point]:
                level = max(level, int(st.emitted[point]))
            at = int(np.where(newly, due[point], NEVER).max())
            st.last_ts[point] = max(int(st.last_ts[point]), at)
            if level != st.emitted[point]:
                st.emitted[point] = level
                signals.append(prm.signal(point, level, at, float(st.last_value[point]), st.effective[point]))
        signals.sort(key=lambda s: s.ts_ms)
        return signals
