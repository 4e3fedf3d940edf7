"""The dust family one reading at a time: the oracle for `sitewatch.rules.dust`."""

from __future__ import annotations

import math
from collections import deque

from sitewatch.rules.base import ORANGE, RED, Quiet, Readings, RuleCatalog, Signal
from sitewatch.rules.dust import Airlocks, airlock_sources, counts_alike, describe_airlock, spark_signal, spark_sources
from sitewatch.rules.reference.tank import Book, Delayed, run_all, steppers
from sitewatch.rules.tank import PAST, Source, SourceKey, in_order


class Spark:
    """One spark point: its alert, and the sparks of the current window."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.severity = 0
        self.due = 0  # when the active alert clears without another spark
        self.clock = PAST
        self.recent: deque[tuple[int, int]] = deque()  # (time, sparks)

    def run(self, rows: list[tuple[int, float]], out: list[Signal]) -> None:
        window = self.source.delay_ms
        for ts, value in rows:
            t = max(ts, self.clock)
            if self.severity and self.due < t:
                self.clear(self.due, out)
            if value > 0:
                self.recent.append((t, math.ceil(value)))
                while self.recent[0][0] <= t - window:
                    self.recent.popleft()
                sparks = sum(n for _, n in self.recent)
                level = RED if sparks >= self.source.repeat else ORANGE
                if level > self.severity:
                    self.severity = level
                    out.append(spark_signal(self.source, level, t, value, level))
                self.due = t + window
            self.clock = t

    def clear(self, at: int, out: list[Signal]) -> None:
        out.append(spark_signal(self.source, 0, at, None, self.severity))
        self.severity = 0

    def tick(self, now_ms: int, out: list[Signal]) -> None:
        if self.severity and self.due <= now_ms:
            self.clock = max(self.clock, self.due)
            self.clear(self.due, out)


class Airlock(Delayed):
    rule, severity, kinds = Airlocks.rule, Airlocks.severity, Airlocks.kinds

    def holds(self, t: int) -> tuple[bool, int, int]:
        fan_runs = not math.isnan(self.pair) and self.pair != 0
        return self.own == 0 and fan_runs, self.source.delay_ms, PAST

    def describe(self, severity: int) -> str:
        return describe_airlock(self.source, severity, self.kind, self.own, self.pair)


class Dust(Quiet):
    def __init__(self) -> None:
        self.book = Book()
        self.sparks: dict[SourceKey, Spark] = {}
        self.airlocks: dict[SourceKey, Delayed] = {}

    def load(self, catalog: RuleCatalog) -> None:
        sparks, airlocks = spark_sources(catalog), airlock_sources(catalog)
        self.book.load(catalog, [*sparks, *airlocks])
        kept: dict[SourceKey, Spark] = {}
        for source in sparks:
            spark = self.sparks.get(source.key) or Spark(source)
            if not counts_alike(spark.source, source):
                spark.recent.clear()
            spark.source = source
            kept[source.key] = spark
        self.sparks = kept
        self.airlocks = steppers(Airlock, airlocks, self.airlocks, self.book)

    def on_readings(self, readings: Readings) -> list[Signal]:
        rows = self.book.accept(readings)
        out: list[Signal] = []
        for spark in self.sparks.values():
            if spark.source.point.id in rows:
                spark.run(rows[spark.source.point.id], out)
        run_all([self.airlocks], rows, out)
        return in_order(out)

    def tick(self, now_ms: int) -> list[Signal]:
        out: list[Signal] = []
        for spark in self.sparks.values():
            spark.tick(now_ms, out)
        for airlock in self.airlocks.values():
            airlock.tick(now_ms, out)
        return in_order(out)
