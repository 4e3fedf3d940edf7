"""A dust-explosion plant: per dust collector its differential pressure (loading up between pulse
cleanings), ash-hopper and inlet temperatures, spark detector, fan, airlock and isolation valve,
plus the plant's power. It runs around the clock: the differential-pressure rule has no notion of
a stopped fan, so a collector switched off would read as a broken bag (below 300 Pa).
"""

from __future__ import annotations

from typing import Any

from simulators.signals import Analog, constant
from simulators.sites.base import PointSim, SiteSim

MONITORING = "GW-DUST"


class DustPlant(SiteSim):
    kind = "dust_plant"
    label = "粉尘涉爆企业"
    power_baseline_kw = 60.0

    def __init__(self, code: str, *, collectors: int = 2, **kw: Any) -> None:
        super().__init__(code, **kw)
        for c in range(1, collectors + 1):
            dc = f"DC-{c}"
            dp = Analog(1050, 12, saw=250, saw_period_s=900, decimals=0)
            self.add(PointSim(f"{dc}.DP", "dust_dp", "Pa", 5, MONITORING, dp))
            self.add(PointSim(f"{dc}.HT", "hopper_temperature", "°C", 10, MONITORING, Analog(38, 0.2, daily=5)))
            self.add(PointSim(f"{dc}.SP", "spark", "", 2, MONITORING, constant(0), digital=True))
            self.add(PointSim(f"{dc}.FAN", "fan_running", "", 5, MONITORING, constant(1), digital=True))
            airlock = PointSim(f"{dc}.AL", "airlock_running", "", 5, MONITORING, constant(1), pair=f"{dc}.FAN")
            airlock.digital = True
            self.add(airlock)
            self.add(PointSim(f"{dc}.IT", "generic", "°C", 10, MONITORING, Analog(30, 0.2, daily=4)))
            self.add(PointSim(f"{dc}.IV", "generic", "", 10, MONITORING, constant(0), digital=True))
        self.add(PointSim("PM-1", "power_kw", "kW", 10, "GW-PWR", Analog(420, 6, daily=40, peak_h=10, decimals=1)))
