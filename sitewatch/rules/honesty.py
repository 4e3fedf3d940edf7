"""Power monitoring and data honesty (DOMAIN §2.6): offline points and gateways, frozen values,
明停暗开 (`stopped_but_running`) and 虚假离线 (`fake_offline`), over numpy state arrays.

Per-point state lives in arrays indexed by point id, per-site state in arrays indexed by the
site's position in the catalog. A batch is evaluated with numpy; Python loops only over the few
sources that change state. Semantics where DOMAIN.md is silent (the reference follows the same):

- Late data: a reading older than its point's latest reading is ignored by every rule here. A
  non-finite value counts as bad quality. Bad readings prove a point alive but carry no value
  (they neither extend nor break a frozen run, nor change the site's power).
- Offline (yellow, kind `point_offline`): every point has a silence timer, due at
  max(last reading, arm time) + factor × period_s (the `offline` rule's factor, else 3). A point
  is armed by the first `tick` after it entered the catalog if it has not reported by then (so a
  point that never reports times from that tick), and by the return of its gateway. `tick(now)`
  fires every due ≤ now at its due time; gaps inside a batch do not raise (offline means data not
  arriving). The point is back at its first reading (any quality) at or after the time it went
  offline; an older one (in flight) proves nothing about the outage. Only points that carry an
  `offline` rule signal; the others go silent quietly, which `fake_offline` still counts.
- Gateway last will (`on_status(online=False)`): every point whose latest reading came through
  that gateway and is not already offline goes offline at once, quietly: one orange signal with
  source_type "gateway", rule `offline`, kind `gateway_offline` (value: points last heard through
  it) stands for them, and no point signal follows while they stay offline. The gateway is back
  at an `online` status not older than its will, or at its first reading at or after the will,
  whichever comes first: that clears its signal and re-arms the points it took down (their
  timers count from that moment; a point that does not report then goes offline on its own).
  A point that reports through another gateway is back by itself and leaves the gateway down.
- Frozen (blue): an analog point carrying `frozen` whose good/uncertain values stay exactly equal
  for more than frozen_s, detected on the reading that makes the run span (time since the first
  reading of the run) exceed it, at that reading's time; no timer. A run of a value in
  `except_values` never freezes. The first different value clears it.
- Site power: the power points of a site are its `power_kw` points and any point carrying
  `stopped_but_running` or `fake_offline`; the total is the sum of their latest valid values,
  however old, kept in integer milliwatts so that it is exact and drift-free. A site rule takes
  the parameters of the lowest-id power point carrying it; it is inactive when the site has no
  such point or neither `baseline_kw` nor the site's `power_baseline_kw` is set. Production =
  total > factor × baseline.
- stopped_but_running (orange): state `stopped` or `rectification` and production.
- fake_offline (orange): production, the site has monitoring points (all its non-power points),
  every one of them is silent (offline, by timer or gateway), and at least one power point is
  not: power data that is itself silent shows nothing. It clears when a monitoring point reports,
  the power drops, or the power data goes silent too.
- Both site rules hold for for_s before raising (on-delay from the time the condition became
  true), fired by `tick` at its due time, or at the change that ends the condition when that
  comes after the due time (raise then clear). The condition is re-evaluated after each step of
  each reading (gateway return, point return, power value), at each timer and status event, and
  for every site at the first tick after a `load` (state or baseline changes apply then, if no
  reading came first). A site's state never goes back in time: a change is stamped at
  max(event time, the latest event the site evaluated), so a power reading that arrives after a
  gateway's will but is older than it starts fake_offline at the will.
- `load` keeps the state of points and sites that still exist (matched by site and point code).
  A point losing its `frozen` rule forgets its run without a signal; an offline point keeps its
  state (and clears with a signal if it raised one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from sitewatch.catalog.rules import FakeOffline, Frozen, Offline, Spec, StoppedButRunning
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

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

NEVER = int(np.iinfo(np.int64).min)  # no time: never reported, not armed, not offline, no run
NOT_DUE = int(np.iinfo(np.int64).max)  # the due time of a timer that is not running
BAD = 2
MW_PER_KW = 1_000_000
STOPPED_STATES = frozenset({"stopped", "rectification"})
SITE_RULES = ("stopped_but_running", "fake_offline")  # index r of the per-site (S, 2) arrays
SBR, FAKE = 0, 1
GATEWAY_BACK, POINT_BACK, POWER = 0, 1, 2  # the steps of one reading, in the order they apply


def param(spec: dict[str, Any], model: type[Spec], name: str) -> Any:
    """A rule parameter, or its catalog default when the spec leaves it out."""
    return spec[name] if name in spec else model.model_fields[name].get_default(call_default_factory=True)


DEFAULT_FACTOR: float = param({}, Offline, "factor")


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def to_mw(kw: float) -> int:
    """A power value in integer milliwatts, rounded half to even like `np.rint`."""
    return round(kw * MW_PER_KW)


@dataclass(frozen=True, slots=True)
class PointConfig:
    """What this family reads from one point's rules (the first rule of a family governs)."""

    timeout_ms: int  # silent this long → offline
    alerting: bool  # carries an `offline` rule: its offline state is signalled
    frozen_ms: int | None  # None: no `frozen` rule
    except_values: tuple[float, ...]
    power: bool  # counts in its site's total power

    @classmethod
    def of(cls, point: PointInfo) -> PointConfig:
        specs = {spec["rule"]: spec for spec in reversed(point.rules)}
        offline, frozen = specs.get("offline"), specs.get("frozen")
        factor = DEFAULT_FACTOR if offline is None else param(offline, Offline, "factor")
        return cls(
            timeout_ms=ms(factor * point.period_s),
            alerting=offline is not None,
            frozen_ms=None if frozen is None else ms(param(frozen, Frozen, "frozen_s")),
            except_values=() if frozen is None else tuple(param(frozen, Frozen, "except_values")),
            power=point.kind == "power_kw" or any(rule in specs for rule in SITE_RULES),
        )


