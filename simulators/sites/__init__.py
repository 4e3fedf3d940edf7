"""Simulated sites, one module per kind: each makes its catalog fragment and its gateways' traffic."""

from simulators.sites.base import (
    BAD_VALUE,
    NO_FAULTS,
    Batch,
    Faults,
    Message,
    Outage,
    PointSim,
    SiteSim,
    merge_catalogs,
)
from simulators.sites.dust import DustPlant
from simulators.sites.mine import UndergroundMine
from simulators.sites.pit import OpenPit
from simulators.sites.tank import TankFarm

KINDS: dict[str, type[SiteSim]] = {
    "underground_mine": UndergroundMine,
    "open_pit": OpenPit,
    "tank_farm": TankFarm,
    "dust_plant": DustPlant,
}
"""Site kind (PROTOCOL §5) → its simulator."""

__all__ = [
    "BAD_VALUE",
    "KINDS",
    "NO_FAULTS",
    "Batch",
    "DustPlant",
    "Faults",
    "Message",
    "OpenPit",
    "Outage",
    "PointSim",
    "SiteSim",
    "TankFarm",
    "UndergroundMine",
    "merge_catalogs",
]
