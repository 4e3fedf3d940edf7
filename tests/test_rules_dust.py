"""The dust-explosion family: hand-computed sparks and airlock cases on a catalog with the kind
defaults, and the vectorised family equal to the per-reading oracle on random streams."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from test_rules_tank import T0, Op, Row, edges, feed, point, run, script, split_invariant

from sitewatch.catalog.models import Catalog
from sitewatch.rules.base import RuleCatalog, SiteInfo
from sitewatch.rules.dust import Dust
from sitewatch.rules.reference.dust import Dust as Reference

S = 1000
SP, AL1, FAN, AL2 = 0, 1, 2, 3

DUST_PLANT = RuleCatalog.from_catalog(
    Catalog.model_validate(
        {
            "enterprises": [{"code": "E", "name": "某铝制品公司"}],
            "sites": [{"code": "DP", "enterprise": "E", "name": "抛光车间", "kind": "dust_plant"}],
            "points": [
                {"code": "SP-1", "site": "DP", "kind": "spark"},
                {"code": "AL-1", "site": "DP", "kind": "airlock_running", "pair": "FN-1"},
                {"code": "FN-1", "site": "DP", "kind": "fan_running"},
                {"code": "AL-2", "site": "DP", "kind": "airlock_running", "pair": "FN-1"},
            ],
        }
    )
)


def dust() -> Dust:
    family = Dust()
    family.load(DUST_PLANT)
    return family


def test_a_spark_alarms_at_once_and_clears_after_a_quiet_window() -> None:
    f = dust()
    assert feed(f, [(SP, 0, 0.0)]) == []
    got = feed(f, [(SP, 5 * S, 1.0)])
    assert edges(got) == [("SP-1", 3, "spark", 5.0)]
    assert got[0].rule == "dust" and got[0].value == 1.0 and got[0].message == "SP-1 火花 1 (spark detected)"
    assert f.tick(T0 + 604_999) == []
    assert edges(f.tick(T0 + 700 * S)) == [("SP-1", 0, "spark", 605.0)]


def test_a_spark_burst_escalates_and_keeps_red_until_the_window_is_quiet() -> None:
    f = dust()
    got = feed(f, [(SP, 0, 1.0), (SP, 100 * S, 1.0), (SP, 200 * S, 0.0), (SP, 300 * S, 1.0), (SP, 400 * S, 1.0)])
    assert edges(got) == [("SP-1", 3, "spark", 0.0), ("SP-1", 4, "spark_repeat", 300.0)]
    assert got[1].message == "SP-1 火花 600 s 内 ≥ 3 次 (repeated sparks)"
    # 1000 s: exactly 600 s after the last spark, a spark continues the alert; 1700 s clears it
    assert feed(f, [(SP, 1000 * S, 1.0)]) == []
    assert edges(feed(f, [(SP, 1700 * S, 0.0)])) == [("SP-1", 0, "spark_repeat", 1600.0)]


def test_sparks_spread_wider_than_the_window_do_not_escalate() -> None:
    f = dust()
    got = feed(f, [(SP, 0, 1.0), (SP, 400 * S, 1.0), (SP, 700 * S, 1.0), (SP, 1100 * S, 1.0)])
    assert edges(got) == [("SP-1", 3, "spark", 0.0)]  # never 3 sparks within 600 s


def test_a_reading_counting_several_sparks_escalates_at_once() -> None:
    f = dust()
    assert edges(feed(f, [(SP, 0, 3.0)])) == [("SP-1", 4, "spark_repeat", 0.0)]


def test_a_new_spark_after_a_quiet_window_raises_again() -> None:
    f = dust()
    got = feed(f, [(SP, 0, 1.0), (SP, 700 * S, 2.0)])
    assert edges(got) == [("SP-1", 3, "spark", 0.0), ("SP-1", 0, "spark", 600.0), ("SP-1", 3, "spark", 700.0)]


def test_an_airlock_stopped_under_a_running_fan_for_60_s() -> None:
    f = dust()
    assert feed(f, [(FAN, 0, 1.0), (AL1, 0, 1.0), (AL1, 10 * S, 0.0)]) == []
    assert f.tick(T0 + 69_999) == []
    fired = f.tick(T0 + 70 * S)
    assert edges(fired) == [("AL-1", 3, "airlock_stopped", 70.0)]
    assert fired[0].rule == "dust" and fired[0].value == 0.0
    assert fired[0].message == "AL-1 关风机 0 停, 风机 FN-1 1 运行, 超过 60 s (airlock stopped)"
    assert edges(feed(f, [(FAN, 80 * S, 0.0)])) == [("AL-1", 0, "airlock_stopped", 80.0)]


def test_an_airlock_restarting_in_time_or_under_a_stopped_fan_is_quiet() -> None:
    f = dust()
    assert feed(f, [(FAN, 0, 1.0), (AL1, 0, 0.0), (AL1, 59 * S, 1.0), (AL1, 100 * S, 0.0), (FAN, 150 * S, 0.0)]) == []
    assert f.tick(T0 + 1000 * S) == []


def test_one_fan_serves_two_airlocks() -> None:
    f = dust()
    got = feed(f, [(AL1, 0, 0.0), (AL2, 0, 0.0), (AL2, 30 * S, 1.0), (FAN, 10 * S, 1.0), (FAN, 100 * S, 1.0)])
    assert edges(got) == [("AL-1", 3, "airlock_stopped", 70.0)]  # the fan was first known to run at 10 s
    assert edges(feed(f, [(AL1, 120 * S, 1.0)])) == [("AL-1", 0, "airlock_stopped", 120.0)]


# Random streams: short windows and delays so that every path is taken within 20 s.

RANDOM = RuleCatalog(
    {1: SiteInfo(1, "DP", "dust_plant")},
    {},
    {
        0: point(0, "SP-A", "spark", None, {"rule": "dust", "check": "spark", "window_s": 3, "repeat": 3}),
        1: point(1, "SP-B", "spark", None, {"rule": "dust", "check": "spark", "window_s": 2, "repeat": 2}),
        2: point(2, "AL-A", "airlock_running", "FN", {"rule": "dust", "check": "airlock", "delay_s": 2}),
        3: point(3, "AL-B", "airlock_running", "FN", {"rule": "dust", "check": "airlock", "delay_s": 0}),
        4: point(4, "FN", "fan_running", None),
        5: point(5, "SP-C", "spark", None, {"rule": "dust", "check": "spark", "window_s": 1.5, "repeat": 5}),
        6: point(6, "FN-2", "fan_running", None),
    },
)
# A reload that changes a window and a repeat, drops a spark point and moves an airlock to another fan.
CHANGED = replace(
    RANDOM,
    points={
        **{i: p for i, p in RANDOM.points.items() if i != 5},
        0: point(0, "SP-A", "spark", None, {"rule": "dust", "check": "spark", "window_s": 4, "repeat": 2}),
        3: point(3, "AL-B", "airlock_running", "FN-2", {"rule": "dust", "check": "airlock", "delay_s": 1}),
    },
)
VALUES = [0.0, 1.0, 2.0, 0.4, 7.0, -1.0, math.nan, math.inf]


@settings(max_examples=120, deadline=None, derandomize=True)
@given(script(7, VALUES))
def test_vectorised_equals_reference(ops: list[Op]) -> None:
    assert run(Dust(), ops, (RANDOM, CHANGED)) == run(Reference(), ops, (RANDOM, CHANGED))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 60).map(lambda k: k * 500), st.sampled_from(VALUES))),
    st.lists(st.integers(0, 30_000), max_size=4),
)
def test_batch_splits_change_nothing(rows: list[Row], cuts: list[int]) -> None:
    split_invariant(Dust, RANDOM, rows, cuts)
