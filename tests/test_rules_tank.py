"""The tank emergency-shutoff family: hand-computed cases on a catalog with the kind defaults, and
the vectorised family equal to the per-reading oracle on random streams, ticks and reloads."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.catalog.models import Catalog
from sitewatch.rules.base import PointInfo, Readings, RuleCatalog, Signal, SiteInfo
from sitewatch.rules.reference.tank import Tank as Reference
from sitewatch.rules.tank import Tank, in_order

T0 = 1_795_310_100_000
S = 1000
H = 3600 * S
FB, CMD, LT, IB = 0, 1, 2, 3

Row = tuple[int, int, float] | tuple[int, int, float, int]  # point, ms after T0, value[, quality]


class Family(Protocol):
    def load(self, catalog: RuleCatalog) -> None: ...
    def on_readings(self, readings: Readings) -> list[Signal]: ...
    def tick(self, now_ms: int) -> list[Signal]: ...


def readings(rows: list[Row]) -> Readings:
    """A batch as the engine hands it over: sorted by (point, time), arrival order kept on ties."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    return Readings(
        np.array([r[0] for r in rows], dtype=np.int32),
        np.array([T0 + r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] if len(r) > 3 else 0 for r in rows], dtype=np.int16),
        np.zeros(len(rows), dtype=np.int32),
    )


def edges(signals: list[Signal]) -> list[tuple[str, int, str | None, float]]:
    """(source, severity, kind, seconds after T0) of each signal."""
    return [(s.source_code, s.severity, s.kind, (s.ts_ms - T0) / S) for s in signals]


TANK_FARM = RuleCatalog.from_catalog(
    Catalog.model_validate(
        {
            "enterprises": [{"code": "E", "name": "某储运公司"}],
            "sites": [{"code": "TF", "enterprise": "E", "name": "罐区", "kind": "tank_farm"}],
            "points": [
                {"code": "XV-1", "site": "TF", "kind": "valve_feedback", "pair": "XC-1"},
                {"code": "XC-1", "site": "TF", "kind": "valve_command"},
                {"code": "LT-1", "site": "TF", "kind": "tank_level", "unit": "%", "pair": "XV-1"},
                {"code": "IB-1", "site": "TF", "kind": "interlock_bypass"},
            ],
        }
    )
)


def tank() -> Tank:
    family = Tank()
    family.load(TANK_FARM)
    return family


def feed(family: Family, rows: list[Row]) -> list[Signal]:
    return family.on_readings(readings(rows))


def test_a_valve_that_fails_to_close_raises_one_stroke_timeout_at_the_stroke_end() -> None:
    f = tank()
    assert feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0)]) == []  # open, agreeing
    assert feed(f, [(CMD, 10 * S, 1.0), (FB, 12 * S, 0.0)]) == []  # commanded closed, still open
    assert f.tick(T0 + 39_999) == []
    fired = f.tick(T0 + 45 * S)
    assert edges(fired) == [("XV-1", 3, "stroke_timeout", 40.0)]
    assert fired[0].rule == "valve_mismatch" and fired[0].value == 0.0
    assert fired[0].message == "XV-1 切断阀反馈 0 ≠ 指令 1 超过 30 s (stroke timeout)"
    assert f.tick(T0 + 100 * S) == []
    assert feed(f, [(FB, 50 * S, 0.0)]) == []
    assert edges(feed(f, [(FB, 70 * S, 1.0)])) == [("XV-1", 0, "stroke_timeout", 70.0)]


def test_the_stroke_timeout_also_fires_from_a_later_reading_without_a_tick() -> None:
    f = tank()
    got = feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (CMD, 10 * S, 1.0), (FB, 50 * S, 0.0), (FB, 60 * S, 1.0)])
    assert edges(got) == [("XV-1", 3, "stroke_timeout", 40.0), ("XV-1", 0, "stroke_timeout", 60.0)]


def test_a_valve_closing_within_its_stroke_is_quiet_even_at_the_last_millisecond() -> None:
    f = tank()
    assert feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (CMD, 10 * S, 1.0), (FB, 40 * S, 1.0)]) == []
    assert f.tick(T0 + 100 * S) == []
    assert feed(f, [(CMD, 200 * S, 0.0), (FB, 201 * S, 1.0), (FB, 229_999, 0.0)]) == []  # opening, in time


def test_feedback_moving_without_a_command_alarms_at_once() -> None:
    f = tank()
    got = feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (FB, 100 * S, 1.0), (FB, 110 * S, 0.0)])
    assert edges(got) == [
        ("XV-1", 3, "feedback_without_command", 100.0),
        ("XV-1", 0, "feedback_without_command", 110.0),
    ]
    assert got[0].message == "XV-1 切断阀反馈 1 ≠ 指令 0 无指令变化 (feedback without command)"
    # a command that follows the feedback clears it too
    got = feed(f, [(FB, 200 * S, 1.0), (CMD, 205 * S, 1.0)])
    assert edges(got) == [
        ("XV-1", 3, "feedback_without_command", 200.0),
        ("XV-1", 0, "feedback_without_command", 205.0),
    ]


