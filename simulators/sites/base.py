"""A simulated site: its catalog fragment (PROTOCOL §5) and what its gateways send, in simulated
event time (PROTOCOL §1).

`step(t_ms)` returns the messages due since the previous step: one telemetry batch per gateway
with every reading whose sample time (or, for a late reading, delayed send time) has come, the
positioning events of the period, and connection changes. It never looks at the wall clock, so
the runner drives it in real time and the dry run in fast simulated time, with the same output
for the same seed.

Faults of a normal site, all harmless by construction: analog readings are now and then `bad`
(with a garbage value no rule may evaluate) or `uncertain` (with the true value), and now and
then sent late, out of order, by up to one period (late enough to be re-sorted, never so late
that the point looks offline: that needs a silence of 3 periods). Digital points (valves, fans,
airlocks, spark detectors, interlocks) report their state on time and good, as state changes
are what their rules compare.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import numpy as np

from simulators.signals import F64, I64, Analog, AnalogBank, Samples, Signal, key_of, uniform

Item = dict[str, Any]
Rule = dict[str, Any]
Doc = dict[str, Any]
ValueFn = Callable[[I64, F64], F64]
"""An incident's values: (sample times, the values the point would have had) → values sent."""

BAD_VALUE = -9999.0  # what a faulty transmitter sends with quality bad: no rule may evaluate it
OFFLINE_RULE: Rule = {"rule": "offline"}
_QUALITY_SALT, _LATE_SALT, _DELAY_SALT = 11, 12, 13
_NO_END = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Batch:
    """One MQTT message of a gateway: a telemetry batch's readings or a positioning batch's events."""

    gateway: str
    channel: Literal["telemetry", "positions"]
    items: list[Item]


@dataclass(frozen=True, slots=True)
class Outage:
    """The gateway's connection breaks without a goodbye (the broker publishes its last will), or
    comes back (`up`: it reconnects and announces itself online)."""

    gateway: str
    up: bool
    ts_ms: int


Message = Batch | Outage


@dataclass(frozen=True, slots=True)
class Faults:
    """Fractions of an analog point's readings sent bad, uncertain, or late."""

    bad: float = 0.002
    uncertain: float = 0.003
    late: float = 0.01


NO_FAULTS = Faults(0.0, 0.0, 0.0)


@dataclass(slots=True)
class PointSim:
    """A point of the catalog with its normal behaviour (`signal`)."""

    code: str
    kind: str
    unit: str
    period_s: float
    gateway: str
    signal: Signal
    pair: str | None = None
    rules: list[Rule] | None = None  # None: the kind's defaults
    digital: bool = False  # reported on time and good

    def entry(self, site: str) -> Doc:
        doc: Doc = {"code": self.code, "site": site, "kind": self.kind, "unit": self.unit, "period_s": self.period_s}
        if self.pair:
            doc["pair"] = self.pair
        if self.rules is not None:
            doc["rules"] = self.rules
        return doc


@dataclass(slots=True)
class _Override:
    start: int
    end: int
    fn: ValueFn


@dataclass(slots=True)
class _Late:
    release: int
    point: int
    ts: int
    value: float
    quality: int


