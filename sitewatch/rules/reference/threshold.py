"""The threshold family one reading at a time: the oracle for `sitewatch.rules.threshold`."""

from __future__ import annotations

from sitewatch.rules.base import Readings, Signal
from sitewatch.rules.threshold import NEVER, SLOTS, ThresholdFamily


class Threshold(ThresholdFamily):
    def _reading(self, point: int, ts: int, value: float) -> Signal | None:
        prm, st = self.params, self.state
        newly_due = NEVER
        for slot in range(SLOTS):
            x = value if slot < 2 else -value
            enter = prm.enter[point, slot]
            active = bool(st.active[point, slot])
            if x >= enter:
                active = True
            elif x < enter - prm.deadband[point]:
                active = False
            if active and not st.active[point, slot]:
                st.run_start[point, slot] = ts
            effective = active and ts - st.run_start[point, slot] >= prm.for_ms[point]
            if effective and not st.effective[point, slot]:
                newly_due = max(newly_due, int(st.run_start[point, slot] + prm.for_ms[point]))
            st.active[point, slot] = active
            st.effective[point, slot] = effective
        level = max((int(prm.severity[point, s]) for s in range(SLOTS) if st.effective[point, s]), default=0)
        if prm.latch[point]:
            level = max(level, int(st.emitted[point]))
        previous = int(st.emitted[point])
        st.emitted[point] = level
        st.last_ts[point] = ts
        st.last_value[point] = value
        if level == previous:
            return None
        return prm.signal(point, level, newly_due if level > previous else ts, value, st.effective[point])

    def on_readings(self, readings: Readings) -> list[Signal]:
        prm = self.params
        signals = []
        for point, ts, value, quality in zip(
            readings.point_id.tolist(),
            readings.ts_ms.tolist(),
            readings.value.tolist(),
            readings.quality.tolist(),
            strict=True,
        ):
            if point >= len(prm.enabled) or not prm.enabled[point] or quality == 2:
                continue
            if not prm.vmin[point] <= value <= prm.vmax[point] or ts < self.state.last_ts[point]:
                continue
            signal = self._reading(point, ts, value)
            if signal is not None:
                signals.append(signal)
        signals.sort(key=lambda s: s.ts_ms)
        return signals

    def tick(self, now_ms: int) -> list[Signal]:
        prm, st = self.params, self.state
        signals = []
        for point in range(len(st.emitted)):
            newly_due = NEVER
            for slot in range(SLOTS):
                due = int(st.run_start[point, slot] + prm.for_ms[point])
                if st.active[point, slot] and not st.effective[point, slot] and due <= now_ms:
                    st.effective[point, slot] = True
                    newly_due = max(newly_due, due)
            if newly_due == NEVER:
                continue
            st.last_ts[point] = max(int(st.last_ts[point]), newly_due)
            level = max((int(prm.severity[point, s]) for s in range(SLOTS) if st.effective[point, s]), default=0)
            if prm.latch[point]:
                level = max(level, int(st.emitted[point]))
            if level != st.emitted[point]:
                st.emitted[point] = level
                signals.append(prm.signal(point, level, newly_due, float(st.last_value[point]), st.effective[point]))
        signals.sort(key=lambda s: s.ts_ms)
        return signals
