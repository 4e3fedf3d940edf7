"""Personnel positioning (DOMAIN §2.1): headcount per zone, shift total, overtime, restricted
zones, SOS and lost tags, evaluated from tag position events in event time.

Events are few next to readings and keyed by tag strings, so the state is per-site dicts (the
tags located in each zone, each tag's last event) and one heap of tag timers instead of numpy
arrays: an event costs O(1) (it re-evaluates only the sources it touches), a tick pops only the
timers that are due.

Semantics where DOMAIN.md is silent (the reference implementation follows the same):
- A batch is evaluated in event-time order (stable sort by ts). An event not newer than its
  tag's latest event is late and changes nothing (a tag has one position per millisecond: the
  first event wins), except that a late SOS still raises: it is a real press.
- Each accepted event re-evaluates the sources it touches: its tag, the zones the tag was in
  before and after it, and its site. Every other source changes only through its timers or a
  catalog change, which the next `tick` applies at `now_ms`.
- Headcount: the limit L is the zone's `max_people`, else 9 for risk `high`, else none; a site
  under `rectification` caps it at min(L, 9) (9 where there was none). Zones missing from the
  catalog count people with the limit of a plain zone. Alarm (red) at L + 1 people; warning
  (yellow) at ceil(`headcount_warn_ratio` × (L + 1)), i.e. 8 for L = 9; a limit too small for a
  separate band (warn ≥ L + 1) only alarms. One signal per change of severity, value = count.
- Shift total: people on site (located and not exited) > `shift_capacity` → orange.
- Overtime: from the locate that brought the tag on site; due at since + `shift_hours`, yellow,
  cleared only by the tag's exit. Tag lost: due at its last event + `tag_lost_s`, yellow,
  cleared by its next event of any kind. A timer fires at its due time, from `tick` or, when an
  event of the same tag comes later than the due time, before that event is applied; an event
  exactly at the due time comes first (a tag leaving at the end of its shift is not overtime).
- Restricted zone: orange while the tag is in a restricted zone that does not allow it; moving
  from one such zone to another keeps the alert (no signal).
- SOS: red at every press (the family never clears it: an operator closes the alert, and a press
  after that must raise again); a later locate does not clear it.
- `load` keeps every tag and zone of sites that still exist; timers are rescheduled with the
  new durations (an active overtime or lost alert stays), limits and allow-lists apply to each
  source at its next event or at the next tick, whichever comes first.
- Replaying recent events into a fresh instance (signals discarded) and then ticking gives the
  live state (the same events in time order and the time decide it), and feeding events again
  changes nothing: they are late.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from operator import attrgetter

from sitewatch.catalog.rules import HEADCOUNT_LIMIT
from sitewatch.rules.base import (
    ORANGE,
    RED,
    YELLOW,
    PositionEvent,
    Quiet,
    RuleCatalog,
    Signal,
    SiteInfo,
    ZoneInfo,
)

LOCATE, EXIT, SOS = 0, 1, 2
OVERTIME, LOST = 0, 1  # tag timer kinds
RECTIFICATION_LIMIT = 9  # DOMAIN §2.1: a site under rectification keeps ≤ 9 people at one work location
NEVER = -(2**63)
EVENT_TIME = attrgetter("ts_ms")

Band = tuple[int, int] | None
"""(warn_at, alarm_at) headcounts of a zone, or None when it has no limit."""


def headcount_limit(site: SiteInfo, zone: ZoneInfo | None) -> int | None:
    """People allowed in a zone (None: no limit); `zone` None is a zone missing from the catalog."""
    limit = None
    if zone is not None:
        limit = zone.max_people if zone.max_people is not None else HEADCOUNT_LIMIT if zone.risk == "high" else None
    if site.state == "rectification":
        return RECTIFICATION_LIMIT if limit is None else min(limit, RECTIFICATION_LIMIT)
    return limit


def headcount_band(site: SiteInfo, zone: ZoneInfo | None) -> Band:
    """The warning and alarm headcounts; the rounding keeps 0.7 × 10 at 7, not 8."""
    limit = headcount_limit(site, zone)
    if limit is None:
        return None
    alarm_at = limit + 1
    return math.ceil(round(site.headcount_warn_ratio * alarm_at, 9)), alarm_at


def headcount_severity(count: int, band: Band) -> int:
    if band is None:
        return 0
    return RED if count >= band[1] else YELLOW if count >= band[0] else 0


def shift_ms(site: SiteInfo) -> int:
    return round(site.shift_hours * 3_600_000)


def lost_ms(site: SiteInfo) -> int:
    return round(site.tag_lost_s * 1000)


def signal_order(s: Signal) -> tuple[int, int, str, str, str]:
    """A total order on one call's signals, so both implementations list them alike."""
    return s.ts_ms, s.site_id, s.source_type, s.source_code, s.rule


