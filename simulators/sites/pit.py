"""An open pit: GNSS prisms on the slopes, a rain gauge, a crack meter, a piezometer and power.

The prisms creep at 0.1–0.3 mm/d, far below the 2 mm/d that normalises the tangent angle, with
0.02 mm of noise: the slope rules' acceleration compares the slopes of two half windows, and a
noisier or daily-cycling displacement would read as acceleration. Showers come in about one hour
in twelve and stay below the 30 mm/h that raises slope alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.signals import F64, HOUR_MS, Analog, Samples, uniform
from simulators.sites.base import PointSim, SiteSim


@dataclass(frozen=True, slots=True)
class Showers:
    """Rain in mm/h: in a wet hour (chance `chance`) a shower rises to its peak and dies away."""

    chance: float = 0.08
    peak_mm_h: float = 15.0

    def __call__(self, s: Samples) -> F64:
        hour = s.ts // HOUR_MS
        wet = uniform(s.key, hour, 21) < self.chance
        peak = 1.0 + (self.peak_mm_h - 1.0) * uniform(s.key, hour, 22)
        shape: F64 = np.sin(np.pi * (s.ts % HOUR_MS).astype(np.float64) / HOUR_MS) ** 2
        rain: F64 = np.where(wet, peak * shape, 0.0)
        return np.round(rain, 1)


class OpenPit(SiteSim):
    kind = "open_pit"
    label = "露天矿山"
    power_baseline_kw = 200.0

    def __init__(self, code: str, *, prisms: int = 6, **kw: Any) -> None:
        super().__init__(code, **kw)
        for i in range(prisms):
            creep = Analog(10.0 + 3 * i, 0.02, trend_per_day=0.1 + 0.04 * (i % 5))
            self.add(PointSim(f"GNSS-{i + 1:02d}", "slope_displacement", "mm", 60, "GW-SLOPE", creep))
        self.add(PointSim("RG-1", "rainfall", "mm/h", 60, "GW-SLOPE", Showers()))
        self.add(PointSim("CM-1", "generic", "mm", 60, "GW-SLOPE", Analog(4.2, 0.01, trend_per_day=0.005)))
        self.add(PointSim("PZ-1", "generic", "kPa", 60, "GW-SLOPE", Analog(85, 0.5, slow=3)))
        self.add(PointSim("PM-1", "power_kw", "kW", 10, "GW-PWR", Analog(900, 12, daily=150, peak_h=11, decimals=1)))