def test_feedback_bouncing_within_the_stroke_is_movement_then_a_stroke_timeout() -> None:
    f = tank()
    got = feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (CMD, 200 * S, 1.0), (FB, 205 * S, 1.0), (FB, 210 * S, 0.0)])
    assert got == []
    assert edges(f.tick(T0 + 231 * S)) == [("XV-1", 3, "stroke_timeout", 230.0)]


def test_a_mismatch_found_at_start_up_is_given_a_stroke() -> None:
    f = tank()
    assert feed(f, [(FB, 0, 0.0), (CMD, 5 * S, 1.0)]) == []
    assert edges(f.tick(T0 + 60 * S)) == [("XV-1", 3, "stroke_timeout", 35.0)]


def test_bad_late_and_repeated_readings_never_clear() -> None:
    f = tank()
    assert len(feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (FB, 100 * S, 1.0)])) == 1
    assert feed(f, [(FB, 101 * S, 0.0, 2), (FB, 102 * S, math.nan), (FB, 90 * S, 0.0), (FB, 100 * S, 0.0)]) == []
    assert edges(feed(f, [(FB, 103 * S, 0.0)])) == [("XV-1", 0, "feedback_without_command", 103.0)]


def test_level_high_high_with_the_valve_open_after_the_stroke_time() -> None:
    f = tank()
    assert feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (LT, 0, 80.0), (LT, 10 * S, 96.0)]) == []
    fired = f.tick(T0 + 40 * S)
    assert edges(fired) == [("LT-1", 4, "level_high_high_valve_open", 40.0)]
    assert fired[0].rule == "interlock" and fired[0].value == 96.0
    assert fired[0].message == "LT-1 液位 96 % ≥ 95, 切断阀 XV-1 0 未关 (level high-high, valve open)"
    # 94.5 is inside the deadband (95 − 1); 93.9 is below it
    assert feed(f, [(LT, 50 * S, 94.5)]) == []
    assert edges(feed(f, [(LT, 60 * S, 93.9)])) == [("LT-1", 0, "level_high_high_valve_open", 60.0)]


def test_level_high_high_clears_when_the_valve_closes_and_a_working_trip_is_quiet() -> None:
    f = tank()
    assert feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (LT, 0, 96.0)]) == []
    got = feed(f, [(CMD, 35 * S, 1.0), (FB, 40 * S, 1.0)])
    assert edges(got) == [
        ("LT-1", 4, "level_high_high_valve_open", 30.0),
        ("LT-1", 0, "level_high_high_valve_open", 40.0),
    ]
    # the valve reopens with the level still high; the interlock closes it within its stroke
    assert feed(f, [(CMD, 100 * S, 0.0), (FB, 101 * S, 0.0), (CMD, 110 * S, 1.0), (FB, 120 * S, 1.0)]) == []
    assert f.tick(T0 + 1000 * S) == []


def test_an_interlock_bypassed_for_eight_hours() -> None:
    f = tank()
    assert feed(f, [(IB, 0, 1.0), (IB, 4 * H, 1.0)]) == []
    assert f.tick(T0 + 8 * H - 1) == []
    fired = f.tick(T0 + 8 * H + 150)
    assert edges(fired) == [("IB-1", 3, "bypassed", 8 * 3600.0)]
    assert fired[0].rule == "interlock" and fired[0].message == "IB-1 联锁旁路 1 超过 8 h (interlock bypassed)"
    assert edges(feed(f, [(IB, 9 * H, 0.0)])) == [("IB-1", 0, "bypassed", 9 * 3600.0)]
    # a bypass seen only through readings: raised at its due time, cleared by the 0
    got = feed(f, [(IB, 10 * H, 2.0), (IB, 19 * H, 0.0)])
    assert edges(got) == [("IB-1", 3, "bypassed", 18 * 3600.0), ("IB-1", 0, "bypassed", 19 * 3600.0)]
    # removed exactly at the due time: not longer than 8 h
    assert feed(f, [(IB, 20 * H, 1.0), (IB, 28 * H, 0.0)]) == []


def test_a_reading_older_than_a_fired_timer_counts_at_the_timer() -> None:
    f = tank()
    feed(f, [(IB, 0, 1.0)])
    assert len(f.tick(T0 + 8 * H)) == 1
    assert edges(feed(f, [(IB, 7 * H, 0.0)])) == [("IB-1", 0, "bypassed", 8 * 3600.0)]


def test_times_too_far_apart_for_a_packed_sort_key_still_go_in_order() -> None:
    rows: list[Row] = [(IB, 0, 1.0), (IB, 2**62, 0.0)]
    got = feed(tank(), rows)
    assert edges(got) == [("IB-1", 3, "bypassed", 8 * 3600.0), ("IB-1", 0, "bypassed", 2**62 / S)]
    assert feed(Reference(), rows) == [] and got == feed(reference(), rows)


def reference() -> Reference:
    family = Reference()
    family.load(TANK_FARM)
    return family


