"""Dust-explosion plants (DOMAIN §2.5), vectorised: detected sparks, and the airlock stopped
while the collector fan runs. (Differential pressure and hopper temperature are thresholds.)

Readings are evaluated as in `tank.py`: not bad, finite, newer than the point's newest evaluated
reading, the first of a point at one time; a source's time never goes back. Semantics (the
reference in `reference/dust.py` implements the same, reading by reading):
- Spark (`dust` check `spark`): a reading's value is the number of sparks detected since the
  point's previous reading, so a detector that reports 1 per detection fits; a fraction counts
  up (0.2 is one spark), 0 or less is none. A reading with sparks raises orange (kind `spark`)
  at its time; once `repeat` sparks lie within `window_s` ((t − window_s, t] at a spark reading
  t) it escalates to red (kind `spark_repeat`). The alert keeps its highest severity until
  `window_s` passes without a spark, and clears at last spark + `window_s` (a spark at exactly
  that time continues it), from `tick` or before a later reading of the point. A reload that
  changes `window_s` or `repeat` starts the count afresh and applies from the next spark: an
  active alert stays, and clears when it was due to.
- Airlock (check `airlock`, on the airlock's running point; `pair` = the fan's running point):
  0 is stopped, any other value running, for both points; a fan that never reported is not
  known to run. Stopped under a running fan, held for `delay_s`, raises orange (kind
  `airlock_stopped`) at start + `delay_s`; cleared when the airlock runs or the fan stops.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sitewatch.catalog.rules import DustAirlock, DustSpark
from sitewatch.rules.base import ORANGE, RED, Quiet, Readings, RuleCatalog, Signal
from sitewatch.rules.tank import (
    NEVER,
    PAST,
    Bools,
    Instants,
    Int64s,
    Ints,
    OnDelayed,
    Points,
    Rows,
    Source,
    State,
    carried,
    first_specs,
    in_order,
    ms,
    previous,
    segments,
)

SPARK = DustSpark(rule="dust", check="spark")
AIRLOCK = DustAirlock(rule="dust", check="airlock")
SPARK_KINDS = {ORANGE: "spark", RED: "spark_repeat"}


def spark_sources(catalog: RuleCatalog) -> list[Source]:
    return [
        Source(point, None, ms(spec.get("window_s", SPARK.window_s)), repeat=int(spec.get("repeat", SPARK.repeat)))
        for point, spec in first_specs(catalog, "dust", check="spark")
    ]


def airlock_sources(catalog: RuleCatalog) -> list[Source]:
    sources = []
    for point, spec in first_specs(catalog, "dust", check="airlock"):
        fan = catalog.points.get(catalog.pair_of(point))
        if fan is not None:
            sources.append(Source(point, fan, ms(spec.get("delay_s", AIRLOCK.delay_s))))
    return sources


def counts_alike(a: Source, b: Source) -> bool:
    """Whether two versions of a spark point count sparks alike; a reload that changes `window_s`
    or `repeat` starts the count afresh (an active alert stays)."""
    return a.delay_ms == b.delay_ms and a.repeat == b.repeat


def describe_spark(source: Source, severity: int, value: float | None) -> str:
    code, window = source.point.code, source.delay_ms / 1000
    if not severity:
        return f"{code} 火花 {window:g} s 内无火花 (no spark for {window:g} s)"
    if severity == RED:
        return f"{code} 火花 {window:g} s 内 ≥ {source.repeat} 次 (repeated sparks)"
    return f"{code} 火花 {value:g} (spark detected)"


def describe_airlock(source: Source, severity: int, kind: str, own: float, pair: float) -> str:
    code, fan = source.point.code, source.pair.code if source.pair else ""
    if not severity:
        return f"{code} 关风机 {own:g}, 风机 {fan} {pair:g} (cleared)"
    return f"{code} 关风机 {own:g} 停, 风机 {fan} {pair:g} 运行, 超过 {source.delay_ms / 1000:g} s (airlock stopped)"


def spark_signal(source: Source, severity: int, ts_ms: int, value: float | None, kind_severity: int) -> Signal:
    """A spark raise (`severity` > 0) or a clear of an alert that had reached `kind_severity`."""
    kind = SPARK_KINDS[kind_severity]
    return source.signal("dust", severity, ts_ms, value, describe_spark(source, severity, value), kind)


class SparkState(State):
    FIELDS: ClassVar[dict[str, tuple[type[np.generic], Any]]] = {
        "severity": (np.int8, 0),  # of the active alert, 0: none
        "due": (np.int64, NEVER),  # when the active alert clears without another spark
        "clock": (np.int64, PAST),
    }
    severity: np.ndarray[Any, np.dtype[np.int8]]
    due: Int64s
    clock: Int64s


class Sparks:
    """Spark alerts; per source, besides `SparkState`, the times of its latest `repeat` − 1
    sparks, oldest first (a row of `recent`): all a window count needs from before the batch."""

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.state = SparkState(0)
        self.recent = np.full((0, 1), PAST, dtype=np.int64)
        self.own_src = np.full(1, -1, dtype=np.intp)
        self.window = self.repeat = np.zeros(0, dtype=np.int64)

    def load(self, sources: list[Source], none: int) -> None:
        new, old = carried({s.key: i for i, s in enumerate(self.sources)}, {s.key: i for i, s in enumerate(sources)})
        self.state = self.state.carried(len(sources), new, old)
        width = max((s.repeat for s in sources), default=2) - 1
        recent = np.full((len(sources), width), PAST, dtype=np.int64)
        keep = min(width, self.recent.shape[1])
        recent[new, width - keep :] = self.recent[old, self.recent.shape[1] - keep :]
        recent[[i for i, j in zip(new, old, strict=True) if not counts_alike(sources[i], self.sources[j])]] = PAST
        self.sources, self.recent = sources, recent
        self.own_src = np.full(none + 1, -1, dtype=np.intp)
        self.own_src[[s.point.id for s in sources]] = np.arange(len(sources))
        self.window = np.array([s.delay_ms for s in sources], dtype=np.int64)
        self.repeat = np.array([s.repeat for s in sources], dtype=np.int64)

    def on_rows(self, rows: Rows) -> list[Signal]:
        src = self.own_src[rows.point]  # sources are in point order, so rows stay sorted by source
        mine = src >= 0
        if not mine.any():
            return []
        st = self.state
        src, value = src[mine], rows.value[mine]
        ts = np.maximum(rows.ts[mine], st.clock[src])
        _, last, _ = segments(src)
        count = np.where(value > 0, np.minimum(np.ceil(value), self.repeat[src]), 0).astype(np.int64)
        k = np.flatnonzero(count)
        ks, kt, kn, kw = src[k], ts[k], count[k], self.window[src[k]]
        kfirst, klast, _ = segments(ks)
        level = np.where(self._repeated(ks, kt, kn, kw, kfirst, klast), RED, ORANGE)
        due = previous(kt + kw, kfirst, st.due[ks])  # when the alert before each spark reading clears
        follows = ~kfirst | (st.severity[ks] > 0)  # an earlier spark of an alert still active
        new = ~follows | (due < kt)
        episode = np.cumsum(new | kfirst)
        efirst, _, ehead = segments(episode)
        carried_severity = st.severity[ks].astype(np.int64)
        init = np.where(kfirst & ~new, carried_severity, 0)[ehead]
        run = np.maximum(np.maximum.accumulate(episode * 8 + level) - episode * 8, init)
        prior = previous(run, efirst, init)
        ended = previous(run, kfirst, carried_severity)  # the severity of the alert a new one follows
        touched = src[last]
        final_due, final_severity = st.due[touched], st.severity[touched].astype(np.int64)
        at = np.searchsorted(touched, ks[klast])
        final_due[at], final_severity[at] = kt[klast] + kw[klast], run[klast]
        gone = (final_severity > 0) & (ts[last] > final_due)
        # (source, order within the source, time, severity, value, severity naming the kind)
        follow = np.flatnonzero(new & follows)
        up = np.flatnonzero(run > prior)
        events = sorted(
            [(int(ks[j]), 2 * j, int(due[j]), 0, None, int(ended[j])) for j in follow.tolist()]
            + [(int(ks[j]), 2 * j + 1, int(kt[j]), int(run[j]), float(value[k[j]]), int(run[j])) for j in up.tolist()]
            + [
                (int(touched[j]), 2 * len(k), int(final_due[j]), 0, None, int(final_severity[j]))
                for j in gone.nonzero()[0]
            ]
        )
        st.severity[touched] = np.where(gone, 0, final_severity)
        st.due[touched] = np.where(gone, NEVER, final_due)
        st.clock[touched] = ts[last]
        return [spark_signal(self.sources[s], sev, t, v, kind) for s, _, t, sev, v, kind in events]

    def _repeated(self, ks: Ints, kt: Int64s, kn: Int64s, kw: Int64s, kfirst: Bools, klast: Bools) -> Bools:
        """Whether `repeat` sparks lie in (t − window, t] at each spark reading t: lay out each
        source's sparks one per entry (its `recent` ones, then this batch's) and look at the
        `repeat`-th latest at the reading. Keeps the latest ones in `recent`."""
        if not len(kt):
            return np.zeros(0, dtype=bool)
        width = self.recent.shape[1]  # ≥ repeat − 1, and a reading counts ≤ repeat sparks
        rank = np.cumsum(kfirst) - 1
        cum = np.cumsum(kn)
        starts = np.flatnonzero(kfirst)
        sparks = np.empty(int(cum[-1]) + width * len(starts), dtype=np.int64)
        sparks[np.arange(cum[-1]) + width * (np.repeat(rank, kn) + 1)] = np.repeat(kt, kn)
        block = np.arange(len(starts)) * width + cum[starts] - kn[starts]
        own = ks[starts]
        sparks[block[:, None] + np.arange(width)] = self.recent[own]
        latest = (rank + 1) * width + cum - 1  # each reading's own last entry
        repeated: Bools = sparks[latest - self.repeat[ks] + 1] > kt - kw
        self.recent[own] = sparks[latest[klast][:, None] + 1 - width + np.arange(width)]
        return repeated

    def tick(self, now_ms: int) -> list[Signal]:
        st = self.state
        hit = np.flatnonzero(st.due <= now_ms)
        at, severity = st.due[hit], st.severity[hit]
        st.severity[hit] = 0
        st.clock[hit] = np.maximum(st.clock[hit], at)
        st.due[hit] = NEVER
        return [
            spark_signal(self.sources[s], 0, t, None, sev)
            for s, t, sev in zip(hit.tolist(), at.tolist(), severity.tolist(), strict=True)
        ]


class Airlocks(OnDelayed):
    rule = "dust"
    severity = ORANGE
    kinds = ("airlock_stopped",)

    def holds(self, ins: Instants) -> tuple[Bools, Int64s, Int64s | None]:
        return (ins.own == 0) & ~np.isnan(ins.pair) & (ins.pair != 0), self.delay[ins.src], None

    def describe(self, source: Source, severity: int, kind: str, own: float, pair: float) -> str:
        return describe_airlock(source, severity, kind, own, pair)


class Dust(Quiet):
    """The vectorised dust-explosion family (sparks, airlock stopped under a running fan)."""

    def __init__(self) -> None:
        self.points = Points()
        self.sparks = Sparks()
        self.airlocks = Airlocks()

    def load(self, catalog: RuleCatalog) -> None:
        sparks, airlocks = spark_sources(catalog), airlock_sources(catalog)
        self.points.load(catalog, [*sparks, *airlocks])
        self.sparks.load(sparks, self.points.none)
        self.airlocks.load(airlocks, self.points.none)

    def on_readings(self, readings: Readings) -> list[Signal]:
        rows = self.points.fresh(readings)
        if not len(rows):
            return []
        signals = self.sparks.on_rows(rows) + self.airlocks.on_rows(rows, self.points)
        self.points.commit(rows)
        return in_order(signals)

    def tick(self, now_ms: int) -> list[Signal]:
        return in_order(self.sparks.tick(now_ms) + self.airlocks.tick(now_ms, self.points))