@dataclass(frozen=True, slots=True)
class PowerRule:
    """A site's `stopped_but_running` or `fake_offline` rule with its baseline resolved."""

    factor: float
    baseline_kw: float
    for_ms: int

    @property
    def limit_mw(self) -> int:
        """Production is a total above this (for an integer total, > floor(x) ⟺ > x)."""
        return math.floor(self.factor * self.baseline_kw * MW_PER_KW)


SiteRules = tuple[PowerRule | None, PowerRule | None]
"""A site's (stopped_but_running, fake_offline) rules, None where inactive."""


def power_rules(catalog: RuleCatalog) -> dict[int, SiteRules]:
    """Per site id: the rules of its lowest-id point carrying each, with the baseline resolved."""
    found: dict[tuple[int, int], PowerRule | None] = {}
    for pid in sorted(catalog.points):
        point = catalog.points[pid]
        for spec in point.rules:
            r = SITE_RULES.index(spec["rule"]) if spec["rule"] in SITE_RULES else None
            if r is None or (point.site_id, r) in found:
                continue
            model = FakeOffline if r == FAKE else StoppedButRunning
            baseline = param(spec, model, "baseline_kw") or catalog.sites[point.site_id].power_baseline_kw
            factor, for_ms = param(spec, model, "factor"), ms(param(spec, model, "for_s"))
            found[point.site_id, r] = PowerRule(factor, baseline, for_ms) if baseline else None
    return {s: (found.get((s, SBR)), found.get((s, FAKE))) for s in catalog.sites}


def signal_order(s: Signal) -> tuple[int, int, str, str, str]:
    """A total order on one call's signals, so both implementations list them alike."""
    return s.ts_ms, s.site_id, s.source_type, s.source_code, s.rule


def ordered(signals: Iterable[Signal]) -> list[Signal]:
    return sorted(signals, key=signal_order)


# The signals, shared with the reference implementation so both say the same.