# The signals, shared with the reference implementation so both say the same.


def headcount_signal(site: SiteInfo, zone: str, severity: int, ts: int, count: int, band: Band) -> Signal:
    if band is None:
        text, details = f"{zone} 区域人数 {count} (no limit)", None
    else:
        warn_at, alarm_at = band
        limit = alarm_at - 1
        details = {"limit": limit}
        if severity == RED:
            text = f"{zone} 区域人数 {count} > {limit}"
        elif severity == YELLOW:
            text = f"{zone} 区域人数 {count} ≥ {warn_at} (limit {limit})"
        else:
            text = f"{zone} 区域人数 {count} < {warn_at} (limit {limit})"
    return Signal(site.id, "zone", zone, "headcount", severity, ts, float(count), text, details=details)


def shift_total_signal(site: SiteInfo, severity: int, ts: int, count: int) -> Signal:
    capacity = site.shift_capacity
    text = f"{site.code} 井下人数 {count}"
    if capacity is not None:
        text += f" {'>' if severity else '≤'} {capacity}"
    return Signal(site.id, "site", site.code, "shift_total", severity, ts, float(count), text)


def overtime_signal(site: SiteInfo, tag: str, severity: int, ts: int, since: int) -> Signal:
    hours = (ts - since) / 3_600_000
    if severity:
        text = f"{tag} 下井时长 {hours:.1f} h ≥ {site.shift_hours:g} h"
    else:
        text = f"{tag} 出井 exit after {hours:.1f} h"
    return Signal(site.id, "tag", tag, "overtime", severity, ts, hours, text, details={"since_ms": since})


def lost_signal(site: SiteInfo, tag: str, severity: int, ts: int, last: int, zone: str | None) -> Signal:
    silent = (ts - last) / 1000
    if severity:
        text = f"{tag} 失联 {silent:g} s ≥ {site.tag_lost_s:g} s (last in {zone})"
    else:
        text = f"{tag} 恢复定位 heard again after {silent:g} s"
    return Signal(site.id, "tag", tag, "tag_lost", severity, ts, silent, text, details={"zone": zone, "last_ms": last})


def restricted_signal(site: SiteInfo, tag: str, severity: int, ts: int, zone: str) -> Signal:
    text = f"{tag} 进入限制区域 {zone}" if severity else f"{tag} 离开限制区域 {zone}"
    return Signal(site.id, "tag", tag, "restricted_zone", severity, ts, None, text, details={"zone": zone})


def sos_signal(site: SiteInfo, tag: str, ts: int, zone: str | None) -> Signal:
    text = f"{tag} 求救 SOS in {zone}" if zone is not None else f"{tag} 求救 SOS"
    return Signal(site.id, "tag", tag, "sos", RED, ts, None, text, details={"zone": zone})


@dataclass(slots=True)
class _Tag:
    zone: str | None = None  # None: off site
    last_ms: int = NEVER  # its latest accepted event
    since_ms: int = 0  # the locate that brought it on site
    due: list[int | None] = field(default_factory=lambda: [None, None])  # pending timers, by kind
    queued: list[int | None] = field(default_factory=lambda: [None, None])  # its heap entry's time, by kind
    active: list[bool] = field(default_factory=lambda: [False, False])  # overtime, lost raised
    restricted: str | None = None  # the restricted zone it is raised for