def test_reload_keeps_pending_timers_and_active_alerts() -> None:
    f = tank()
    feed(f, [(CMD, 0, 0.0), (FB, 0, 0.0), (CMD, 10 * S, 1.0), (IB, 0, 1.0)])
    f.load(TANK_FARM)
    assert edges(f.tick(T0 + 40 * S)) == [("XV-1", 3, "stroke_timeout", 40.0)]
    f.load(TANK_FARM)
    assert edges(feed(f, [(FB, 41 * S, 1.0)])) == [("XV-1", 0, "stroke_timeout", 41.0)]


# Random streams: small stroke and bypass times so that every path is taken within 20 s.


def point(i: int, code: str, kind: str, pair: str | None, *rules: dict[str, Any]) -> PointInfo:
    return PointInfo(i, 1, code, kind, "%", 1.0, pair, rules)


def level(above: list[float], deadband: float, **more: Any) -> dict[str, Any]:
    return {"rule": "threshold", "above": above, "below": [], "deadband": deadband, **more}


RANDOM = RuleCatalog(
    {1: SiteInfo(1, "TF", "tank_farm")},
    {},
    {
        0: point(0, "FB-A", "valve_feedback", "CMD-A", {"rule": "valve_mismatch", "stroke_s": 3, "closed_value": 1}),
        1: point(1, "CMD-A", "valve_command", None),
        2: point(2, "FB-B", "valve_feedback", "CMD-B", {"rule": "valve_mismatch", "stroke_s": 2, "closed_value": 0}),
        3: point(3, "CMD-B", "valve_command", None),
        4: point(4, "LT-A", "tank_level", "FB-A", level([5, 8], 1, min=0, max=10)),
        5: point(5, "LT-B", "tank_level", "CMD-B", level([8], 0)),
        6: point(6, "IB-1", "interlock_bypass", None, {"rule": "interlock", "max_bypass_s": 4}),
        7: point(7, "LT-C", "tank_level", "CMD-A", level([7], 2), {"rule": "interlock", "max_bypass_s": 1}),
        8: point(8, "GEN", "generic", None),
    },
)
# A reload that changes parameters, drops a valve and re-pairs a level (sources by key survive).
CHANGED = replace(
    RANDOM,
    points={
        **{i: p for i, p in RANDOM.points.items() if i != 2},
        5: point(5, "LT-B", "tank_level", "FB-A", level([8], 0)),
        6: point(6, "IB-1", "interlock_bypass", None, {"rule": "interlock", "max_bypass_s": 2}),
    },
)
VALUES = [0.0, 1.0, 2.0, 5.0, 6.5, 7.0, 8.0, 9.0, 11.0, -1.0, math.nan, math.inf]

Op = tuple[str, Any]


@st.composite
def script(draw: st.DrawFn, points: int, values: list[float]) -> list[Op]:
    """Batches moving forward in time (with some late rows), ticks and reloads."""
    now, ops = 0, list[Op]()
    pid, quality = st.integers(0, points - 1), st.sampled_from([0, 0, 0, 0, 1, 2])
    value = st.one_of(st.sampled_from([0.0, 1.0]), st.sampled_from(values))
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(["batch", "batch", "batch", "tick", "load"]))
        if op == "batch":
            rows = [
                (draw(pid), now + draw(st.integers(-4, 12)) * 500, draw(value), draw(quality))
                for _ in range(draw(st.integers(0, 30)))
            ]
            ops.append(("batch", rows))
            now += draw(st.integers(0, 10)) * 500
        elif op == "tick":
            ops.append(("tick", now + draw(st.integers(-2, 8)) * 500))
        else:
            ops.append(("load", draw(st.booleans())))
    return ops


def run(family: Family, ops: list[Op], catalogs: tuple[RuleCatalog, RuleCatalog]) -> list[list[Signal]]:
    family.load(catalogs[0])
    out = []
    for name, arg in ops:
        if name == "batch":
            out.append(family.on_readings(readings(arg)))
        elif name == "tick":
            out.append(family.tick(T0 + arg))
        else:
            family.load(catalogs[int(arg)])
    return out


def split_invariant(make: Callable[[], Family], catalog: RuleCatalog, rows: list[Row], cuts: list[int]) -> None:
    """Splitting a stream into batches at time boundaries changes no signal (a timer that an
    instant of a later batch shows to have passed may come a call later than in one batch)."""
    whole = make()
    whole.load(catalog)
    expected = whole.on_readings(readings(rows))
    parts = make()
    parts.load(catalog)
    got: list[Signal] = []
    for lo, hi in zip([-1, *sorted(cuts)], [*sorted(cuts), 10**9], strict=True):
        got += parts.on_readings(readings([r for r in rows if lo <= r[1] < hi]))
    assert in_order(got) == expected


@settings(max_examples=150, deadline=None, derandomize=True)
@given(script(9, VALUES))
def test_vectorised_equals_reference(ops: list[Op]) -> None:
    assert run(Tank(), ops, (RANDOM, CHANGED)) == run(Reference(), ops, (RANDOM, CHANGED))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 60).map(lambda k: k * 500), st.sampled_from(VALUES))),
    st.lists(st.integers(0, 30_000), max_size=4),
)
def test_batch_splits_change_nothing(rows: list[Row], cuts: list[int]) -> None:
    split_invariant(Tank, RANDOM, rows, cuts)