def offline_signal(point: PointInfo, severity: int, ts: int, timeout_ms: int, value: float | None) -> Signal:
    message = (
        f"{point.code} 离线 offline: no data for {timeout_ms / 1000:g} s"
        if severity
        else f"{point.code} 恢复上报 reporting again"
    )
    return Signal(point.site_id, "point", point.code, "offline", severity, ts, value, message, "point_offline")


def gateway_signal(site_id: int, code: str, severity: int, ts: int, heard: int = 0) -> Signal:
    """`heard`: the points last heard through the gateway, when it goes down."""
    message = (
        f"{code} 网关离线 gateway offline (last will): {heard} points" if severity else f"{code} 网关恢复 gateway back"
    )
    value = float(heard) if severity else None
    return Signal(site_id, "gateway", code, "offline", severity, ts, value, message, "gateway_offline")


def frozen_signal(point: PointInfo, severity: int, ts: int, value: float, span_ms: int, frozen_ms: int) -> Signal:
    reading = f"{value:g} {point.unit}".rstrip()
    message = (
        f"{point.code} 数值冻结 frozen value {reading} for {span_ms / 1000:g} s > {frozen_ms / 1000:g} s"
        if severity
        else f"{point.code} 数值恢复变化 value changed: {reading}"
    )
    return Signal(point.site_id, "point", point.code, "frozen", severity, ts, value, message)


def site_signal(site: SiteInfo, r: int, rule: PowerRule | None, severity: int, ts: int, total_mw: int,
                monitors: int) -> Signal:  # fmt: skip
    """`monitors`: the site's monitoring points, all silent when fake_offline raises."""
    kw = total_mw / MW_PER_KW
    if severity == 0:
        message = f"{site.code} {SITE_RULES[r]} cleared: power {kw:g} kW"
    else:
        assert rule is not None, "only an active rule raises"
        limit = f"{kw:g} kW > {rule.factor:g} × {rule.baseline_kw:g} kW for {rule.for_ms / 1000:g} s"
        message = (
            f"{site.code} 明停暗开 stopped but running ({site.state}): {limit}"
            if r == SBR
            else f"{site.code} 虚假离线 fake offline: {monitors} monitoring points silent, {limit}"
        )
    return Signal(site.id, "site", site.code, SITE_RULES[r], severity, ts, kw, message)


@dataclass(slots=True)
class _Points:
    """Per-point state, indexed by point id."""

    last_ts: I64  # latest reading (any quality)
    arm_ts: I64  # the silence timer also counts from here
    gateway: I32  # the gateway of the latest reading
    off_since: I64  # offline since (NEVER: online)
    off_gateway: I32  # taken offline by this gateway's last will (-1: by its own timer)
    off_signalled: Bools  # its offline raise was signalled
    value: F64  # latest valid value of a frozen-rule point
    run_start: I64  # first reading of its current run of equal values
    frozen: Bools
    power_mw: I64  # latest valid value of a power point

    @classmethod
    def empty(cls, n: int) -> _Points:
        def never() -> I64:
            return np.full(n, NEVER, np.int64)

        return cls(
            never(), never(), np.full(n, -1, np.int32), never(), np.full(n, -1, np.int32),
            np.zeros(n, bool), np.full(n, np.nan), never(), np.zeros(n, bool), np.zeros(n, np.int64),
        )  # fmt: skip

    def carried(self, src: I64) -> _Points:
        """The state for a new numbering: new point i takes old point src[i] (-1: a new point)."""
        new, keep = _Points.empty(len(src)), src >= 0
        for f in fields(self):
            getattr(new, f.name)[keep] = getattr(self, f.name)[src[keep]]
        return new


