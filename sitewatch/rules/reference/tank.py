"""The tank family one reading at a time: the oracle for `sitewatch.rules.tank` (same semantics,
written as a state machine per source stepped through its instants)."""

from __future__ import annotations

import math
from typing import ClassVar

from sitewatch.rules.base import Quiet, Readings, RuleCatalog, Signal
from sitewatch.rules.tank import (
    PAST,
    Bypass,
    LevelValveOpen,
    Source,
    SourceKey,
    Valves,
    bypass_sources,
    describe_bypass,
    describe_level,
    describe_valve,
    in_order,
    level_sources,
    valve_sources,
)

Rows = dict[int, list[tuple[int, float]]]  # point id → its evaluated (time, value) in time order


class Book:
    """Per point: the newest evaluated reading and the valid range of the points the family reads."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int, str], int] = {}
        self.ranges: dict[int, tuple[float, float]] = {}
        self.last_ts: dict[int, int] = {}
        self.last_value: dict[int, float] = {}

    def load(self, catalog: RuleCatalog, sources: list[Source]) -> None:
        ids = {(p.site_id, p.code): p.id for p in catalog.points.values()}
        renumber = {old: ids[key] for key, old in self.ids.items() if key in ids}
        self.last_ts = {renumber[p]: t for p, t in self.last_ts.items() if p in renumber}
        self.last_value = {renumber[p]: v for p, v in self.last_value.items() if p in renumber}
        self.ids = ids
        self.ranges = {}
        for s in sources:
            self.ranges[s.point.id] = (s.lo, s.hi)
            if s.pair is not None:
                self.ranges.setdefault(s.pair.id, (-math.inf, math.inf))

    def value(self, point: int | None) -> float:
        return math.nan if point is None else self.last_value.get(point, math.nan)

    def accept(self, readings: Readings) -> Rows:
        rows: Rows = {}
        for p, t, v, q in zip(
            readings.point_id.tolist(),
            readings.ts_ms.tolist(),
            readings.value.tolist(),
            readings.quality.tolist(),
            strict=True,
        ):
            valid = self.ranges.get(p)
            if valid is None or q == 2 or not math.isfinite(v) or not valid[0] <= v <= valid[1]:
                continue
            if t <= self.last_ts.get(p, PAST):
                continue  # late, or a retransmission of the same time
            self.last_ts[p] = t
            self.last_value[p] = v
            rows.setdefault(p, []).append((t, v))
        return rows


class Delayed:
    """One source of an on-delayed condition, stepped instant by instant."""

    rule: ClassVar[str]
    severity: ClassVar[int]
    kinds: ClassVar[tuple[str, ...]]

    def __init__(self, source: Source, own: float, pair: float) -> None:
        self.source = source
        self.own, self.pair = own, pair
        self.start: int | None = None
        self.active = False
        self.due: int | None = None
        self.clock = PAST
        self.kind = self.kinds[0]

    def holds(self, t: int) -> tuple[bool, int, int]:
        """Whether the condition holds after the instant at `t`, its on-delay, its earliest due time."""
        raise NotImplementedError

    def describe(self, severity: int) -> str:
        raise NotImplementedError

    def variant(self) -> int:
        return 0

    def run(self, own: list[tuple[int, float]], pair: list[tuple[int, float]], out: list[Signal]) -> None:
        events = sorted([(t, 0, v) for t, v in own] + [(t, 1, v) for t, v in pair])
        i = 0
        while i < len(events):
            t = max(events[i][0], self.clock)
            if self.due is not None and self.due < t:
                self.fire(self.due, out)
            while i < len(events) and max(events[i][0], self.clock) == t:
                _, role, v = events[i]
                if role:
                    self.pair = v
                else:
                    self.own = v
                i += 1
            cond, delay, floor = self.holds(t)
            if not cond:
                if self.active:
                    out.append(self.signal(0, t))
                self.start, self.active, self.due = None, False, None
            else:
                if self.start is None:
                    self.start = t
                if not self.active:
                    self.due = max(self.start + delay, floor)
                    if self.due <= t:
                        self.fire(self.due, out)
            self.clock = t

    def fire(self, at: int, out: list[Signal]) -> None:
        self.kind = self.kinds[self.variant()]
        self.active, self.due = True, None
        out.append(self.signal(self.severity, at))

    def tick(self, now_ms: int, out: list[Signal]) -> None:
        if self.due is not None and self.due <= now_ms:
            at = self.due
            self.fire(at, out)
            self.clock = max(self.clock, at)

    def signal(self, severity: int, ts_ms: int) -> Signal:
        return self.source.signal(self.rule, severity, ts_ms, self.own, self.describe(severity), self.kind)


class Valve(Delayed):
    rule, severity, kinds = Valves.rule, Valves.severity, Valves.kinds

    def __init__(self, source: Source, own: float, pair: float) -> None:
        super().__init__(source, own, pair)
        self.known = False
        self.command = False
        self.changed = PAST

    def holds(self, t: int) -> tuple[bool, int, int]:
        closed = self.source.closed
        known = not (math.isnan(self.own) or math.isnan(self.pair))
        command, feedback = self.pair == closed, self.own == closed
        if known and (not self.known or command != self.command):
            self.changed = t
        self.known, self.command = known, command
        return known and command != feedback, 0, self.changed + self.source.delay_ms

    def variant(self) -> int:
        assert self.start is not None
        return int(self.changed + self.source.delay_ms <= self.start)

    def describe(self, severity: int) -> str:
        return describe_valve(self.source, severity, self.kind, self.own, self.pair)


class Level(Delayed):
    rule, severity, kinds = LevelValveOpen.rule, LevelValveOpen.severity, LevelValveOpen.kinds

    def __init__(self, source: Source, own: float, pair: float) -> None:
        super().__init__(source, own, pair)
        self.high = False

    def holds(self, t: int) -> tuple[bool, int, int]:
        s = self.source
        if self.own >= s.limit:
            self.high = True
        elif self.own < s.limit - s.deadband:
            self.high = False
        valve_open = not math.isnan(self.pair) and self.pair != s.closed
        return self.high and valve_open, s.delay_ms, PAST

    def describe(self, severity: int) -> str:
        return describe_level(self.source, severity, self.kind, self.own, self.pair)


class Bypassed(Delayed):
    rule, severity, kinds = Bypass.rule, Bypass.severity, Bypass.kinds

    def holds(self, t: int) -> tuple[bool, int, int]:
        return not math.isnan(self.own) and self.own != 0, self.source.delay_ms, PAST

    def describe(self, severity: int) -> str:
        return describe_bypass(self.source, severity, self.kind, self.own, self.pair)


def steppers(
    kind: type[Delayed], sources: list[Source], old: dict[SourceKey, Delayed], book: Book
) -> dict[SourceKey, Delayed]:
    """The steppers of `sources`, keeping the state of those that existed before a reload."""
    out: dict[SourceKey, Delayed] = {}
    for source in sources:
        stepper = old.get(source.key)
        if stepper is None:
            stepper = kind(source, book.value(source.point.id), book.value(source.pair.id if source.pair else None))
        stepper.source = source
        out[source.key] = stepper
    return out


def run_all(groups: list[dict[SourceKey, Delayed]], rows: Rows, out: list[Signal]) -> None:
    for group in groups:
        for stepper in group.values():
            s = stepper.source
            own, pair = rows.get(s.point.id, []), rows.get(s.pair.id, []) if s.pair else []
            if own or pair:
                stepper.run(own, pair, out)


class Tank(Quiet):
    def __init__(self) -> None:
        self.book = Book()
        self.groups: list[dict[SourceKey, Delayed]] = [{}, {}, {}]

    def load(self, catalog: RuleCatalog) -> None:
        valves = valve_sources(catalog)
        sources = (valves, level_sources(catalog, valves), bypass_sources(catalog))
        self.book.load(catalog, [s for group in sources for s in group])
        kinds: tuple[type[Delayed], ...] = (Valve, Level, Bypassed)
        self.groups = [
            steppers(kind, group, old, self.book) for kind, group, old in zip(kinds, sources, self.groups, strict=True)
        ]

    def on_readings(self, readings: Readings) -> list[Signal]:
        out: list[Signal] = []
        run_all(self.groups, self.book.accept(readings), out)
        return in_order(out)

    def tick(self, now_ms: int) -> list[Signal]:
        out: list[Signal] = []
        for group in self.groups:
            for stepper in group.values():
                stepper.tick(now_ms, out)
        return in_order(out)
