"""Tank emergency shutoff (DOMAIN §2.4), vectorised: the shutoff valve's command and feedback
disagreeing, the level at high-high while the valve is open, an interlock bypassed too long.

These, and the dust airlock in `dust.py`, share one shape: a condition of a point and its `pair`
that raises once it has held for an on-delay. The machinery for that shape lives here (`Points`,
`Links`, `OnDelay`, `OnDelayed`); `dust.py` and the references import it.

Semantics (`reference/tank.py` implements the same, reading by reading):
- A reading is evaluated when its quality is not bad, its value finite (for a level, also inside
  its threshold's [min, max]) and it is newer than its point's newest evaluated reading. Of
  several readings of a point at one time only the first counts: the others are retransmissions.
- A source (the point that carries the rule, with its pair) changes at *instants*: the times of
  its own and its pair's readings. All readings of one instant are applied, then the condition
  is evaluated. A source's time never goes back: a reading older than the source's latest
  instant (its pair may have reported later) or than a timer it fired counts at that time.
- A condition holding from instant s is due at s + on-delay and raises then if it still holds
  after every instant up to and including the due time (a reading at exactly the due time that
  ends it wins). `on_readings` raises it when a later instant of the source shows the due time
  passed; `tick` raises it otherwise. It clears at the first instant it no longer holds.
- Valve (`valve_mismatch`, on the feedback point; its pair is the command): a position is closed
  when the point reports `closed_value`, open otherwise, in both directions (failing to open is
  reported like failing to close). A mismatch that starts within `stroke_s` of a command change
  is the valve moving: `stroke_timeout` (orange) at command change + `stroke_s` if the positions
  still disagree; a later command change restarts the stroke. A mismatch that starts later is
  `feedback_without_command` (orange) at once. The first instant both positions are known counts
  as a command change, so a mismatch found at start-up is given a stroke first. Either clears
  when the positions agree: the feedback reaching the command, or a command following it.
- Level high-high with the valve open (`interlock`, kind `level_high_high_valve_open`, red, on a
  `tank_level` point whose pair is a `valve_feedback` or `valve_command` point): the level is high
  from the highest `above` level of its first threshold rule until it falls below that level by
  the rule's deadband; the valve is open while its point does not report `closed_value` (from
  the valve point's `valve_mismatch` rule, else from the rule of the feedback point paired with
  that command, else 1). It raises once high and open held for the valve's stroke time (default
  30 s), the time the interlock has to close it, so a working trip never reaches the red board.
- Bypass (`interlock`, kind `bypassed`, orange): a value other than 0 is bypassed; raised at
  bypass start + `max_bypass_s`, cleared by the first reading of 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from sitewatch.catalog.rules import Interlock, ValveMismatch
from sitewatch.rules.base import ORANGE, RED, PointInfo, Quiet, Readings, RuleCatalog, Signal

NEVER = np.iinfo(np.int64).max  # no timer, no episode
PAST = -(2**62)  # before any event, yet far enough from the int64 limits to add delays to

Ints = npt.NDArray[np.intp]
Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

VALVE = ValveMismatch(rule="valve_mismatch")
VALVE_KINDS = frozenset({"valve_feedback", "valve_command"})
SourceKey = tuple[int, str, str | None]  # site id, point code, pair code


def ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class Source:
    """One point a condition watches, with its pair and its rule's parameters."""

    point: PointInfo
    pair: PointInfo | None
    delay_ms: int  # stroke time, on-delay, longest bypass, airlock delay or spark window
    closed: float = VALVE.closed_value  # what a valve point reports for closed
    limit: float = 0.0  # level high-high
    deadband: float = 0.0
    lo: float = -np.inf  # valid range of the point's values
    hi: float = np.inf
    repeat: int = 0  # sparks within `delay_ms` that escalate

    @property
    def key(self) -> SourceKey:
        """What identifies the source across catalog reloads."""
        return self.point.site_id, self.point.code, self.pair.code if self.pair else None

    def signal(self, rule: str, severity: int, ts_ms: int, value: float | None, message: str, kind: str) -> Signal:
        return Signal(self.point.site_id, "point", self.point.code, rule, severity, ts_ms, value, message, kind)


def first_specs(catalog: RuleCatalog, rule: str, **match: Any) -> list[tuple[PointInfo, dict[str, Any]]]:
    """Each point's first spec of `rule`, by point id (a second one would be a second alert on
    the same key)."""
    found: dict[int, tuple[PointInfo, dict[str, Any]]] = {}
    for point, spec in catalog.with_rule(rule, **match):
        found.setdefault(point.id, (point, spec))
    return [found[i] for i in sorted(found)]


