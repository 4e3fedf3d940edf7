"""Data honesty one reading at a time: the oracle for `sitewatch.rules.honesty` (same semantics,
documented there). A batch is taken in event-time order (on equal times by point id, then batch
order); each reading applies its steps in turn (its gateway back, itself back, its frozen run,
its power value) and the site re-evaluates after each step that changed one of its inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from sitewatch.rules.base import (
    BLUE,
    ORANGE,
    YELLOW,
    PointInfo,
    Quiet,
    Readings,
    RuleCatalog,
    Signal,
    SiteInfo,
)
from sitewatch.rules.honesty import (
    BAD,
    FAKE,
    SBR,
    STOPPED_STATES,
    PointConfig,
    SiteRules,
    frozen_signal,
    gateway_signal,
    offline_signal,
    ordered,
    power_rules,
    site_signal,
    to_mw,
)


@dataclass(slots=True)
class _Point:
    info: PointInfo
    config: PointConfig
    key: tuple[str, str]  # (site code, point code): what a reload matches
    last_ts: int | None = None
    arm_ts: int | None = None
    gateway: int = -1
    off_since: int | None = None
    off_gateway: int = -1
    off_signalled: bool = False
    value: float | None = None
    run_start: int = 0
    frozen: bool = False
    power_mw: int = 0

    def due(self) -> int | None:
        """When its silence timer fires, None when it is offline or not armed yet."""
        times = [t for t in (self.last_ts, self.arm_ts) if t is not None]
        return None if self.off_since is not None or not times else max(times) + self.config.timeout_ms


@dataclass(slots=True)
class _RuleState:
    cond: bool = False
    since: int | None = None
    raised: bool = False


@dataclass(slots=True)
class _Site:
    info: SiteInfo
    rules: SiteRules
    states: list[_RuleState] = field(default_factory=lambda: [_RuleState(), _RuleState()])
    clock: int | None = None
    total_mw: int = 0
    power: list[_Point] = field(default_factory=list)
    monitors: list[_Point] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Gateway:
    site_id: int
    code: str
    since: int


class Honesty(Quiet):
    def __init__(self) -> None:
        self._points: dict[int, _Point] = {}
        self._sites: dict[int, _Site] = {}
        self._gateways: dict[int, _Gateway] = {}
        self._rearm = False

    def load(self, catalog: RuleCatalog) -> None:
        old_points = {p.key: p for p in self._points.values()}
        old_sites = {s.info.code: s for s in self._sites.values()}
        rules = power_rules(catalog)
        self._sites = {}
        for sid, info in catalog.sites.items():
            old = old_sites.get(info.code)
            self._sites[sid] = (
                _Site(info, rules[sid]) if old is None else _Site(info, rules[sid], old.states, old.clock)
            )
        self._points = {}
        for pid in sorted(catalog.points):
            pinfo = catalog.points[pid]
            key, config = (catalog.sites[pinfo.site_id].code, pinfo.code), PointConfig.of(pinfo)
            old_point = old_points.get(key)
            point = _Point(pinfo, config, key) if old_point is None else replace(old_point, info=pinfo, config=config)
            if config.frozen_ms is None:
                point.value, point.frozen = None, False
            self._points[pid] = point
            site = self._sites[pinfo.site_id]
            if config.power:
                site.power.append(point)
                site.total_mw += point.power_mw
            else:
                site.monitors.append(point)
        self._rearm = True

    def on_readings(self, readings: Readings) -> list[Signal]:
        pid, ts = readings.point_id.tolist(), readings.ts_ms.tolist()
        value, quality, gateway = readings.value.tolist(), readings.quality.tolist(), readings.gateway.tolist()
        signals: list[Signal] = []
        for i in sorted(range(len(pid)), key=lambda i: (ts[i], pid[i])):
            point, t, v = self._points[pid[i]], ts[i], value[i]
            if point.last_ts is not None and t < point.last_ts:
                continue
            point.last_ts, point.gateway = t, gateway[i]
            gate = self._gateways.get(gateway[i])
            if gate is not None and t >= gate.since:
                signals += self._gateway_back(gateway[i], t)
            if point.off_since is not None and t >= point.off_since:
                signals += self._point_back(point, t, v)
            if quality[i] == BAD or not math.isfinite(v):
                continue
            if point.config.frozen_ms is not None:
                signals += self._frozen(point, t, v)
            if point.config.power:
                site = self._sites[point.info.site_id]
                before, mw = site.total_mw, to_mw(v)
                site.total_mw += mw - point.power_mw
                point.power_mw = mw
                signals += self._evaluate(site, t, before)
        return ordered(signals)

    def _gateway_back(self, index: int, t: int) -> list[Signal]:
        gate = self._gateways.pop(index)
        signals = [gateway_signal(gate.site_id, gate.code, 0, t)]
        sites: dict[int, _Site] = {}
        for point in self._points.values():
            if point.off_gateway == index:
                point.off_since, point.off_gateway = None, -1
                point.arm_ts = t if point.arm_ts is None else max(point.arm_ts, t)
                sites[point.info.site_id] = self._sites[point.info.site_id]
        for site in sites.values():
            signals += self._evaluate(site, t, site.total_mw)
        return signals

    def _point_back(self, point: _Point, t: int, v: float) -> list[Signal]:
        signals = [offline_signal(point.info, 0, t, point.config.timeout_ms, v)] if point.off_signalled else []
        point.off_since, point.off_gateway, point.off_signalled = None, -1, False
        site = self._sites[point.info.site_id]
        return signals + self._evaluate(site, t, site.total_mw)

    def _frozen(self, point: _Point, t: int, v: float) -> list[Signal]:
        frozen_ms = point.config.frozen_ms
        assert frozen_ms is not None
        if point.value is None or v != point.value:
            point.value, point.run_start = v, t
        span = t - point.run_start
        frozen = v not in point.config.except_values and span > frozen_ms
        if frozen == point.frozen:
            return []
        point.frozen = frozen
        return [frozen_signal(point.info, BLUE if frozen else 0, t, v, span, frozen_ms)]

    def _holds(self, site: _Site, r: int) -> bool:
        rule = site.rules[r]
        if rule is None or site.total_mw <= rule.limit_mw:
            return False
        if r == SBR:
            return site.info.state in STOPPED_STATES
        silent = all(p.off_since is not None for p in site.monitors)
        return bool(site.monitors) and silent and any(p.off_since is None for p in site.power)

    def _evaluate(self, site: _Site, t: int, before_mw: int) -> list[Signal]:
        signals: list[Signal] = []
        eff = site.clock = t if site.clock is None else max(t, site.clock)
        for r in (SBR, FAKE):
            state, rule, cond = site.states[r], site.rules[r], self._holds(site, r)
            if cond == state.cond:
                continue
            state.cond = cond
            if cond:
                state.since = eff
                if rule is not None and rule.for_ms == 0:
                    signals.append(self._raise(site, r, eff, site.total_mw))
                continue
            if rule is not None and state.since is not None and not state.raised and state.since + rule.for_ms <= eff:
                signals.append(self._raise(site, r, state.since + rule.for_ms, before_mw))
            if state.raised:
                signals.append(self._signal(site, r, 0, eff, site.total_mw))
            state.since, state.raised = None, False
        return signals

    def _raise(self, site: _Site, r: int, ts: int, total_mw: int) -> Signal:
        site.states[r].raised = True
        site.clock = ts if site.clock is None else max(site.clock, ts)
        return self._signal(site, r, ORANGE, ts, total_mw)

    def _signal(self, site: _Site, r: int, severity: int, ts: int, total_mw: int) -> Signal:
        return site_signal(site.info, r, site.rules[r], severity, ts, total_mw, len(site.monitors))

    def tick(self, now_ms: int) -> list[Signal]:
        if self._rearm:
            for point in self._points.values():
                if point.arm_ts is None and point.last_ts is None:
                    point.arm_ts = now_ms
        signals: list[Signal] = []
        due_points = [(due, pid) for pid, p in self._points.items() if (due := p.due()) is not None and due <= now_ms]
        for due, pid in sorted(due_points):
            point = self._points[pid]
            point.off_since, point.off_gateway, point.off_signalled = due, -1, point.config.alerting
            if point.config.alerting:
                signals.append(offline_signal(point.info, YELLOW, due, point.config.timeout_ms, None))
            site = self._sites[point.info.site_id]
            signals += self._evaluate(site, due, site.total_mw)
        for site in self._sites.values():
            for r, (state, rule) in enumerate(zip(site.states, site.rules, strict=True)):
                if rule is None or state.since is None or state.raised:
                    continue
                if state.since + rule.for_ms <= now_ms:
                    signals.append(self._raise(site, r, state.since + rule.for_ms, site.total_mw))
        if self._rearm:
            self._rearm = False
            for site in self._sites.values():
                signals += self._evaluate(site, now_ms, site.total_mw)
        return ordered(signals)

    def on_status(self, site_id: int, gateway: str, gateway_index: int, online: bool, ts_ms: int) -> list[Signal]:
        gate = self._gateways.get(gateway_index)
        if online:
            return [] if gate is None or ts_ms < gate.since else ordered(self._gateway_back(gateway_index, ts_ms))
        if gate is not None:
            return []
        heard = [p for p in self._points.values() if p.gateway == gateway_index]
        sites: dict[int, _Site] = {}
        for point in heard:
            if point.off_since is None:
                point.off_since, point.off_gateway, point.off_signalled = ts_ms, gateway_index, False
                sites[point.info.site_id] = self._sites[point.info.site_id]
        self._gateways[gateway_index] = _Gateway(site_id, gateway, ts_ms)
        signals = [gateway_signal(site_id, gateway, ORANGE, ts_ms, len(heard))]
        for site in sites.values():
            signals += self._evaluate(site, ts_ms, site.total_mw)
        return ordered(signals)
