"""Every reference family, in the order of `sitewatch.rules.engine.default_families`."""

from __future__ import annotations

from sitewatch.rules.base import Family
from sitewatch.rules.reference import dust, honesty, positioning, slope, tank, threshold


def families() -> list[Family]:
    return [
        threshold.Threshold(),
        positioning.Positioning(),
        slope.Slope(),
        tank.Tank(),
        dust.Dust(),
        honesty.Honesty(),
    ]