@dataclass(slots=True)
class _Site:
    info: SiteInfo
    bands: dict[str, Band] = field(default_factory=dict)  # catalog zones
    default_band: Band = None  # zones missing from the catalog
    allow: dict[str, frozenset[str]] = field(default_factory=dict)  # restricted zones → allowed tags
    shift_ms: int = 0
    lost_ms: int = 0
    tags: dict[str, _Tag] = field(default_factory=dict)
    zones: dict[str, set[str]] = field(default_factory=dict)  # occupied zones → tags located there
    zone_severity: dict[str, int] = field(default_factory=dict)  # raised zones only
    on_site: int = 0
    shift_severity: int = 0

    def configure(self, info: SiteInfo, zones: list[ZoneInfo]) -> None:
        self.info = info
        self.bands = {z.code: headcount_band(info, z) for z in zones}
        self.default_band = headcount_band(info, None)
        self.allow = {z.code: z.allow for z in zones if z.risk == "restricted"}
        self.shift_ms, self.lost_ms = shift_ms(info), lost_ms(info)


class Positioning(Quiet):
    """The positioning family: headcount, shift_total, overtime, restricted_zone, sos, tag_lost."""

    def __init__(self) -> None:
        self._sites: dict[int, _Site] = {}
        self._timers: list[tuple[int, int, str, int]] = []  # (due, site id, tag, kind), lazily invalidated
        self._stale = False  # a catalog change not yet applied to the sources no event touched

    def load(self, catalog: RuleCatalog) -> None:
        zones: dict[int, list[ZoneInfo]] = {}
        for z in catalog.zones.values():
            zones.setdefault(z.site_id, []).append(z)
        sites = {}
        for sid, info in catalog.sites.items():
            site = self._sites.get(sid) or _Site(info)
            site.configure(info, zones.get(sid, []))
            sites[sid] = site
        self._sites = sites
        self._timers = []
        for sid, site in sites.items():
            for code, tag in site.tags.items():
                on_site = tag.zone is not None
                tag.due[OVERTIME] = tag.since_ms + site.shift_ms if on_site and not tag.active[OVERTIME] else None
                tag.due[LOST] = tag.last_ms + site.lost_ms if on_site and not tag.active[LOST] else None
                tag.queued[:] = tag.due
                self._timers += [(due, sid, code, kind) for kind, due in enumerate(tag.due) if due is not None]
        heapq.heapify(self._timers)
        self._stale = True

    def occupancy(self, site_id: int) -> dict[str, list[str]]:
        """Occupied zones of a site → the tags located there, both sorted."""
        site = self._sites.get(site_id)
        return {z: sorted(tags) for z, tags in sorted(site.zones.items())} if site else {}

    def on_positions(self, events: list[PositionEvent]) -> list[Signal]:
        out: list[Signal] = []
        for ev in sorted(events, key=EVENT_TIME):
            site = self._sites.get(ev.site_id)
            if site is None:
                continue
            tag = site.tags.get(ev.tag)
            if tag is None:
                tag = site.tags[ev.tag] = _Tag()
            if ev.ts_ms > tag.last_ms:
                self._apply(site, ev, tag, out)
            if ev.kind == SOS:
                out.append(sos_signal(site.info, ev.tag, ev.ts_ms, ev.zone if ev.zone is not None else tag.zone))
        out.sort(key=signal_order)
        return out

    def tick(self, now_ms: int) -> list[Signal]:
        out: list[Signal] = []
        timers = self._timers
        while timers and timers[0][0] <= now_ms:
            queued, sid, code, kind = heapq.heappop(timers)
            site = self._sites[sid]
            tag = site.tags[code]
            tag.queued[kind] = None
            due = tag.due[kind]
            if due is None:
                continue
            if due > queued:  # the timer moved on since it was queued
                self._schedule(site, code, tag, kind)
            else:
                self._fire(site, code, tag, kind, due, out)
        if self._stale:
            self._stale = False
            for site in self._sites.values():
                for zone in site.zones.keys() | site.zone_severity.keys():
                    self._check_zone(site, zone, now_ms, out)
                self._check_site(site, now_ms, out)
                for code, tag in site.tags.items():
                    self._check_restricted(site, code, tag, now_ms, out)
        out.sort(key=signal_order)
        return out

    def _apply(self, site: _Site, ev: PositionEvent, tag: _Tag, out: list[Signal]) -> None:
        """Apply an event that is not late: fire the tag's overdue timers, then locate it.

        The sources it touches are re-evaluated only when their inputs changed (the tag moved),
        unless a catalog change is pending: results are the same, at a fraction of the cost of
        the common event, a tag heard again in the zone it was in."""
        code, ts, due = ev.tag, ev.ts_ms, tag.due
        for kind in (OVERTIME, LOST):
            at = due[kind]
            if at is not None and at < ts:
                self._fire(site, code, tag, kind, at, out)
        if tag.active[LOST]:
            tag.active[LOST] = False
            out.append(lost_signal(site.info, code, 0, ts, tag.last_ms, tag.zone))
        tag.last_ms = ts
        before = tag.zone
        after = None if ev.kind == EXIT else ev.zone if ev.zone is not None else before
        moved = after != before
        if moved:
            self._move(site, code, tag, after, ts, out)
        elif self._stale and after is not None:
            self._check_zone(site, after, ts, out)
        if moved or self._stale:
            self._check_site(site, ts, out)
            self._check_restricted(site, code, tag, ts, out)
        if after is not None:
            due[LOST] = ts + site.lost_ms
            self._schedule(site, code, tag, LOST)

    def _move(self, site: _Site, code: str, tag: _Tag, after: str | None, ts: int, out: list[Signal]) -> None:
        """Take the tag from its zone (or from off site) to `after` (None: off site)."""
        before, tag.zone = tag.zone, after
        if before is None:
            site.on_site += 1
            tag.since_ms = ts
            tag.due[OVERTIME] = ts + site.shift_ms
            self._schedule(site, code, tag, OVERTIME)
        else:
            located = site.zones[before]
            located.discard(code)
            if not located:
                del site.zones[before]
            self._check_zone(site, before, ts, out)
        if after is None:
            site.on_site -= 1
            tag.due[:] = [None, None]
            if tag.active[OVERTIME]:
                tag.active[OVERTIME] = False
                out.append(overtime_signal(site.info, code, 0, ts, tag.since_ms))
        else:
            site.zones.setdefault(after, set()).add(code)
            self._check_zone(site, after, ts, out)

    def _schedule(self, site: _Site, code: str, tag: _Tag, kind: int) -> None:
        """Queue the tag's timer unless an entry already waits: timers only move later, so the
        waiting entry re-queues it when popped (one heap entry per tag and kind)."""
        due = tag.due[kind]
        if tag.queued[kind] is None and due is not None:
            tag.queued[kind] = due
            heapq.heappush(self._timers, (due, site.info.id, code, kind))

    def _fire(self, site: _Site, code: str, tag: _Tag, kind: int, due: int, out: list[Signal]) -> None:
        tag.due[kind] = None
        tag.active[kind] = True
        if kind == OVERTIME:
            out.append(overtime_signal(site.info, code, YELLOW, due, tag.since_ms))
        else:
            out.append(lost_signal(site.info, code, YELLOW, due, tag.last_ms, tag.zone))

    def _check_zone(self, site: _Site, zone: str, ts: int, out: list[Signal]) -> None:
        located = site.zones.get(zone)
        count = len(located) if located else 0
        band = site.bands.get(zone, site.default_band)
        severity = headcount_severity(count, band)
        if severity != site.zone_severity.get(zone, 0):
            if severity:
                site.zone_severity[zone] = severity
            else:
                del site.zone_severity[zone]
            out.append(headcount_signal(site.info, zone, severity, ts, count, band))

    def _check_site(self, site: _Site, ts: int, out: list[Signal]) -> None:
        capacity = site.info.shift_capacity
        severity = ORANGE if capacity is not None and site.on_site > capacity else 0
        if severity != site.shift_severity:
            site.shift_severity = severity
            out.append(shift_total_signal(site.info, severity, ts, site.on_site))

    def _check_restricted(self, site: _Site, code: str, tag: _Tag, ts: int, out: list[Signal]) -> None:
        allowed = site.allow.get(tag.zone) if tag.zone is not None else None
        zone = tag.zone if allowed is not None and code not in allowed else None
        if zone is not None and tag.restricted is None:
            out.append(restricted_signal(site.info, code, ORANGE, ts, zone))
        elif zone is None and tag.restricted is not None:
            out.append(restricted_signal(site.info, code, 0, ts, tag.restricted))
        tag.restricted = zone