@dataclass(slots=True)
class _Sites:
    """Per-site state, indexed by the site's position in the catalog; (S, 2) arrays per rule."""

    clock: I64  # the latest event the site evaluated
    cond: Bools
    since: I64  # the condition has held since (NEVER: not holding)
    raised: Bools
    total_mw: I64  # the inputs, recomputed at each load
    monitors_alive: I64
    power_alive: I64

    @classmethod
    def empty(cls, n: int) -> _Sites:
        return cls(
            np.full(n, NEVER, np.int64), np.zeros((n, 2), bool), np.full((n, 2), NEVER, np.int64),
            np.zeros((n, 2), bool), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64),
        )  # fmt: skip

    def carried(self, src: I64) -> _Sites:
        new, keep = _Sites.empty(len(src)), src >= 0
        for name in ("clock", "cond", "since", "raised"):
            getattr(new, name)[keep] = getattr(self, name)[src[keep]]
        return new


@dataclass(frozen=True, slots=True)
class _Gateway:
    site_id: int
    code: str
    since: int  # its last will


@dataclass(slots=True)
class _Rows:
    """Changes to site inputs, one row per point and step. A site evaluates its rules after each
    (time, seq, step) group, seq being the reading's row in the batch (in `tick`, the point id)."""

    columns: list[list[I64]]  # site, t, seq, step, Δ total_mw, Δ monitoring points alive, Δ power points alive

    @classmethod
    def new(cls) -> _Rows:
        return cls([[] for _ in range(7)])

    def add(self, site: I64, t: I64 | int, seq: I64 | int, step: int, d_total: I64 | int, d_monitors: Any,
            d_powers: Any) -> None:  # fmt: skip
        n = len(site)
        for column, values in zip(self.columns, (site, t, seq, step, d_total, d_monitors, d_powers), strict=True):
            column.append(np.broadcast_to(np.asarray(values, dtype=np.int64), (n,)))

    def arrays(self) -> list[I64]:
        return [np.concatenate(c) if c else np.zeros(0, np.int64) for c in self.columns]


def _heads(keys: npt.NDArray[Any]) -> Bools:
    """True at the first row of each run of equal keys."""
    head = np.ones(len(keys), dtype=bool)
    head[1:] = keys[1:] != keys[:-1]
    return head


def _tails(keys: npt.NDArray[Any]) -> Bools:
    """True at the last row of each run of equal keys."""
    tail = np.ones(len(keys), dtype=bool)
    tail[:-1] = keys[1:] != keys[:-1]
    return tail