class SiteSim:
    """A site of one kind: subclasses add the points, zones and tags, and positioning events."""

    kind: ClassVar[str]
    label: ClassVar[str]  # what the site is, in the site's name
    power_baseline_kw: ClassVar[float]

    def __init__(
        self,
        code: str,
        *,
        seed: int = 0,
        enterprise: str = "SIM",
        state: str = "operating",
        timezone: str = "Asia/Shanghai",
        faults: Faults | None = None,
    ) -> None:
        self.code, self.seed, self.enterprise, self.state = code, seed, enterprise, state
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.faults = faults or Faults()
        self.points: list[PointSim] = []
        self.zones: list[Doc] = []
        self.tags: list[Doc] = []
        self.shift_capacity: int | None = None
        self._gateways: list[str] = []
        self._overrides: dict[str, list[_Override]] = {}
        self._muted: dict[str, list[tuple[int, int]]] = {}
        self._outages: list[Outage] = []
        self._t0: int | None = None
        self._last = 0
        self._late: list[_Late] = []

    # -- building --------------------------------------------------------------------------------
    def gateway(self, code: str) -> str:
        if code not in self._gateways:
            self._gateways.append(code)
        return code

    def add(self, point: PointSim) -> PointSim:
        self.gateway(point.gateway)
        self.points.append(point)
        return point

    def point(self, code: str) -> PointSim:
        for p in self.points:
            if p.code == code:
                return p
        raise KeyError(f"{self.code} has no point {code!r}")

    def points_of(self, kind: str) -> list[PointSim]:
        return [p for p in self.points if p.kind == kind]

    @property
    def gateways(self) -> list[str]:
        return list(self._gateways)

    def password(self, gateway: str) -> str:
        """The gateway's broker password, derived from the seed (a simulator has nothing to hide)."""
        return hashlib.sha256(f"sitewatch-sim:{self.seed}:{self.code}:{gateway}".encode()).hexdigest()[:24]

    @property
    def listener(self) -> str:
        """A gateway no scenario takes down, whose credentials can subscribe to the site's alerts."""
        return "GW-PWR"

    # -- incidents -------------------------------------------------------------------------------
    def _before_start(self, what: str) -> None:
        if self._t0 is not None:
            raise RuntimeError(f"{what} must be set before the site starts")

    def tune(self, code: str, *, rules: list[Rule] | None = None, period_s: float | None = None) -> None:
        """Change a point's catalog entry, as a customer tunes a point (before the site starts)."""
        self._before_start("a point's period and rules")
        p = self.point(code)
        if rules is not None:
            p.rules = rules
        if period_s is not None:
            p.period_s = period_s

    def override(self, code: str, start_ms: int | None, end_ms: int | None, fn: ValueFn) -> None:
        """From `start_ms` until `end_ms` (None: always) the point sends `fn` of its times and normal values."""
        self.point(code)
        self._overrides.setdefault(code, []).append(
            _Override(-_NO_END if start_ms is None else start_ms, _NO_END if end_ms is None else end_ms, fn)
        )

    def mute(self, gateway: str, start_ms: int, end_ms: int) -> None:
        """The gateway withholds its data in [start, end) while staying connected."""
        self._muted.setdefault(gateway, []).append((start_ms, end_ms))

    def outage(self, gateway: str, start_ms: int, end_ms: int) -> None:
        """The gateway's connection dies at `start_ms` (last will) and comes back at `end_ms`."""
        self.mute(gateway, start_ms, end_ms)
        self._outages += [Outage(gateway, False, start_ms), Outage(gateway, True, end_ms)]

    # -- the catalog -----------------------------------------------------------------------------
    def site_entry(self) -> Doc:
        site: Doc = {
            "code": self.code,
            "enterprise": self.enterprise,
            "name": f"{self.code} 模拟{self.label}",
            "kind": self.kind,
            "timezone": self.timezone,
            "state": self.state,
            "power_baseline_kw": self.power_baseline_kw,
        }
        if self.shift_capacity is not None:
            site["shift_capacity"] = self.shift_capacity
        return site

    def catalog(self) -> Doc:
        """This site's catalog fragment; `merge_catalogs` joins several into one document."""
        return {
            "enterprises": [{"code": self.enterprise, "name": f"{self.enterprise} 模拟企业"}],
            "sites": [self.site_entry()],
            "gateways": [{"code": g, "site": self.code, "password": self.password(g)} for g in self._gateways],
            "zones": [{**z, "site": self.code} for z in self.zones],
            "points": [p.entry(self.code) for p in self.points],
            "tags": [{**t, "site": self.code} for t in self.tags],
        }

    # -- running ---------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._t0 is not None

    def utc_offset_ms(self, t_ms: int) -> int:
        offset = dt.datetime.fromtimestamp(t_ms / 1000, self.tz).utcoffset()
        return int(offset.total_seconds() * 1000) if offset else 0

    def start(self, t_ms: int) -> None:
        """Fix the time origin: each point's samples fall at t0 + phase + k × period."""
        self._t0 = self._last = t_ms
        n = len(self.points)
        self._period = np.array([round(p.period_s * 1000) for p in self.points], np.int64)
        self._key = np.array([key_of(self.seed, self.code, p.code) for p in self.points], np.int64)
        self._phase = np.floor(uniform(self._key, np.zeros(n, np.int64), 7) * self._period).astype(np.int64)
        self._next = np.zeros(n, np.int64)
        analog = [p.signal for p in self.points if isinstance(p.signal, Analog)]
        self._analog = np.array([isinstance(p.signal, Analog) for p in self.points], bool)
        self._bank_row = np.cumsum(self._analog) - 1  # a point's row in the bank
        self._bank = AnalogBank(analog)
        self._index = {p.code: i for i, p in enumerate(self.points)}
        self._gateway_of = np.array([self._gateways.index(p.gateway) for p in self.points], np.int64)
        fault = np.array([not p.digital for p in self.points])
        self._bad = np.where(fault, self.faults.bad, 0.0)
        self._uncertain = np.where(fault, self.faults.uncertain, 0.0)
        self._late_p = np.where(fault, self.faults.late, 0.0)

    def step(self, t_ms: int) -> list[Message]:
        """Everything the gateways send in (previous step, t_ms]; the first call starts the site."""
        if self._t0 is None:
            self.start(t_ms)
        last = self._last
        ups = [o for o in self._outages if o.up and last < o.ts_ms <= t_ms]
        downs = [o for o in self._outages if not o.up and last < o.ts_ms <= t_ms]
        out: list[Message] = [*ups]
        out += self._telemetry(t_ms)
        events = self.position_events(last, t_ms)
        if events:
            by_gateway: dict[str, list[Item]] = {}
            for gw, event in events:
                if not self._is_muted(gw, int(event["ts"])):
                    by_gateway.setdefault(gw, []).append(event)
            out += [Batch(gw, "positions", items) for gw, items in by_gateway.items()]
        out += downs
        self._last = t_ms
        return out

    def position_events(self, since_ms: int, until_ms: int) -> list[tuple[str, Item]]:
        """(gateway, event) of positioning in (since, until], in time order (sites with tags)."""
        return []

    def _is_muted(self, gateway: str, ts: int) -> bool:
        return any(start <= ts < end for start, end in self._muted.get(gateway, ()))

    def _telemetry(self, t_ms: int) -> list[Batch]:
        assert self._t0 is not None
        last_k = (t_ms - self._t0 - self._phase) // self._period  # each point's newest sample due
        n = np.maximum(last_k - self._next + 1, 0)
        self._next, first = np.maximum(self._next, last_k + 1), self._next
        idx = np.repeat(np.arange(len(n)), n)
        begin = np.cumsum(n) - n
        k = first[idx] + np.arange(len(idx)) - begin[idx]
        ts = self._t0 + self._phase[idx] + k * self._period[idx]
        keys = self._key[idx]
        values = np.empty(len(idx))
        offset = self.utc_offset_ms(t_ms)
        bank = self._analog[idx]
        values[bank] = self._bank.values(self._bank_row[idx[bank]], ts[bank], k[bank], keys[bank], offset)
        for i in np.flatnonzero((n > 0) & ~self._analog).tolist():
            rows = slice(begin[i], begin[i] + n[i])
            values[rows] = self.points[i].signal(Samples(ts[rows], k[rows], int(self._key[i]), offset))
        for code, overrides in self._overrides.items():
            i = self._index[code]
            rows = slice(begin[i], begin[i] + n[i])
            for o in overrides:
                inside = (ts[rows] >= o.start) & (ts[rows] < o.end)
                if inside.any():
                    values[rows][inside] = o.fn(ts[rows][inside], values[rows][inside])
        u = uniform(keys, k, _QUALITY_SALT)
        quality = np.where(u < self._bad[idx], 2, np.where(u < self._bad[idx] + self._uncertain[idx], 1, 0))
        values[quality == 2] = BAD_VALUE
        late = uniform(keys, k, _LATE_SALT) < self._late_p[idx]
        if late.any():
            delay = (0.3 + 0.7 * uniform(keys, k, _DELAY_SALT)) * self._period[idx]
            for j in np.flatnonzero(late).tolist():
                self._late.append(
                    _Late(int(ts[j] + delay[j]), int(idx[j]), int(ts[j]), float(values[j]), int(quality[j]))
                )
        now = ~late
        sent = list(zip(idx[now].tolist(), ts[now].tolist(), ts[now].tolist(), values[now].tolist(),
                        quality[now].tolist(), strict=True))  # fmt: skip
        due = [r for r in self._late if r.release <= t_ms]
        if due:
            self._late = [r for r in self._late if r.release > t_ms]
            sent += [(r.point, r.ts, r.release, r.value, r.quality) for r in due]
        return self._batches(sent)

    def _batches(self, sent: list[tuple[int, int, int, float, int]]) -> list[Batch]:
        """One telemetry batch per gateway; what a muted gateway sampled or would send is dropped."""
        by_gateway: dict[str, list[Item]] = {}
        for i, ts, sent_at, value, quality in sent:
            gw = self._gateways[int(self._gateway_of[i])]
            if self._is_muted(gw, ts) or self._is_muted(gw, sent_at):
                continue
            item: Item = {"point": self.points[i].code, "ts": ts, "value": value}
            if quality:
                item["quality"] = ("good", "uncertain", "bad")[quality]
            by_gateway.setdefault(gw, []).append(item)
        return [Batch(gw, "telemetry", items) for gw, items in by_gateway.items()]

    def shutdown(self, t_ms: int) -> list[Message]:
        """What the site sends when the simulation stops (workers' tags leave the site)."""
        return []


def merge_catalogs(docs: list[Doc]) -> Doc:
    """One catalog document from several sites' fragments (enterprises once each)."""
    merged: Doc = {key: [] for key in ("enterprises", "sites", "gateways", "zones", "points", "tags")}
    seen: set[str] = set()
    for doc in docs:
        for enterprise in doc["enterprises"]:
            if enterprise["code"] not in seen:
                seen.add(enterprise["code"])
                merged["enterprises"].append(enterprise)
        for key in ("sites", "gateways", "zones", "points", "tags"):
            merged[key] += doc[key]
    return merged
