"""The threshold family: hand-computed cases, and the vectorised family equal to the per-reading
oracle on random streams, batch splits and timer ticks."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.rules.base import PointInfo, Readings, RuleCatalog, Signal, SiteInfo
from sitewatch.rules.reference.threshold import Threshold as Reference
from sitewatch.rules.threshold import Threshold

T0 = 1_795_310_100_000


def catalog(*rules: dict[str, Any]) -> RuleCatalog:
    site = SiteInfo(1, "S", "tank_farm")
    points = {i: PointInfo(i, 1, f"P{i}", "generic", "%LEL", 1.0, None, (rule,)) for i, rule in enumerate(rules)}
    return RuleCatalog({1: site}, {}, points)


def readings(rows: list[tuple[int, int, float]], quality: list[int] | None = None) -> Readings:
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    return Readings(
        np.array([r[0] for r in rows], dtype=np.int32),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array(quality or [0] * len(rows), dtype=np.int16),
        np.zeros(len(rows), dtype=np.int32),
    )


def family(*rules: dict[str, Any]) -> Threshold:
    f = Threshold()
    f.load(catalog(*rules))
    return f


GAS = {
    "rule": "threshold",
    "above": [25, 50],
    "below": [],
    "deadband": 2,
    "for_s": 0,
    "latch": False,
    "severities": [2, 3],
}


def levels(signals: list[Signal]) -> list[tuple[int, int]]:
    return [(s.ts_ms - T0, s.severity) for s in signals]


def test_two_levels_with_hysteresis() -> None:
    f = family(GAS)
    values = [10, 26, 24, 23.5, 51, 49, 47.9, 22.9, 30]
    got = f.on_readings(readings([(0, T0 + i, v) for i, v in enumerate(values)]))
    # 26 ≥ 25 → 2; 24 and 23.5 stay within the deadband; 51 → 3; 49 stays; 47.9 < 48 → 2; 22.9 < 23 → 0; 30 → 2
    assert levels(got) == [(1, 2), (4, 3), (6, 2), (7, 0), (8, 2)]
    assert got[0].rule == "threshold" and got[0].source_code == "P0" and got[0].value == 26


def test_noise_inside_the_deadband_never_flaps() -> None:
    f = family(GAS)
    noise = 25 + np.random.default_rng(3).uniform(-1.99, 1.99, 1000)
    got = f.on_readings(readings([(0, T0 + i, float(v)) for i, v in enumerate(noise)]))
    assert len(got) <= 1


def test_on_delay_raises_after_for_s_even_without_readings() -> None:
    f = family({**GAS, "for_s": 30})
    assert f.on_readings(readings([(0, T0, 30.0)])) == []
    assert f.tick(T0 + 29_999) == []
    fired = f.tick(T0 + 45_000)
    assert levels(fired) == [(30_000, 2)]
    assert f.on_readings(readings([(0, T0 + 46_000, 31.0)])) == []
    assert levels(f.on_readings(readings([(0, T0 + 47_000, 10.0)]))) == [(47_000, 0)]


def test_on_delay_is_cancelled_by_a_dip() -> None:
    f = family({**GAS, "for_s": 30})
    got = f.on_readings(
        readings(
            [
                (0, T0, 30.0),
                (0, T0 + 10_000, 20.0),
                (0, T0 + 20_000, 30.0),
                (0, T0 + 45_000, 30.0),
                (0, T0 + 51_000, 30.0),
            ]
        )
    )
    assert levels(got) == [(50_000, 2)]  # the second run started at 20 s


def test_latching_holds_until_reset() -> None:
    f = family({**GAS, "latch": True})
    got = f.on_readings(readings([(0, T0, 30.0), (0, T0 + 1, 5.0), (0, T0 + 2, 60.0), (0, T0 + 3, 0.0)]))
    assert levels(got) == [(0, 2), (2, 3)]
    f.reset(0)
    assert levels(f.on_readings(readings([(0, T0 + 4, 0.0)]))) == []
    assert levels(f.on_readings(readings([(0, T0 + 5, 26.0)]))) == [(5, 2)]


def test_below_levels_bad_quality_range_and_late_readings() -> None:
    f = family(
        {
            "rule": "threshold",
            "above": [1500, 1800],
            "below": [300],
            "deadband": 50,
            "for_s": 0,
            "latch": False,
            "severities": [2, 3],
            "min": 0,
            "max": 5000,
        }
    )
    got = f.on_readings(readings([(0, T0, 299.0), (0, T0 + 1, 9999.0), (0, T0 + 2, 1900.0)], quality=[2, 0, 0]))
    assert levels(got) == [(2, 3)] and got[0].kind == "high"
    assert f.on_readings(readings([(0, T0 + 1, 0.0)])) == []  # older than the last evaluated reading
    low = f.on_readings(readings([(0, T0 + 3, 250.0)]))
    assert levels(low) == [(3, 2)] and low[0].kind == "low" and "≤ 300" in low[0].message


# -- the vectorised family equals the per-reading oracle -----------------------------------------
rule_strategy = (
    st.fixed_dictionaries(
        {
            "rule": st.just("threshold"),
            "above": st.sampled_from([[], [20.0], [20.0, 40.0]]),
            "below": st.sampled_from([[], [-20.0], [-20.0, -40.0]]),
            "deadband": st.sampled_from([0.0, 1.0, 5.0]),
            "for_s": st.sampled_from([0.0, 0.002, 0.01]),
            "latch": st.booleans(),
            "min": st.sampled_from([None, -45.0]),
        }
    )
    .filter(lambda r: r["above"] or r["below"])
    .map(lambda r: {**r, "severities": [2, 3][: max(len(r["above"]), len(r["below"]))], "max": None})
)

event = st.one_of(
    st.tuples(
        st.just("read"),
        st.integers(0, 3),
        st.integers(0, 4),
        st.floats(-50, 50, allow_nan=False),
        st.sampled_from([0, 0, 0, 1, 2]),
    ),
    st.tuples(st.just("tick"), st.integers(0, 30)),
    st.just(("flush",)),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(rule_strategy, min_size=4, max_size=4), st.lists(event, max_size=80))
def test_vectorised_equals_reference(rules: list[dict[str, Any]], events: list[Any]) -> None:
    fast, slow = Threshold(), Reference()
    for f in (fast, slow):
        f.load(catalog(*rules))
    clock = T0
    pending: list[tuple[int, int, float]] = []
    quality: list[int] = []
    got: list[Signal] = []
    want: list[Signal] = []

    def flush() -> None:
        if pending:
            order = sorted(range(len(pending)), key=lambda i: (pending[i][0], pending[i][1]))
            batch = readings([pending[i] for i in order], [quality[i] for i in order])
            got.extend(fast.on_readings(batch))
            want.extend(slow.on_readings(batch))
            pending.clear()
            quality.clear()

    for e in events:
        if e[0] == "read":
            clock += e[2]
            pending.append((e[1], clock, e[3]))
            quality.append(e[4])
        elif e[0] == "tick":
            flush()
            clock += e[1]
            got.extend(fast.tick(clock))
            want.extend(slow.tick(clock))
        else:
            flush()
    flush()
    assert got == want


def test_restore_after_restart_neither_raises_again_nor_forgets_to_clear() -> None:
    f = family({**GAS, "for_s": 30})
    f.restore(0, 2, below=False)
    assert f.on_readings(readings([(0, T0, 30.0)])) == []
    assert levels(f.on_readings(readings([(0, T0 + 1, 5.0)]))) == [(1, 0)]
