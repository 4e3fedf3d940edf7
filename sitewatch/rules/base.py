"""What every rule family shares: the compiled catalog, the batch shapes, the signal it emits.

A family is edge-triggered: it emits a `Signal` when the condition of one source changes severity
(0 = clear, 1–4 = blue, yellow, orange, red), at the event time the change happened. The tracker
turns signals into alert raises, escalations, re-triggers and clears.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sitewatch.catalog.models import Catalog

BLUE, YELLOW, ORANGE, RED = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Signal:
    """One source's condition for one rule family changed to `severity` at `ts_ms`."""

    site_id: int
    source_type: str  # "point", "zone", "site", "tag" or "gateway"
    source_code: str
    rule: str  # a PROTOCOL §4 rule family name
    severity: int  # 0: the condition cleared
    ts_ms: int
    value: float | None = None
    message: str = ""
    kind: str | None = None  # a finer kind within the family, e.g. "feedback_without_command"
    details: dict[str, Any] | None = None  # e.g. a slope's forecast failure time

    @property
    def key(self) -> tuple[int, str, str, str]:
        return (self.site_id, self.source_type, self.source_code, self.rule)


@dataclass(frozen=True, slots=True)
class SiteInfo:
    id: int
    code: str
    kind: str
    timezone: str = "Asia/Shanghai"
    state: str = "operating"  # operating, stopped, rectification
    shift_capacity: int | None = None
    power_baseline_kw: float | None = None
    shift_hours: float = 10.0
    tag_lost_s: float = 900.0
    rainfall_mm_h: float = 30.0
    headcount_warn_ratio: float = 0.8


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    site_id: int
    code: str
    name: str = ""
    risk: str = "normal"  # normal, high, restricted
    max_people: int | None = None
    allow: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PointInfo:
    id: int
    site_id: int
    code: str
    kind: str
    unit: str = ""
    period_s: float = 60.0
    pair: str | None = None
    rules: tuple[dict[str, Any], ...] = ()  # effective rules, every default filled in


@dataclass(slots=True)
class RuleCatalog:
    """The catalog as the evaluator needs it: dense per-point arrays plus lookups."""

    sites: dict[int, SiteInfo]
    zones: dict[tuple[int, str], ZoneInfo]
    points: dict[int, PointInfo]
    site_ids: dict[str, int] = field(init=False)
    point_ids: dict[tuple[int, str], int] = field(init=False)
    size: int = field(init=False)  # one more than the largest point id: the length of per-point arrays

    def __post_init__(self) -> None:
        self.site_ids = {s.code: s.id for s in self.sites.values()}
        self.point_ids = {(p.site_id, p.code): p.id for p in self.points.values()}
        self.size = max(self.points, default=-1) + 1

    def only(self, codes: set[str]) -> RuleCatalog:
        """The part of the catalog for the sites `codes` (a shard's), with the same ids."""
        ids = {s.id for s in self.sites.values() if s.code in codes}
        return RuleCatalog(
            {i: s for i, s in self.sites.items() if i in ids},
            {k: z for k, z in self.zones.items() if k[0] in ids},
            {i: p for i, p in self.points.items() if p.site_id in ids},
        )

    def pair_of(self, point: PointInfo) -> int:
        """The id of the point's `pair` on the same site, or -1."""
        return self.point_ids.get((point.site_id, point.pair), -1) if point.pair else -1

    def with_rule(self, rule: str, **match: Any) -> Iterable[tuple[PointInfo, dict[str, Any]]]:
        """(point, rule spec) for each point carrying `rule` (and, e.g., check="spark")."""
        for point in self.points.values():
            for spec in point.rules:
                if spec.get("rule") == rule and all(spec.get(k) == v for k, v in match.items()):
                    yield point, spec

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> RuleCatalog:
        """Number a validated document's sites and points in order (tests and benchmarks; the
        service loads the same shape from the database, with its ids)."""
        sites = {}
        for i, s in enumerate(catalog.sites, start=1):
            extra = s.model_dump(
                include={
                    "shift_capacity",
                    "power_baseline_kw",
                    "shift_hours",
                    "tag_lost_s",
                    "rainfall_mm_h",
                    "headcount_warn_ratio",
                }
            )
            sites[i] = SiteInfo(i, s.code, s.kind, s.timezone, s.state, **extra)
        site_ids = {s.code: s.id for s in sites.values()}
        zones = {
            (site_ids[z.site], z.code): ZoneInfo(
                site_ids[z.site], z.code, z.name, z.risk, z.max_people, frozenset(z.allow)
            )
            for z in catalog.zones
        }
        points = {
            i: PointInfo(
                i, site_ids[p.site], p.code, p.kind, p.unit, p.period_s, p.pair, tuple(catalog.effective_rules(p))
            )
            for i, p in enumerate(catalog.points)
        }
        return cls(sites, zones, points)


@dataclass(slots=True)
class Readings:
    """A batch of readings of many points, sorted by (point_id, ts_ms) by the engine."""

    point_id: npt.NDArray[np.int32]
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.int16]  # 0 good, 1 uncertain, 2 bad
    gateway: npt.NDArray[np.int32]  # index into the engine's gateway registry, per row

    def __len__(self) -> int:
        return len(self.point_id)


@dataclass(frozen=True, slots=True)
class PositionEvent:
    site_id: int
    tag: str
    ts_ms: int
    kind: int  # 0 locate, 1 exit, 2 sos
    zone: str | None


class Family(Protocol):
    """A rule family. Every method returns the signals it produced, in event-time order."""

    def load(self, catalog: RuleCatalog) -> None:
        """Build (or rebuild, keeping the state of sources that still exist) the state arrays."""

    def on_readings(self, readings: Readings) -> list[Signal]: ...

    def on_positions(self, events: list[PositionEvent]) -> list[Signal]: ...

    def on_status(self, site_id: int, gateway: str, gateway_index: int, online: bool, ts_ms: int) -> list[Signal]: ...

    def tick(self, now_ms: int) -> list[Signal]:
        """Fire timers (on-delays, offline, overtime, tag lost) due at or before `now_ms`."""


class Quiet:
    """Empty handlers for the inputs a family ignores: each family overrides what it consumes."""

    def on_readings(self, readings: Readings) -> list[Signal]:
        return []

    def on_positions(self, events: list[PositionEvent]) -> list[Signal]:
        return []

    def on_status(self, site_id: int, gateway: str, gateway_index: int, online: bool, ts_ms: int) -> list[Signal]:
        return []

    def tick(self, now_ms: int) -> list[Signal]:
        return []
