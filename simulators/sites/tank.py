"""A tank farm: level, temperature (and a sphere's pressure) per tank, an emergency shutoff valve
per tank with command and feedback, an interlock bypass switch, combustible gas detectors and the
pumps' power.

Levels swing slowly between about 35 and 70 % (high at 85), temperatures follow the day. Now and
then (one hour in four) an operator closes a tank's valve for 5–15 minutes; its feedback follows
the command after a 3–6 s stroke, well inside the 30 s the valve rule allows. A `stopped` farm
keeps its valves closed, its tanks still and draws its idle power.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.signals import F64, HOUR_MS, MINUTE_MS, Analog, Samples, constant, key_of, uniform
from simulators.sites.base import PointSim, SiteSim

CLOSED = 1.0  # what command and feedback report for closed (the valve rule's default closed_value)


@dataclass(frozen=True, slots=True)
class ValveOps:
    """A shutoff valve closed now and then: `feedback` lags the command by the stroke."""

    key: int
    feedback: bool
    chance: float = 0.25

    def __call__(self, s: Samples) -> F64:
        hour = s.ts // HOUR_MS
        closes = uniform(self.key, hour, 31) < self.chance
        start = hour * HOUR_MS + (uniform(self.key, hour, 32) * 40 * MINUTE_MS).astype(np.int64)
        end = start + ((5 + 10 * uniform(self.key, hour, 33)) * MINUTE_MS).astype(np.int64)
        if self.feedback:
            stroke = (3000 + 3000 * uniform(self.key, hour, 34)).astype(np.int64)
            start, end = start + stroke, end + stroke
        return np.where(closes & (s.ts >= start) & (s.ts < end), CLOSED, 0.0)


class TankFarm(SiteSim):
    kind = "tank_farm"
    label = "储罐区"
    power_baseline_kw = 80.0

    def __init__(self, code: str, *, tanks: int = 4, **kw: Any) -> None:
        super().__init__(code, **kw)
        stopped = self.state != "operating"
        for i in range(1, tanks + 1):
            tank, valve = f"TK-{i:02d}", f"ESV-{i:02d}"
            level = Analog(50 + 5 * (i % 3), 0.05, slow=0 if stopped else 15, slow_period_h=6 + i, lo=0, hi=100)
            self.add(PointSim(f"{tank}.LT", "tank_level", "%", 5, "GW-TANK", level, pair=f"{valve}.FB"))
            self.add(PointSim(f"{tank}.TT", "tank_temperature", "°C", 10, "GW-TANK", Analog(22, 0.1, daily=4)))
            if i == tanks:  # the last tank is a pressure sphere
                pressure = Analog(0.75, 0.004, daily=0.06, decimals=3)
                self.add(PointSim(f"{tank}.PT", "tank_pressure", "MPa", 5, "GW-TANK", pressure))
            key = key_of(self.seed, self.code, valve)
            command = constant(CLOSED) if stopped else ValveOps(key, feedback=False)
            feedback = constant(CLOSED) if stopped else ValveOps(key, feedback=True)
            self.add(PointSim(f"{valve}.CMD", "valve_command", "", 2, "GW-TANK", command, digital=True))
            self.add(
                PointSim(f"{valve}.FB", "valve_feedback", "", 2, "GW-TANK", feedback, pair=f"{valve}.CMD", digital=True)
            )
        self.add(PointSim("IL-1", "interlock_bypass", "", 10, "GW-TANK", constant(0), digital=True))
        for g in range(1, tanks + 3):
            gas = Analog(1.5, 0.25, daily=0.3, lo=0.1, hi=100, decimals=1)
            self.add(PointSim(f"GT-{g:02d}", "gas_lel", "%LEL", 5, "GW-GAS", gas))
        power = Analog(35, 2, lo=20, decimals=1) if stopped else Analog(340, 8, daily=40, peak_h=10, decimals=1)
        self.add(PointSim("PM-1", "power_kw", "kW", 10, "GW-PWR", power))
