"""The positioning family: hand-computed cases on both implementations, and properties: equal to
the per-event oracle on random streams with ticks and catalog changes, headcounts equal to a
brute-force replay, one alarm for the 10th person, signals only on crossings, replay equivalence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.rules.base import PositionEvent, RuleCatalog, Signal, SiteInfo, ZoneInfo
from sitewatch.rules.positioning import EXIT, LOCATE, SOS, Positioning, headcount_band
from sitewatch.rules.reference.positioning import Positioning as Reference

T0 = 1_795_310_100_000
H = 3_600_000
ZONES = (
    ZoneInfo(1, "HR", risk="high"),
    ZoneInfo(1, "N"),
    ZoneInfo(1, "M3", max_people=3),
    ZoneInfo(1, "M20", max_people=20),
    ZoneInfo(1, "R", risk="restricted", allow=frozenset({"T-A"})),
    ZoneInfo(1, "R2", risk="restricted"),
)
Family = Positioning | Reference
IMPLEMENTATIONS = pytest.mark.parametrize("impl", [Positioning, Reference], ids=["vectorised", "reference"])
settings.register_profile("positioning", derandomize=True, deadline=None, max_examples=100)
PROFILE = settings.get_profile("positioning")


def catalog(zones: tuple[ZoneInfo, ...] = ZONES, **site: Any) -> RuleCatalog:
    info = SiteInfo(1, "MINE-A", "underground_mine", **site)
    return RuleCatalog({1: info}, {(z.site_id, z.code): z for z in zones}, {})


def family(impl: Callable[[], Family] = Positioning, **site: Any) -> Family:
    f = impl()
    f.load(catalog(**site))
    return f


def loc(tag: str, t: int, zone: str) -> PositionEvent:
    return PositionEvent(1, tag, T0 + t, LOCATE, zone)


def leave(tag: str, t: int) -> PositionEvent:
    return PositionEvent(1, tag, T0 + t, EXIT, None)


def sos(tag: str, t: int, zone: str | None = None) -> PositionEvent:
    return PositionEvent(1, tag, T0 + t, SOS, zone)


def brief(signals: list[Signal], rule: str | None = None) -> list[tuple[str, str, int, int]]:
    """(rule, source, severity, ms after T0) of the signals, of one rule if given."""
    return [(s.rule, s.source_code, s.severity, s.ts_ms - T0) for s in signals if rule in (None, s.rule)]


def people(n: int, zone: str, start: int = 0) -> list[PositionEvent]:
    """`n` people entering `zone`, one a millisecond from `start`, tagged after it: HR-0, HR-1..."""
    return [loc(f"{zone}-{i}", start + i, zone) for i in range(n)]


# Hand-computed cases, on both implementations.


@IMPLEMENTATIONS
def test_tenth_person_in_a_high_risk_zone_alarms(impl: Callable[[], Family]) -> None:
    f = family(impl)
    got = f.on_positions(people(12, "HR"))
    # default limit 9: warning at ceil(0.8 × 10) = 8 people, alarm at 10
    assert brief(got) == [("headcount", "HR", 2, 7), ("headcount", "HR", 4, 9)]
    assert [s.value for s in got] == [8, 10]
    assert got[1].message == "HR 区域人数 10 > 9" and got[1].details == {"limit": 9}
    got = f.on_positions([leave(f"HR-{i}", 100 + i) for i in range(6)])
    # 11, 10 stay red; 9 → yellow; 8 stays yellow; 7 → clear
    assert brief(got) == [("headcount", "HR", 2, 102), ("headcount", "HR", 0, 104)]
    assert f.occupancy(1) == {"HR": sorted(f"HR-{i}" for i in range(6, 12))}


@IMPLEMENTATIONS
def test_zone_limits(impl: Callable[[], Family]) -> None:
    f = family(impl)
    got = f.on_positions(people(30, "N") + people(4, "M3", 100) + people(21, "M20", 200))
    # N has no limit; M3 (4 = warn = alarm) has no separate warning; M20 warns at ceil(16.8) = 17
    assert brief(got) == [("headcount", "M3", 4, 103), ("headcount", "M20", 2, 216), ("headcount", "M20", 4, 220)]


def test_bands() -> None:
    site = SiteInfo(1, "S", "underground_mine")
    high, plain = ZoneInfo(1, "HR", risk="high"), ZoneInfo(1, "N")
    assert headcount_band(site, high) == (8, 10)
    assert headcount_band(site, plain) is None
    assert headcount_band(site, None) is None  # a zone missing from the catalog
    assert headcount_band(replace(site, headcount_warn_ratio=0.7), high) == (7, 10)  # not ceil(7.000000000000001)
    assert headcount_band(replace(site, headcount_warn_ratio=1.0), high) == (10, 10)
    rectification = replace(site, state="rectification")
    assert headcount_band(rectification, plain) == (8, 10)
    assert headcount_band(rectification, None) == (8, 10)
    assert headcount_band(rectification, ZoneInfo(1, "M20", max_people=20)) == (8, 10)
    assert headcount_band(rectification, ZoneInfo(1, "M3", max_people=3)) == (4, 4)


@IMPLEMENTATIONS
def test_rectification_caps_every_zone_at_nine(impl: Callable[[], Family]) -> None:
    f = family(impl, state="rectification")
    got = f.on_positions(people(10, "N") + people(10, "M20", 100) + people(10, "UNKNOWN", 200))
    assert brief(got) == [
        ("headcount", "N", 2, 7),
        ("headcount", "N", 4, 9),
        ("headcount", "M20", 2, 107),
        ("headcount", "M20", 4, 109),
        ("headcount", "UNKNOWN", 2, 207),
        ("headcount", "UNKNOWN", 4, 209),
    ]


@IMPLEMENTATIONS
def test_shift_total(impl: Callable[[], Family]) -> None:
    f = family(impl, shift_capacity=3)
    stream = [loc("T1", 0, "N"), loc("T2", 1, "HR"), loc("T3", 2, "N"), loc("T1", 3, "HR"), loc("T4", 4, "M3")]
    stream += [leave("T2", 5), leave("T2", 6), loc("T2", 7, "N")]
    got = f.on_positions(stream)
    # 1, 2, 3 people; a move keeps 3; T4 makes 4 > 3; T2 leaves: 3; leaves again: still 3; returns: 4
    assert brief(got) == [
        ("shift_total", "MINE-A", 3, 4),
        ("shift_total", "MINE-A", 0, 5),
        ("shift_total", "MINE-A", 3, 7),
    ]
    assert got[0].value == 4 and got[0].message == "MINE-A 井下人数 4 > 3"


@IMPLEMENTATIONS
def test_overtime_by_tick(impl: Callable[[], Family]) -> None:
    f = family(impl)
    f.on_positions([loc("T1", 0, "N"), loc("T1", H, "HR")])  # moving does not restart the shift
    assert brief(f.tick(T0 + 10 * H - 1), "overtime") == []
    got = f.tick(T0 + 10 * H + 5000)
    assert brief(got, "overtime") == [("overtime", "T1", 2, 10 * H)]  # at the due time, not now
    assert got[-1].value == 10.0
    assert brief(f.tick(T0 + 11 * H - 1), "overtime") == []  # raised once
    got = f.on_positions([leave("T1", 11 * H), loc("T1", 12 * H, "N")])
    assert brief(got, "overtime") == [("overtime", "T1", 0, 11 * H)]
    assert brief(f.tick(T0 + 22 * H - 1), "overtime") == []
    assert brief(f.tick(T0 + 22 * H), "overtime") == [("overtime", "T1", 2, 22 * H)]


@IMPLEMENTATIONS
def test_overtime_in_event_time_without_ticks(impl: Callable[[], Family]) -> None:
    f = family(impl)
    got = f.on_positions([loc("T1", 0, "N"), loc("T2", 0, "N"), leave("T1", 10 * H + 5), leave("T2", 10 * H)])
    # T1 was underground 10 h 5 ms: raised at its due time, cleared at its exit; T2 left on time
    assert brief(got, "overtime") == [("overtime", "T1", 2, 10 * H), ("overtime", "T1", 0, 10 * H + 5)]


@IMPLEMENTATIONS
def test_timers_survive_a_catalog_change(impl: Callable[[], Family]) -> None:
    f = family(impl)
    got = f.on_positions([loc("T1", 0, "N"), loc("T1", 10 * H + 1, "N")])
    assert brief(got, "overtime") == [("overtime", "T1", 2, 10 * H)]  # raised by the event, in event time
    f.load(catalog(shift_hours=2.0))
    got = f.on_positions([leave("T1", 11 * H), loc("T1", 12 * H, "N")]) + f.tick(T0 + 14 * H)
    assert brief(got, "overtime") == [("overtime", "T1", 0, 11 * H), ("overtime", "T1", 2, 14 * H)]


@IMPLEMENTATIONS
def test_tag_lost(impl: Callable[[], Family]) -> None:
    f = family(impl)
    f.on_positions([loc("T1", 0, "N"), loc("T2", 0, "N"), leave("T2", 1)])
    assert f.tick(T0 + 899_999) == []
    got = f.tick(T0 + 950_000)
    assert brief(got) == [("tag_lost", "T1", 2, 900_000)]  # T2 left the site: never lost
    assert got[0].value == 900 and got[0].details == {"zone": "N", "last_ms": T0}
    assert f.occupancy(1) == {"N": ["T1"]}  # still counted where last seen: the safe side
    got = f.on_positions([sos("T1", 1_000_000)])
    assert brief(got) == [("sos", "T1", 4, 1_000_000), ("tag_lost", "T1", 0, 1_000_000)]
    assert got[1].value == 1000
    # a gap seen only in event time raises and clears too
    got = f.on_positions([loc("T1", 3_000_000, "N")])
    assert brief(got) == [("tag_lost", "T1", 2, 1_900_000), ("tag_lost", "T1", 0, 3_000_000)]


@IMPLEMENTATIONS
def test_restricted_zone(impl: Callable[[], Family]) -> None:
    f = family(impl)
    got = f.on_positions([loc("T-A", 0, "R"), loc("T-B", 1, "R"), loc("T-B", 2, "R2"), loc("T-B", 3, "N")])
    assert brief(got) == [("restricted_zone", "T-B", 3, 1), ("restricted_zone", "T-B", 0, 3)]
    assert got[0].details == {"zone": "R"} and got[1].details == {"zone": "R2"}
    got = f.on_positions([loc("T-A", 4, "R2"), leave("T-A", 5)])
    assert brief(got) == [("restricted_zone", "T-A", 3, 4), ("restricted_zone", "T-A", 0, 5)]


@IMPLEMENTATIONS
def test_sos(impl: Callable[[], Family]) -> None:
    f = family(impl)
    got = f.on_positions([loc("T1", 0, "N"), sos("T1", 5), loc("T1", 6, "HR"), sos("T1", 7, "M3")])
    assert brief(got) == [("sos", "T1", 4, 5), ("sos", "T1", 4, 7)]  # every press; a locate clears nothing
    assert got[0].details == {"zone": "N"} and got[1].details == {"zone": "M3"}
    assert f.occupancy(1) == {"M3": ["T1"]}  # an SOS with a zone locates the tag
    got = f.on_positions([sos("T1", 3, "HR")])  # late: raises, but does not move the tag
    assert brief(got) == [("sos", "T1", 4, 3)]
    assert f.occupancy(1) == {"M3": ["T1"]}
    assert brief(f.on_positions([sos("T9", 8)])) == [("sos", "T9", 4, 8)]  # even off site
    assert f.occupancy(1) == {"M3": ["T1"]}


@IMPLEMENTATIONS
def test_late_events_change_nothing(impl: Callable[[], Family]) -> None:
    f = family(impl)
    f.on_positions([loc("T1", 10, "N")])
    assert f.on_positions([loc("T1", 5, "HR"), leave("T1", 9)]) == []
    assert f.occupancy(1) == {"N": ["T1"]}
    # within a batch, events are taken in event-time order whatever their arrival order
    f.on_positions([loc("T2", 30, "N"), loc("T2", 20, "HR")])
    assert f.occupancy(1) == {"N": ["T1", "T2"]}
    # a late event does not clear a lost tag: it says nothing about the present
    f.tick(T0 + 900_030)
    assert brief(f.on_positions([loc("T2", 25, "N")])) == []


@IMPLEMENTATIONS
def test_unknown_site_is_ignored(impl: Callable[[], Family]) -> None:
    f = family(impl)
    assert f.on_positions([PositionEvent(7, "T1", T0, SOS, "N")]) == []
    assert f.occupancy(7) == {}


@IMPLEMENTATIONS
def test_load_keeps_state_and_applies_new_limits_at_the_next_tick(impl: Callable[[], Family]) -> None:
    f = family(impl, shift_capacity=100)
    assert brief(f.on_positions([*people(9, "N"), loc("T-B", 20, "R")])) == [("restricted_zone", "T-B", 3, 20)]
    f.load(catalog(state="rectification", shift_capacity=5, tag_lost_s=60.0))
    assert f.occupancy(1)["N"] == [f"N-{i}" for i in range(9)]
    # N now has a limit of 9: its 9 people warn and 10 on site > 5, at the next event touching them
    got = f.on_positions([loc("N-0", 25_000, "N")])
    assert brief(got) == [("shift_total", "MINE-A", 3, 25_000), ("headcount", "N", 2, 25_000)]
    assert f.tick(T0 + 30_000) == []
    got = f.on_positions([loc("T9", 40_000, "N")])  # the 10th in N under rectification
    assert brief(got) == [("headcount", "N", 4, 40_000)]
    # T-B is now allowed in R: cleared at the next tick; the lost timers moved to 60 s after each last event
    zones = (*ZONES[:4], replace(ZONES[4], allow=frozenset({"T-A", "T-B"})))
    f.load(catalog(zones, state="rectification", shift_capacity=5, tag_lost_s=60.0))
    got = f.tick(T0 + 60_010)
    assert brief(got) == [("tag_lost", f"N-{i}", 2, 60_000 + i) for i in range(1, 9)] + [
        ("restricted_zone", "T-B", 0, 60_010)
    ]


# Properties.

TAGS = [f"T{i}" for i in range(12)] + ["T-A"]
ZONE_CODES = ["HR", "M3", "N", "R", "R2", "X"]  # X is not in the catalog
CATALOGS = [
    catalog(shift_capacity=8, shift_hours=0.005, tag_lost_s=4.0),
    catalog(state="rectification", shift_capacity=3, shift_hours=0.002, tag_lost_s=2.0, headcount_warn_ratio=0.5),
    catalog((*ZONES[:3], replace(ZONES[4], allow=frozenset(TAGS[:6]))), shift_hours=0.01, tag_lost_s=9.0),
]
Op = tuple[str, Any]  # ("events", [PositionEvent]), ("tick", now_ms) or ("load", index in CATALOGS)


@st.composite
def events(draw: st.DrawFn, now: int, n: int = 12, late: bool = True) -> list[PositionEvent]:
    """A batch of every kind around `now`, in any order (some late), or all at `now`."""
    out = []
    for _ in range(draw(st.integers(0, n))):
        kind = draw(st.sampled_from([LOCATE] * 6 + [EXIT] * 2 + [SOS]))
        crowded = ZONE_CODES[:2] * 2 + ZONE_CODES  # so that the limits of HR and M3 are reached
        zone = None if kind == EXIT else draw(st.sampled_from(crowded + ([None] if kind == SOS else [])))
        ts = now - (draw(st.integers(-2000, 3000)) if late else 0)
        out.append(PositionEvent(1, draw(st.sampled_from(TAGS)), T0 + ts, kind, zone))
    return out


@st.composite
def operations(draw: st.DrawFn, loads: bool = True, late: bool = True) -> list[Op]:
    """A load, then batches, ticks and (if `loads`) catalog changes as the clock moves on."""
    ops: list[Op] = [("load", draw(st.integers(0, len(CATALOGS) - 1)))]
    now = 0
    for _ in range(draw(st.integers(1, 25))):
        now += draw(st.integers(0, 4000))
        op = draw(st.sampled_from(["events"] * 4 + ["tick"] + (["load"] if loads else [])))
        if op == "events":
            ops.append(("events", draw(events(now, late=late))))
        elif op == "tick":
            ops.append(("tick", T0 + now))
        else:
            ops.append(("load", draw(st.integers(0, len(CATALOGS) - 1))))
    return ops


def run(f: Family, op: Op) -> list[Signal]:
    kind, arg = op
    if kind == "load":
        f.load(CATALOGS[arg])
        return []
    return f.on_positions(arg) if kind == "events" else f.tick(arg)


@PROFILE
@given(operations())
def test_vectorised_equals_reference(ops: list[Op]) -> None:
    fast, ref = Positioning(), Reference()
    for op in ops:
        assert run(fast, op) == run(ref, op), op
        assert fast.occupancy(1) == ref.occupancy(1)


def brute_force(history: list[PositionEvent]) -> dict[str, list[str]]:
    """Each tag is where the first of its latest events put it."""
    where: dict[str, tuple[int, str | None]] = {}
    for ev in history:
        if ev.tag not in where or ev.ts_ms > where[ev.tag][0]:
            zone = None if ev.kind == EXIT else ev.zone if ev.zone is not None else where.get(ev.tag, (0, None))[1]
            where[ev.tag] = (ev.ts_ms, zone)
    zones: dict[str, list[str]] = {}
    for tag, (_, zone) in sorted(where.items()):
        if zone is not None:
            zones.setdefault(zone, []).append(tag)
    return dict(sorted(zones.items()))


@settings(PROFILE, max_examples=60)
@given(st.lists(events(0, 40), min_size=1, max_size=3).map(lambda batches: [e for b in batches for e in b]))
def test_headcount_equals_a_brute_force_replay(history: list[PositionEvent]) -> None:
    for impl in (Positioning, Reference):
        stepwise, at_once = family(impl), family(impl)
        for i, ev in enumerate(history):
            stepwise.on_positions([ev])
            assert stepwise.occupancy(1) == brute_force(history[: i + 1])
        at_once.on_positions(history)
        assert at_once.occupancy(1) == brute_force(sorted(history, key=lambda e: e.ts_ms))


def chunks(stream: list[PositionEvent], n: int) -> list[list[PositionEvent]]:
    size = -(-len(stream) // n)
    return [stream[k : k + size] for k in range(0, len(stream), size)]


@PROFILE
@given(
    st.permutations(range(10)),
    st.lists(st.integers(0, 5), min_size=10, max_size=10),
    st.lists(st.tuples(st.sampled_from(TAGS[10:]), st.integers(0, 100), st.sampled_from(ZONE_CODES[1:])), max_size=10),
    st.integers(1, 4),
)
def test_the_tenth_person_raises_exactly_one_alarm(
    order: list[int], gaps: list[int], others: list[tuple[str, int, str]], batches: int
) -> None:
    """Ten people enter a default high-risk zone (some at the same millisecond) while others move
    elsewhere, in one batch or several."""
    times = [sum(gaps[: i + 1]) * 10 for i in range(10)]
    arrivals = [loc(f"T{tag}", t, "HR") for tag, t in zip(order, times, strict=True)]
    stream = sorted(arrivals + [loc(tag, t, zone) for tag, t, zone in others], key=lambda e: e.ts_ms)
    f = family()
    got = [s for batch in chunks(stream, batches) for s in f.on_positions(batch)]
    alarms = [s for s in got if s.rule == "headcount" and s.severity == 4]
    assert len(alarms) == 1
    assert (alarms[0].source_code, alarms[0].ts_ms, alarms[0].value) == ("HR", arrivals[-1].ts_ms, 10)


@PROFILE
@given(
    st.lists(st.tuples(st.sampled_from(["M3", "HR"]), st.integers(0, 11), st.booleans()), min_size=1, max_size=80),
    st.integers(1, 5),
)
def test_signals_only_on_crossings(moves: list[tuple[str, int, bool]], batches: int) -> None:
    """People walk in and out of M3 (alarm at 4, no warning band) and HR (warning at 8, alarm at
    10): a signal exactly where the severity of the count changes, alarm and clear alternating in M3."""
    stream = [loc(f"{z}-{p}", i, z if inside else "N") for i, (z, p, inside) in enumerate(moves)]
    f = family()
    got = [s for batch in chunks(stream, batches) for s in f.on_positions(batch)]
    inside: dict[str, bool] = {}
    level = {"M3": 0, "HR": 0}
    expected = []
    for i, (zone, p, enters) in enumerate(moves):
        inside[f"{zone}-{p}"] = enters
        count = sum(v for tag, v in inside.items() if tag.startswith(zone))
        severity = (4 if count >= 4 else 0) if zone == "M3" else 4 if count >= 10 else 2 if count >= 8 else 0
        if severity != level[zone]:
            expected.append((zone, severity, i, count))
            level[zone] = severity
    assert [(s.source_code, s.severity, s.ts_ms - T0, s.value) for s in got] == expected
    m3 = [s.severity for s in got if s.source_code == "M3"]
    assert m3 == [4, 0] * (len(m3) // 2) + [4] * (len(m3) % 2)


def shifted(ops: list[Op], by: int) -> list[Op]:
    """The operations `by` ms later (their catalog load left out)."""
    return [
        ("events", [replace(e, ts_ms=e.ts_ms + by) for e in arg]) if kind == "events" else ("tick", arg + by)
        for kind, arg in ops[1:]
    ]


@settings(PROFILE, max_examples=40)  # two long histories an example
@given(operations(loads=False, late=False), operations(loads=False))
def test_replay_rebuilds_the_live_state(history: list[Op], future: list[Op]) -> None:
    """After a restart, replaying the events in time order (signals discarded) and ticking to now
    gives a family that behaves as the live one from then on; feeding them again to the live
    family changes nothing."""
    replay = [e for kind, arg in history if kind == "events" for e in arg]
    now = max([arg for kind, arg in history if kind == "tick"] + [e.ts_ms for e in replay], default=T0)
    live, restarted, fed_twice = Positioning(), Positioning(), Positioning()
    for op in history:
        run(live, op)
        run(fed_twice, op)
    run(restarted, history[0])
    restarted.on_positions(replay)
    for f in (live, restarted, fed_twice):
        f.tick(now)
    fed_twice.on_positions(replay)
    for op in shifted(future, now - T0):
        expected = run(live, op)
        assert run(restarted, op) == expected
        assert run(fed_twice, op) == expected