def in_order(signals: list[Signal]) -> list[Signal]:
    """Event-time order, ties in a fixed order of sources so that both implementations agree; the
    sort is stable, so one source's signals at one time keep the order they happened in."""
    return sorted(signals, key=lambda s: (s.ts_ms, s.site_id, s.source_code, s.rule))


def valve_sources(catalog: RuleCatalog) -> list[Source]:
    sources = []
    for point, spec in first_specs(catalog, "valve_mismatch"):
        command = catalog.points.get(catalog.pair_of(point))
        if command is not None:
            stroke = ms(spec.get("stroke_s", VALVE.stroke_s))
            sources.append(Source(point, command, stroke, closed=float(spec.get("closed_value", VALVE.closed_value))))
    return sources


def level_sources(catalog: RuleCatalog, valves: Sequence[Source]) -> list[Source]:
    by_valve: dict[int, Source] = {}
    for feedback in valves:  # a valve point is a feedback, or the command of one
        by_valve.setdefault(feedback.point.id, feedback)
    for feedback in valves:
        if feedback.pair is not None:
            by_valve.setdefault(feedback.pair.id, feedback)
    sources = []
    for point, spec in first_specs(catalog, "threshold"):
        valve = catalog.points.get(catalog.pair_of(point))
        above = spec.get("above") or []
        if point.kind != "tank_level" or not above or valve is None or valve.kind not in VALVE_KINDS:
            continue
        known = by_valve.get(valve.id)
        stroke, closed = (known.delay_ms, known.closed) if known else (ms(VALVE.stroke_s), VALVE.closed_value)
        lo, hi = spec.get("min"), spec.get("max")
        sources.append(
            Source(
                point,
                valve,
                stroke,
                closed,
                limit=max(above),
                deadband=spec.get("deadband") or 0.0,
                lo=-np.inf if lo is None else lo,
                hi=np.inf if hi is None else hi,
            )
        )
    return sources


def bypass_sources(catalog: RuleCatalog) -> list[Source]:
    default = Interlock(rule="interlock").max_bypass_s
    return [
        Source(point, None, ms(spec.get("max_bypass_s", default))) for point, spec in first_specs(catalog, "interlock")
    ]


def quantity(value: float, unit: str) -> str:
    return f"{value:g} {unit}".rstrip()


def describe_valve(source: Source, severity: int, kind: str, own: float, pair: float) -> str:
    code = source.point.code
    if not severity:
        return f"{code} 切断阀反馈 {own:g} = 指令 {pair:g} (valve agrees)"
    if kind == "stroke_timeout":
        return f"{code} 切断阀反馈 {own:g} ≠ 指令 {pair:g} 超过 {source.delay_ms / 1000:g} s (stroke timeout)"
    return f"{code} 切断阀反馈 {own:g} ≠ 指令 {pair:g} 无指令变化 (feedback without command)"


def describe_level(source: Source, severity: int, kind: str, own: float, pair: float) -> str:
    code, valve, level = source.point.code, source.pair.code if source.pair else "", quantity(own, source.point.unit)
    if not severity:
        return f"{code} 液位 {level}, 切断阀 {valve} {pair:g} (cleared)"
    return f"{code} 液位 {level} ≥ {source.limit:g}, 切断阀 {valve} {pair:g} 未关 (level high-high, valve open)"


def describe_bypass(source: Source, severity: int, kind: str, own: float, pair: float) -> str:
    code = source.point.code
    if not severity:
        return f"{code} 联锁旁路 {own:g} 解除 (bypass removed)"
    return f"{code} 联锁旁路 {own:g} 超过 {source.delay_ms / 3_600_000:g} h (interlock bypassed)"


@dataclass(slots=True)
class Rows:
    """A batch's evaluated readings, sorted by (point, time), one per point and time."""

    point: Ints
    ts: Int64s
    value: Floats

    def __len__(self) -> int:
        return len(self.ts)


