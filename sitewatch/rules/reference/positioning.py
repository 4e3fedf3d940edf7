"""The positioning family the plain way (the oracle): one event at a time, headcounts counted
afresh from every tag's location, timers found by scanning every tag, and every source
re-evaluated at each tick. Semantics: see `sitewatch.rules.positioning`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sitewatch.rules.base import ORANGE, YELLOW, PositionEvent, Quiet, RuleCatalog, Signal, SiteInfo
from sitewatch.rules.positioning import (
    EXIT,
    NEVER,
    SOS,
    headcount_band,
    headcount_severity,
    headcount_signal,
    lost_ms,
    lost_signal,
    overtime_signal,
    restricted_signal,
    shift_ms,
    shift_total_signal,
    signal_order,
    sos_signal,
)


@dataclass(slots=True)
class _Tag:
    zone: str | None = None
    last_ms: int = NEVER
    since_ms: int = 0
    overtime: bool = False
    lost: bool = False
    restricted: str | None = None


@dataclass(slots=True)
class _Site:
    tags: dict[str, _Tag] = field(default_factory=dict)
    zone_severity: dict[str, int] = field(default_factory=dict)
    shift_severity: int = 0


class Positioning(Quiet):
    """The positioning family, one event at a time."""

    def __init__(self) -> None:
        self.catalog = RuleCatalog({}, {}, {})
        self.sites: dict[int, _Site] = {}

    def load(self, catalog: RuleCatalog) -> None:
        self.catalog = catalog
        self.sites = {sid: self.sites.get(sid) or _Site() for sid in catalog.sites}

    def occupancy(self, site_id: int) -> dict[str, list[str]]:
        zones: dict[str, list[str]] = {}
        for code, tag in self.sites[site_id].tags.items() if site_id in self.sites else ():
            if tag.zone is not None:
                zones.setdefault(tag.zone, []).append(code)
        return {z: sorted(tags) for z, tags in sorted(zones.items())}

    def on_positions(self, events: list[PositionEvent]) -> list[Signal]:
        out: list[Signal] = []
        for ev in sorted(events, key=lambda e: e.ts_ms):
            if ev.site_id not in self.sites:
                continue
            info = self.catalog.sites[ev.site_id]
            site = self.sites[ev.site_id]
            tag = site.tags.setdefault(ev.tag, _Tag())
            if ev.ts_ms > tag.last_ms:
                self._fire_due(info, ev.tag, tag, ev.ts_ms - 1, out)
                if tag.lost:
                    tag.lost = False
                    out.append(lost_signal(info, ev.tag, 0, ev.ts_ms, tag.last_ms, tag.zone))
                tag.last_ms = ev.ts_ms
                before = tag.zone
                if ev.kind == EXIT:
                    tag.zone = None
                elif ev.zone is not None:
                    tag.zone = ev.zone
                if before is None and tag.zone is not None:
                    tag.since_ms = ev.ts_ms
                if before is not None and tag.zone is None and tag.overtime:
                    tag.overtime = False
                    out.append(overtime_signal(info, ev.tag, 0, ev.ts_ms, tag.since_ms))
                for zone in {before, tag.zone}:
                    if zone is not None:
                        self._check_zone(info, site, zone, ev.ts_ms, out)
                self._check_site(info, site, ev.ts_ms, out)
                self._check_restricted(info, ev.tag, tag, ev.ts_ms, out)
            if ev.kind == SOS:
                out.append(sos_signal(info, ev.tag, ev.ts_ms, ev.zone if ev.zone is not None else tag.zone))
        out.sort(key=signal_order)
        return out

    def tick(self, now_ms: int) -> list[Signal]:
        out: list[Signal] = []
        for sid, site in self.sites.items():
            info = self.catalog.sites[sid]
            for code, tag in site.tags.items():
                self._fire_due(info, code, tag, now_ms, out)
            zones = {t.zone for t in site.tags.values() if t.zone is not None} | set(site.zone_severity)
            for zone in zones:
                self._check_zone(info, site, zone, now_ms, out)
            self._check_site(info, site, now_ms, out)
            for code, tag in site.tags.items():
                self._check_restricted(info, code, tag, now_ms, out)
        out.sort(key=signal_order)
        return out

    def _fire_due(self, info: SiteInfo, code: str, tag: _Tag, until: int, out: list[Signal]) -> None:
        """Raise the tag's overtime and lost conditions if they fell due at or before `until`."""
        if tag.zone is None:
            return
        overtime_at = tag.since_ms + shift_ms(info)
        if not tag.overtime and overtime_at <= until:
            tag.overtime = True
            out.append(overtime_signal(info, code, YELLOW, overtime_at, tag.since_ms))
        lost_at = tag.last_ms + lost_ms(info)
        if not tag.lost and lost_at <= until:
            tag.lost = True
            out.append(lost_signal(info, code, YELLOW, lost_at, tag.last_ms, tag.zone))

    def _check_zone(self, info: SiteInfo, site: _Site, zone: str, ts: int, out: list[Signal]) -> None:
        count = sum(1 for t in site.tags.values() if t.zone == zone)
        band = headcount_band(info, self.catalog.zones.get((info.id, zone)))
        severity = headcount_severity(count, band)
        if severity != site.zone_severity.get(zone, 0):
            site.zone_severity[zone] = severity
            out.append(headcount_signal(info, zone, severity, ts, count, band))

    def _check_site(self, info: SiteInfo, site: _Site, ts: int, out: list[Signal]) -> None:
        count = sum(1 for t in site.tags.values() if t.zone is not None)
        severity = ORANGE if info.shift_capacity is not None and count > info.shift_capacity else 0
        if severity != site.shift_severity:
            site.shift_severity = severity
            out.append(shift_total_signal(info, severity, ts, count))

    def _check_restricted(self, info: SiteInfo, code: str, tag: _Tag, ts: int, out: list[Signal]) -> None:
        zone = self.catalog.zones.get((info.id, tag.zone)) if tag.zone is not None else None
        violated = zone.code if zone is not None and zone.risk == "restricted" and code not in zone.allow else None
        if violated is not None and tag.restricted is None:
            out.append(restricted_signal(info, code, ORANGE, ts, violated))
        elif violated is None and tag.restricted is not None:
            out.append(restricted_signal(info, code, 0, ts, tag.restricted))
        tag.restricted = violated