def _previous(x: npt.NDArray[Any], head: Bools, first: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Each row's previous row within its run; `first` (row-aligned) at the run's first row."""
    prev = np.empty_like(x)
    prev[1:] = x[:-1]
    prev[head] = first[head]
    return prev


class Honesty(Quiet):
    """offline, frozen, stopped_but_running and fake_offline, vectorised."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], int] = {}
        self._site_codes: list[str] = []
        self._infos: list[PointInfo | None] = []
        self._site_infos: list[SiteInfo] = []
        self._rules: list[SiteRules] = []
        self._pts = _Points.empty(0)
        self._sites = _Sites.empty(0)
        self._gateways: dict[int, _Gateway] = {}
        self._rearm = False  # arm new points and re-evaluate every site at the next tick
        self._configure(0, 0)

    def _configure(self, n: int, s: int) -> None:
        """Empty parameter arrays for n point ids and s sites."""
        self._exists = np.zeros(n, bool)
        self._site = np.full(n, -1, np.int64)
        self._timeout = np.zeros(n, np.int64)
        self._alerting = np.zeros(n, bool)
        self._frozen_ms = np.full(n, -1, np.int64)  # -1: no frozen rule
        self._except = np.zeros((n, 0))
        self._power = np.zeros(n, bool)
        self._monitor = np.zeros(n, bool)
        self._due = np.full(n, NOT_DUE, np.int64)
        self._active = np.zeros((s, 2), bool)
        self._limit = np.full((s, 2), NOT_DUE, np.int64)  # inactive: no total exceeds it
        self._for = np.zeros((s, 2), np.int64)
        self._stopped = np.zeros(s, bool)
        self._monitors = np.zeros(s, np.int64)

    def load(self, catalog: RuleCatalog) -> None:
        sites = sorted(catalog.sites)
        index = {sid: i for i, sid in enumerate(sites)}
        codes = [catalog.sites[sid].code for sid in sites]
        keys = {(catalog.sites[p.site_id].code, p.code): p.id for p in catalog.points.values()}
        n, s = catalog.size, len(sites)
        src = np.full(n, -1, np.int64)
        for key, pid in keys.items():
            src[pid] = self._keys.get(key, -1)
        old_sites = {code: i for i, code in enumerate(self._site_codes)}
        self._pts = pts = self._pts.carried(src)
        self._sites = st = self._sites.carried(np.array([old_sites.get(c, -1) for c in codes], np.int64))
        self._keys, self._site_codes = keys, codes
        self._infos = [catalog.points.get(i) for i in range(n)]
        self._site_infos = [catalog.sites[sid] for sid in sites]
        self._configure(n, s)
        excepted: list[tuple[int, tuple[float, ...]]] = []
        for point in catalog.points.values():
            i, config = point.id, PointConfig.of(point)
            self._exists[i], self._site[i] = True, index[point.site_id]
            self._timeout[i], self._alerting[i], self._power[i] = config.timeout_ms, config.alerting, config.power
            if config.frozen_ms is not None:
                self._frozen_ms[i] = config.frozen_ms
                excepted.append((i, config.except_values))
        self._except = np.full((n, max((len(e) for _, e in excepted), default=0)), np.nan)
        for i, values in excepted:
            self._except[i, : len(values)] = values
        self._monitor = self._exists & ~self._power
        rules = power_rules(catalog)
        self._rules = [rules[sid] for sid in sites]
        for i, pair in enumerate(self._rules):
            for r, rule in enumerate(pair):
                if rule:
                    self._active[i, r], self._limit[i, r], self._for[i, r] = True, rule.limit_mw, rule.for_ms
        self._stopped = np.array([catalog.sites[sid].state in STOPPED_STATES for sid in sites], bool)
        unfrozen = self._frozen_ms < 0
        pts.frozen[unfrozen], pts.value[unfrozen], pts.run_start[unfrozen] = False, np.nan, NEVER
        alive = self._exists & (pts.off_since == NEVER)
        self._monitors = np.bincount(self._site[self._monitor], minlength=s).astype(np.int64)
        st.monitors_alive = np.bincount(self._site[self._monitor & alive], minlength=s).astype(np.int64)
        st.power_alive = np.bincount(self._site[self._power & alive], minlength=s).astype(np.int64)
        power = np.flatnonzero(self._power)
        np.add.at(st.total_mw, self._site[power], pts.power_mw[power])
        self._refresh_due(np.flatnonzero(self._exists))
        self._rearm = True

    def _refresh_due(self, idx: npt.NDArray[np.integer[Any]]) -> None:
        pts = self._pts
        base = np.maximum(pts.last_ts[idx], pts.arm_ts[idx])
        idle = (pts.off_since[idx] != NEVER) | (base == NEVER)  # offline already, or not armed yet
        self._due[idx] = np.where(idle, NOT_DUE, base + self._timeout[idx])

    def _info(self, pid: int) -> PointInfo:
        info = self._infos[pid]
        assert info is not None, f"point {pid} is not in the catalog"
        return info

    # ---- readings ---------------------------------------------------------------------------

    def on_readings(self, readings: Readings) -> list[Signal]:
        pts = self._pts
        pid = readings.point_id.astype(np.int64)
        current = readings.ts_ms >= pts.last_ts[pid]
        pid, ts = pid[current], readings.ts_ms[current]
        value, gateway = readings.value[current], readings.gateway[current]
        if not len(pid):
            return []
        valid = (readings.quality[current] != BAD) & np.isfinite(value)
        signals: list[Signal] = []
        rows = _Rows.new()
        tail = _tails(pid)
        pts.last_ts[pid[tail]], pts.gateway[pid[tail]] = ts[tail], gateway[tail]
        back = self._returns(pid, ts, gateway, value, signals, rows)
        self._refresh_due(np.union1d(pid[tail], back))
        self._frozen_values(pid[valid], ts[valid], value[valid], signals)
        self._power_values(pid, ts, value, valid, rows)
        signals += self._evaluate(rows)
        return ordered(signals)

    def _returns(self, pid: I64, ts: I64, gateway: I32, value: F64, signals: list[Signal], rows: _Rows) -> I64:
        """Points back from offline, each at its earliest return: its own reading at or after the
        outage began, or its gateway's. Returns the points back."""
        since = self._pts.off_since[pid]
        own = np.flatnonzero((since != NEVER) & (ts >= since))
        own = own[_heads(pid[own])]  # each point's first such reading
        back = [(pid[own], ts[own], own.astype(np.int64), np.full(len(own), POINT_BACK))]
        back += self._gateway_returns(gateway, ts, signals)
        p, t, seq, step = (np.concatenate(c) for c in zip(*back, strict=True))
        order = np.lexsort((step, seq, t, p))
        earliest = order[_heads(p[order])]
        p, t, seq, step = p[earliest], t[earliest], seq[earliest], step[earliest]
        self._back(p, t, seq, step, value[seq], signals, rows)
        return p

    def _gateway_returns(self, gateway: I32, ts: I64, signals: list[Signal]) -> list[tuple[I64, I64, I64, I64]]:
        """Offline gateways a reading came through at or after their will: clear them, and list
        the points they took down as (point, time, seq, step)."""
        found: list[tuple[I64, I64, I64, I64]] = []
        if not self._gateways:
            return found
        for g in np.unique(gateway[np.isin(gateway, list(self._gateways))]):
            gate = self._gateways[int(g)]
            through = np.flatnonzero((gateway == g) & (ts >= gate.since))
            if not len(through):
                continue
            first = int(through[np.argmin(ts[through])])  # the earliest; on equal times the lowest point id
            del self._gateways[int(g)]
            signals.append(gateway_signal(gate.site_id, gate.code, 0, int(ts[first])))
            taken = np.flatnonzero(self._pts.off_gateway == g).astype(np.int64)
            n = len(taken)
            found.append((taken, np.full(n, ts[first]), np.full(n, first, np.int64), np.full(n, GATEWAY_BACK)))
        return found

    def _back(self, p: I64, t: I64, seq: I64, step: I64, values: F64, signals: list[Signal], rows: _Rows) -> None:
        """Points p are back at t: clear their offline signal, re-arm those their gateway took down."""
        pts = self._pts
        for k in np.flatnonzero(pts.off_signalled[p]):
            i = int(p[k])
            signals.append(offline_signal(self._info(i), 0, int(t[k]), int(self._timeout[i]), float(values[k])))
        rearm = p[step == GATEWAY_BACK]
        pts.arm_ts[rearm] = np.maximum(pts.arm_ts[rearm], t[step == GATEWAY_BACK])
        pts.off_since[p], pts.off_gateway[p], pts.off_signalled[p] = NEVER, -1, False
        for s in (GATEWAY_BACK, POINT_BACK):
            m = step == s
            rows.add(self._site[p[m]], t[m], seq[m], s, 0, self._monitor[p[m]], self._power[p[m]])

    def _frozen_values(self, pid: I64, ts: I64, value: F64, signals: list[Signal]) -> None:
        pts = self._pts
        keep = self._frozen_ms[pid] >= 0
        p, t, v = pid[keep], ts[keep], value[keep]
        head = _heads(p)
        changed = v != _previous(v, head, pts.value[p])
        anchor = np.maximum.accumulate(np.where(changed | head, np.arange(len(p)), 0))
        run_start = np.where(changed, t, pts.run_start[p])[anchor]
        span = t - run_start
        excepted = (self._except[p] == v[:, None]).any(axis=1)
        frozen = ~excepted & (span > self._frozen_ms[p])
        for k in np.flatnonzero(frozen != _previous(frozen, head, pts.frozen[p])):
            i, sev = int(p[k]), BLUE if frozen[k] else 0
            limit = int(self._frozen_ms[i])
            signals.append(frozen_signal(self._info(i), sev, int(t[k]), float(v[k]), int(span[k]), limit))
        tail = _tails(p)
        pts.value[p[tail]], pts.run_start[p[tail]], pts.frozen[p[tail]] = v[tail], run_start[tail], frozen[tail]

    def _power_values(self, pid: I64, ts: I64, value: F64, valid: Bools, rows: _Rows) -> None:
        pts = self._pts
        seq = np.flatnonzero(valid & self._power[pid]).astype(np.int64)
        p = pid[seq]
        mw = np.rint(value[seq] * MW_PER_KW).astype(np.int64)
        delta = mw - _previous(mw, _heads(p), pts.power_mw[p])
        tail = _tails(p)
        pts.power_mw[p[tail]] = mw[tail]
        rows.add(self._site[p], ts[seq], seq, POWER, delta, 0, 0)

    # ---- sites --------------------------------------------------------------------------------

    def _evaluate(self, rows: _Rows) -> list[Signal]:
        """Apply the rows to their sites in (site, time, seq, step) order, evaluate both site rules
        after each group, and run the few condition changes through `_change`."""
        site, t, seq, step, d_total, d_monitors, d_powers = rows.arrays()
        if not len(site):
            return []
        order = np.lexsort((step, seq, t, site))
        site, t, seq, step = site[order], t[order], seq[order], step[order]
        st = self._sites
        seg_head = _heads(site)
        seg = np.cumsum(seg_head) - 1

        def running(delta: I64, start: I64) -> I64:
            """start[site] + the site's changes so far: exact integer prefix sums per site."""
            d = delta[order]
            c = np.cumsum(d)
            before_site: I64 = (c - d)[seg_head][seg]
            return start[site] + c - before_site

        total = running(d_total, st.total_mw)
        monitors = running(d_monitors, st.monitors_alive)
        powers = running(d_powers, st.power_alive)
        group_end = np.ones(len(site), dtype=bool)
        group_end[:-1] = (site[1:] != site[:-1]) | (t[1:] != t[:-1]) | (seq[1:] != seq[:-1]) | (step[1:] != step[:-1])
        e = np.flatnonzero(group_end)
        se, te, tot = site[e], t[e], total[e]
        cond = self._conds(se, tot, monitors[e], powers[e])
        head = _heads(se)
        prev = _previous(cond, head, st.cond[se])
        before = _previous(tot, head, st.total_mw[se])
        signals: list[Signal] = []
        for k in np.flatnonzero((cond != prev).any(axis=1)):
            for r in np.flatnonzero(cond[k] != prev[k]):
                signals += self._change(int(se[k]), int(r), bool(cond[k, r]), int(te[k]), int(before[k]), int(tot[k]))
        last = e[_tails(se)]
        st.total_mw[site[last]], st.monitors_alive[site[last]] = total[last], monitors[last]
        st.power_alive[site[last]] = powers[last]
        st.clock[site[last]] = np.maximum(st.clock[site[last]], t[last])
        return signals

    def _conds(self, s: I64, total: I64, monitors: I64, powers: I64) -> Bools:
        production = total[:, None] > self._limit[s]
        stopped = production[:, SBR] & self._stopped[s]
        fake = production[:, FAKE] & (self._monitors[s] > 0) & (monitors == 0) & (powers > 0)
        return np.stack([stopped, fake], axis=1)

    def _change(self, s: int, r: int, cond: bool, t: int, before_mw: int, total_mw: int) -> list[Signal]:
        """The condition of site rule r changed at t: start its on-delay, or end it (a matured
        on-delay raises first: the condition held long enough), clearing a raised alert."""
        st = self._sites
        eff = max(t, int(st.clock[s]))
        st.clock[s], st.cond[s, r] = eff, cond
        signals: list[Signal] = []
        if cond:
            st.since[s, r] = eff
            if self._for[s, r] == 0:
                signals.append(self._raise(s, r, eff, total_mw))
            return signals
        due = int(st.since[s, r] + self._for[s, r])
        if self._active[s, r] and not st.raised[s, r] and due <= eff:
            signals.append(self._raise(s, r, due, before_mw))
        if st.raised[s, r]:
            signals.append(self._site_signal(s, r, 0, eff, total_mw))
        st.since[s, r], st.raised[s, r] = NEVER, False
        return signals

    def _raise(self, s: int, r: int, ts: int, total_mw: int) -> Signal:
        st = self._sites
        st.raised[s, r] = True
        st.clock[s] = max(int(st.clock[s]), ts)
        return self._site_signal(s, r, ORANGE, ts, total_mw)

    def _site_signal(self, s: int, r: int, severity: int, ts: int, total_mw: int) -> Signal:
        return site_signal(self._site_infos[s], r, self._rules[s][r], severity, ts, total_mw, int(self._monitors[s]))

    # ---- timers and status --------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Signal]:
        pts, st = self._pts, self._sites
        if self._rearm:
            unarmed = np.flatnonzero(self._exists & (pts.arm_ts == NEVER) & (pts.last_ts == NEVER))
            pts.arm_ts[unarmed] = now_ms
            self._refresh_due(unarmed)
        signals: list[Signal] = []
        rows = _Rows.new()
        hit = np.flatnonzero(self._due <= now_ms).astype(np.int64)
        due = self._due[hit]
        order = np.lexsort((hit, due))
        hit, due = hit[order], due[order]
        pts.off_since[hit], pts.off_gateway[hit], pts.off_signalled[hit] = due, -1, self._alerting[hit]
        self._due[hit] = NOT_DUE
        for k in np.flatnonzero(self._alerting[hit]):
            i = int(hit[k])
            signals.append(offline_signal(self._info(i), YELLOW, int(due[k]), int(self._timeout[i]), None))
        self._silenced(rows, hit, due, hit)
        signals += self._evaluate(rows)
        matured = st.since + self._for
        mature = self._active & (st.since != NEVER) & ~st.raised & (matured <= now_ms)
        for s, r in zip(*np.nonzero(mature), strict=True):
            signals.append(self._raise(int(s), int(r), int(matured[s, r]), int(st.total_mw[s])))
        if self._rearm:
            self._rearm = False
            rows = _Rows.new()
            rows.add(np.arange(len(self._site_codes), dtype=np.int64), now_ms, 0, 0, 0, 0, 0)
            signals += self._evaluate(rows)
        return ordered(signals)

    def on_status(self, site_id: int, gateway: str, gateway_index: int, online: bool, ts_ms: int) -> list[Signal]:
        pts = self._pts
        gate = self._gateways.get(gateway_index)
        rows = _Rows.new()
        if online:
            if gate is None or ts_ms < gate.since:
                return []
            del self._gateways[gateway_index]
            signals = [gateway_signal(gate.site_id, gate.code, 0, ts_ms)]
            taken = np.flatnonzero(pts.off_gateway == gateway_index).astype(np.int64)
            at = np.full(len(taken), ts_ms, np.int64)
            self._back(taken, at, at * 0, at * 0 + GATEWAY_BACK, np.full(len(taken), np.nan), signals, rows)
            self._refresh_due(taken)
        else:
            if gate is not None:
                return []
            heard = np.flatnonzero(pts.gateway == gateway_index)
            taken = heard[pts.off_since[heard] == NEVER].astype(np.int64)
            pts.off_since[taken], pts.off_gateway[taken], pts.off_signalled[taken] = ts_ms, gateway_index, False
            self._due[taken] = NOT_DUE
            self._gateways[gateway_index] = _Gateway(site_id, gateway, ts_ms)
            signals = [gateway_signal(site_id, gateway, ORANGE, ts_ms, len(heard))]
            self._silenced(rows, taken, ts_ms, 0)
        signals += self._evaluate(rows)
        return ordered(signals)

    def _silenced(self, rows: _Rows, p: I64, t: I64 | int, seq: I64 | int) -> None:
        """Points p went silent at t: their sites lose them from the points alive."""
        rows.add(self._site[p], t, seq, 0, 0, -self._monitor[p].astype(np.int64), -self._power[p].astype(np.int64))