class Points:
    """Per point id: its newest evaluated reading (what makes a reading new) and valid range.
    Arrays have one slot more than the catalog: the last stands for "no point" (pair -1)."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, str], int] = {}
        self.used = np.zeros(1, dtype=bool)
        self.lo = np.full(1, -np.inf)
        self.hi = np.full(1, np.inf)
        self.last_ts = np.full(1, PAST, dtype=np.int64)
        self.last_value = np.full(1, np.nan)

    def load(self, catalog: RuleCatalog, sources: Iterable[Source]) -> None:
        size = catalog.size + 1
        keys = {(p.site_id, p.code): p.id for p in catalog.points.values()}
        new, old = carried(self.keys, keys)
        last_ts, last_value = np.full(size, PAST, dtype=np.int64), np.full(size, np.nan)
        last_ts[new], last_value[new] = self.last_ts[old], self.last_value[old]
        self.keys, self.last_ts, self.last_value = keys, last_ts, last_value
        self.used = np.zeros(size, dtype=bool)
        self.lo, self.hi = np.full(size, -np.inf), np.full(size, np.inf)
        for s in sources:
            self.used[s.point.id] = True
            self.lo[s.point.id], self.hi[s.point.id] = s.lo, s.hi
            if s.pair is not None:
                self.used[s.pair.id] = True

    @property
    def none(self) -> int:
        return len(self.used) - 1

    def fresh(self, readings: Readings) -> Rows:
        pid, ts, value = readings.point_id, readings.ts_ms, readings.value
        p = np.where((pid >= 0) & (pid < self.none), pid, self.none)
        keep = self.used[p] & (readings.quality != 2) & np.isfinite(value) & (ts > self.last_ts[p])
        keep &= (value >= self.lo[p]) & (value <= self.hi[p])
        p, ts, value = p[keep], ts[keep], value[keep]
        once = np.ones(len(p), dtype=bool)
        once[1:] = (p[1:] != p[:-1]) | (ts[1:] != ts[:-1])
        return Rows(p[once], ts[once], value[once])

    def commit(self, rows: Rows) -> None:
        _, last, _ = segments(rows.point)
        self.last_ts[rows.point[last]] = rows.ts[last]
        self.last_value[rows.point[last]] = rows.value[last]


def carried(old: dict[Any, int], new: dict[Any, int]) -> tuple[Ints, Ints]:
    """(new, old) indices of the keys present before and after a catalog reload."""
    both = [(i, old[key]) for key, i in new.items() if key in old]
    pairs = np.array(both, dtype=np.intp).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def segments(keys: npt.NDArray[Any]) -> tuple[Bools, Bools, Ints]:
    """For sorted keys: whether each row starts or ends its run of equal keys, and the index of
    the run's first row."""
    n = len(keys)
    first = np.ones(n, dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    head = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return first, last, head


def fill(values: npt.NDArray[Any], mask: Bools, head: Ints, before: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Per row, `values` at the latest row of its run (at or before it) where `mask` holds, else
    `before` (the state before the batch)."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= head, values[idx], before)


def previous(values: npt.NDArray[Any], first: Bools, before: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Per row, `values` at the row before it in its run, `before` for the first."""
    out = np.empty_like(values)
    out[1:] = values[:-1]
    out[first] = before[first]
    return out


def by_source_and_time(src: Ints, ts: Int64s) -> Ints:
    """The order of rows by (source, time): one stable sort of a packed key (fast on the sorted
    runs it is made of), unless absurd times would overflow it."""
    low = int(ts.min())
    span = int(ts.max()) - low + 1
    if span * (int(src.max()) + 1) < 2**62:
        return np.argsort(src * span + (ts - low), kind="stable")
    return np.lexsort((ts, src))


@dataclass(slots=True)
class Instants:
    """A batch's instants of many sources, sorted by source then time: each source's own and
    pair value after the instant's readings (NaN: not known yet)."""

    src: Ints
    ts: Int64s
    own: Floats
    pair: Floats
    first: Bools
    last: Bools
    head: Ints


class Links:
    """Which sources a point's readings feed: as the source's own point (one source per point) or
    as its pair (any number: a fan may serve several airlocks)."""

    def __init__(self, sources: Sequence[Source], none: int) -> None:
        n = len(sources)
        self.own = np.array([s.point.id for s in sources], dtype=np.intp)
        self.pair = np.array([s.pair.id if s.pair else none for s in sources], dtype=np.intp)
        self.own_src = np.full(none + 1, -1, dtype=np.intp)
        self.own_src[self.own] = np.arange(n)
        self.pair_srcs = np.argsort(self.pair, kind="stable")  # the sources of each pair point, in turn
        self.pair_count = np.bincount(self.pair, minlength=none + 1)
        self.pair_count[none] = 0
        self.pair_start = np.cumsum(self.pair_count) - self.pair_count

    def instants(self, rows: Rows, last_value: Floats, clock: Int64s) -> Instants | None:
        own_src = self.own_src[rows.point]
        mine = own_src >= 0
        count = self.pair_count[rows.point]
        rep = np.repeat(np.arange(len(rows)), count)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
        src = np.concatenate([own_src[mine], self.pair_srcs[self.pair_start[rows.point[rep]] + k]])
        if not len(src):
            return None
        ts = np.concatenate([rows.ts[mine], rows.ts[rep]])
        value = np.concatenate([rows.value[mine], rows.value[rep]])
        is_pair = np.arange(len(src)) >= np.count_nonzero(mine)
        order = by_source_and_time(src, ts)
        src, ts, value, is_pair = src[order], np.maximum(ts[order], clock[src[order]]), value[order], is_pair[order]
        _, _, head = segments(src)
        own = fill(value, ~is_pair, head, last_value[self.own[src]])
        pair = fill(value, is_pair, head, last_value[self.pair[src]])
        end = np.ones(len(src), dtype=bool)
        end[:-1] = (src[1:] != src[:-1]) | (ts[1:] != ts[:-1])
        src = src[end]
        first, last, head = segments(src)
        return Instants(src, ts[end], own[end], pair[end], first, last, head)


class State:
    """Named per-source arrays that survive a catalog reload for the sources that still exist."""

    FIELDS: ClassVar[dict[str, tuple[type[np.generic], Any]]] = {}

    def __init__(self, n: int) -> None:
        for name, (dtype, fill_value) in self.FIELDS.items():
            setattr(self, name, np.full(n, fill_value, dtype=dtype))

    def carried(self, n: int, new: Ints, old: Ints) -> Self:
        state = type(self)(n)
        for name in self.FIELDS:
            getattr(state, name)[new] = getattr(self, name)[old]
        return state


@dataclass(slots=True)
class Edges:
    """What one batch did to an on-delayed condition, by instant index."""

    late: Ints  # raised at a due time that passed before the source's first instant of the batch
    late_at: Int64s
    raised: Ints  # raised at a due time from this instant until the source's next instant
    raised_at: Int64s
    raised_start: Int64s  # the start of the episodes raised
    cleared: Ints


class OnDelay(State):
    """Per source: the current episode's start, whether it raised, its pending due time, and the
    source's clock (its latest instant or fired timer)."""

    FIELDS: ClassVar[dict[str, tuple[type[np.generic], Any]]] = {
        "start": (np.int64, NEVER),
        "active": (np.bool_, False),
        "due": (np.int64, NEVER),
        "clock": (np.int64, PAST),
        "variant": (np.int8, 0),  # which of the condition's kinds the active alert is
    }
    start: Int64s
    active: Bools
    due: Int64s
    clock: Int64s
    variant: npt.NDArray[np.int8]

    def evaluate(self, ins: Instants, cond: Bools, delay: Int64s, floor: Int64s | None) -> Edges:
        """Episodes of `cond` over the instants; one is due at max(start + delay, floor)."""
        src, ts, first = ins.src, ins.ts, ins.first
        was = previous(cond, first, self.start[src] != NEVER)
        starts = cond & ~was
        start = fill(ts, starts, ins.head, self.start[src])
        due = start + delay if floor is None else np.maximum(start + delay, floor)
        after = np.empty_like(ts)
        after[:-1] = ts[1:]
        after[ins.last] = ts[ins.last] + 1
        episode = np.cumsum(starts | first)
        fired = np.zeros(episode[-1] + 1, dtype=bool)
        carry = np.flatnonzero(first & was)
        fired[episode[carry]] = self.active[src[carry]]
        late = carry[~fired[episode[carry]] & (self.due[src[carry]] < ts[carry])]
        fired[episode[late]] = True
        ready = np.flatnonzero(cond & (due < after) & ~fired[episode])
        once = np.ones(len(ready), dtype=bool)
        once[1:] = episode[ready[1:]] != episode[ready[:-1]]
        ready = ready[once]
        fired[episode[ready]] = True
        edges = Edges(
            late=late,
            late_at=self.due[src[late]],
            raised=ready,
            raised_at=due[ready],
            raised_start=start[ready],
            cleared=np.flatnonzero(~cond & was & fired[episode]),
        )
        end, s = ins.last, src[ins.last]
        on = cond[end] & fired[episode[end]]
        self.start[s] = np.where(cond[end], start[end], NEVER)
        self.active[s] = on
        self.due[s] = np.where(cond[end] & ~on, due[end], NEVER)
        self.clock[s] = ts[end]
        return edges

    def fire(self, now_ms: int) -> tuple[Ints, Int64s]:
        """Raise every pending episode due at or before `now_ms`: (sources, due times)."""
        hit = np.flatnonzero(self.due <= now_ms)
        at = self.due[hit]
        self.active[hit] = True
        self.variant[hit] = 0
        self.clock[hit] = np.maximum(self.clock[hit], at)
        self.due[hit] = NEVER
        return hit, at


class OnDelayed:
    """A condition of a point and its pair that raises once it has held for an on-delay; the
    subclass says when it holds (`holds`) and how it reads (`describe`)."""

    rule: ClassVar[str]
    severity: ClassVar[int]
    kinds: ClassVar[tuple[str, ...]]  # the first is the kind raised by a timer
    state_type: ClassVar[type[OnDelay]] = OnDelay

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.links = Links([], 0)
        self.state = self.state_type(0)
        self.delay = np.zeros(0, dtype=np.int64)
        self.closed = self.limit = self.deadband = np.zeros(0)

    def load(self, sources: list[Source], none: int) -> None:
        new, old = carried({s.key: i for i, s in enumerate(self.sources)}, {s.key: i for i, s in enumerate(sources)})
        self.state = self.state.carried(len(sources), new, old)
        self.sources = sources
        self.links = Links(sources, none)
        self.delay = np.array([s.delay_ms for s in sources], dtype=np.int64)
        self.closed = np.array([s.closed for s in sources], dtype=np.float64)
        self.limit = np.array([s.limit for s in sources], dtype=np.float64)
        self.deadband = np.array([s.deadband for s in sources], dtype=np.float64)

    def holds(self, ins: Instants) -> tuple[Bools, Int64s, Int64s | None]:
        """Per instant: whether the condition holds, its on-delay and the earliest due time it
        allows (None: no such bound). Keeps the subclass's own state up to date."""
        raise NotImplementedError

    def describe(self, source: Source, severity: int, kind: str, own: float, pair: float) -> str:
        raise NotImplementedError

    def variants(self, start: Int64s, at: Int64s) -> npt.NDArray[np.int8]:
        """Which kind each raise is (an index into `kinds`), from its episode's start and time."""
        return np.zeros(len(start), dtype=np.int8)

    def on_rows(self, rows: Rows, points: Points) -> list[Signal]:
        ins = self.links.instants(rows, points.last_value, self.state.clock)
        if ins is None:
            return []
        cond, delay, floor = self.holds(ins)
        edges = self.state.evaluate(ins, cond, delay, floor)
        own_before, pair_before = points.last_value[self.links.own], points.last_value[self.links.pair]
        variant = self.variants(edges.raised_start, edges.raised_at)
        events = sorted(
            [(int(i), 0, int(at), 0) for i, at in zip(edges.late.tolist(), edges.late_at.tolist(), strict=True)]
            + [(int(i), 1, int(at), int(v)) for i, at, v in zip(edges.raised, edges.raised_at, variant, strict=True)]
            + [(int(i), 1, int(ins.ts[i]), -1) for i in edges.cleared.tolist()]
        )
        signals = []
        for i, step, at, v in events:
            src = int(ins.src[i])
            if step == 0:  # the values before this instant's readings
                own, pair = float(own_before[src]), float(pair_before[src])
            else:
                own, pair = float(ins.own[i]), float(ins.pair[i])
            signals.append(self._signal(src, v, at, own, pair))
        return signals

    def tick(self, now_ms: int, points: Points) -> list[Signal]:
        hit, at = self.state.fire(now_ms)
        own, pair = points.last_value[self.links.own[hit]], points.last_value[self.links.pair[hit]]
        return [
            self._signal(src, 0, ts, o, p)
            for src, ts, o, p in zip(hit.tolist(), at.tolist(), own.tolist(), pair.tolist(), strict=True)
        ]

    def _signal(self, src: int, variant: int, ts_ms: int, own: float, pair: float) -> Signal:
        """A raise of kind `variant`, or a clear (variant -1) of the source's active kind."""
        if variant >= 0:
            self.state.variant[src] = variant
        kind = self.kinds[int(self.state.variant[src])]
        severity = 0 if variant < 0 else self.severity
        source = self.sources[src]
        return source.signal(self.rule, severity, ts_ms, own, self.describe(source, severity, kind, own, pair), kind)


class ValveState(OnDelay):
    FIELDS: ClassVar[dict[str, tuple[type[np.generic], Any]]] = {
        **OnDelay.FIELDS,
        "known": (np.bool_, False),  # both positions known at the latest instant
        "command": (np.bool_, False),  # the command was closed at the latest instant
        "changed": (np.int64, PAST),  # the latest command change
    }
    known: Bools
    command: Bools
    changed: Int64s


class Valves(OnDelayed):
    rule = "valve_mismatch"
    severity = ORANGE
    kinds = ("stroke_timeout", "feedback_without_command")
    state_type = ValveState
    state: ValveState

    def holds(self, ins: Instants) -> tuple[Bools, Int64s, Int64s | None]:
        st, src, end = self.state, ins.src, ins.last
        closed = self.closed[src]
        known = ~np.isnan(ins.own) & ~np.isnan(ins.pair)
        command, feedback = ins.pair == closed, ins.own == closed
        was_known = previous(known, ins.first, st.known[src])
        moved = known & (~was_known | (command != previous(command, ins.first, st.command[src])))
        changed = fill(ins.ts, moved, ins.head, st.changed[src])
        st.known[src[end]], st.command[src[end]], st.changed[src[end]] = known[end], command[end], changed[end]
        return known & (command != feedback), np.zeros(len(src), dtype=np.int64), changed + self.delay[src]

    def variants(self, start: Int64s, at: Int64s) -> npt.NDArray[np.int8]:
        at_once: npt.NDArray[np.int8] = (at == start).astype(np.int8)  # it started outside any stroke
        return at_once

    def describe(self, source: Source, severity: int, kind: str, own: float, pair: float) -> str:
        return describe_valve(source, severity, kind, own, pair)


class LevelState(OnDelay):
    FIELDS: ClassVar[dict[str, tuple[type[np.generic], Any]]] = {**OnDelay.FIELDS, "high": (np.bool_, False)}
    high: Bools


class LevelValveOpen(OnDelayed):
    rule = "interlock"
    severity = RED
    kinds = ("level_high_high_valve_open",)
    state_type = LevelState
    state: LevelState

    def holds(self, ins: Instants) -> tuple[Bools, Int64s, Int64s | None]:
        src, level = ins.src, ins.own
        limit = self.limit[src]
        above = level >= limit
        high = fill(above, above | (level < limit - self.deadband[src]), ins.head, self.state.high[src])
        self.state.high[src[ins.last]] = high[ins.last]
        valve_open = ~np.isnan(ins.pair) & (ins.pair != self.closed[src])
        return high & valve_open, self.delay[src], None

    def describe(self, source: Source, severity: int, kind: str, own: float, pair: float) -> str:
        return describe_level(source, severity, kind, own, pair)


class Bypass(OnDelayed):
    rule = "interlock"
    severity = ORANGE
    kinds = ("bypassed",)

    def holds(self, ins: Instants) -> tuple[Bools, Int64s, Int64s | None]:
        return ~np.isnan(ins.own) & (ins.own != 0), self.delay[ins.src], None

    def describe(self, source: Source, severity: int, kind: str, own: float, pair: float) -> str:
        return describe_bypass(source, severity, kind, own, pair)


class Tank(Quiet):
    """The vectorised tank emergency-shutoff family (valve mismatch, level high-high with the
    valve open, bypassed interlock)."""

    def __init__(self) -> None:
        self.points = Points()
        self.conditions: tuple[OnDelayed, ...] = (Valves(), LevelValveOpen(), Bypass())

    def load(self, catalog: RuleCatalog) -> None:
        valves = valve_sources(catalog)
        groups = (valves, level_sources(catalog, valves), bypass_sources(catalog))
        self.points.load(catalog, (s for group in groups for s in group))
        for condition, sources in zip(self.conditions, groups, strict=True):
            condition.load(sources, self.points.none)

    def on_readings(self, readings: Readings) -> list[Signal]:
        rows = self.points.fresh(readings)
        if not len(rows):
            return []
        signals = [s for condition in self.conditions for s in condition.on_rows(rows, self.points)]
        self.points.commit(rows)
        return in_order(signals)

    def tick(self, now_ms: int) -> list[Signal]:
        return in_order([s for condition in self.conditions for s in condition.tick(now_ms, self.points)])
