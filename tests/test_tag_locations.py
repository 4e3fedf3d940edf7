"""tag_locations: the per-tag fold against the positioning rules, the writer's upsert under
concurrent batches, and the migration's backfill from stored positions."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewatch.rules.base import PositionEvent, RuleCatalog, SiteInfo
from sitewatch.rules.positioning import Positioning
from sitewatch.store import db
from sitewatch.store.migrate import migrate
from sitewatch.store.tag_locations import EXIT, LOCATE, SOS, Location, by_tag, fold
from sitewatch.store.writer import Batch, Writer
from tests.conftest import StackHandle
from tests.test_storage import fresh_dsn

T0 = int(dt.datetime.now(dt.UTC).timestamp() * 1000) - 3_600_000


def test_fold_follows_each_kind() -> None:
    assert fold(None, [(T0, LOCATE, "A")]) == Location(T0, "A", T0)
    here = Location(T0, "A", T0)
    assert fold(here, [(T0 + 5, LOCATE, "A")]) == Location(T0 + 5, "A", T0)  # staying keeps since
    assert fold(here, [(T0 + 5, SOS, None)]) == Location(T0 + 5, "A", T0)  # sos without zone: stays
    assert fold(here, [(T0 + 5, SOS, "B")]) == Location(T0 + 5, "B", T0 + 5)  # sos with a zone: moves
    assert fold(here, [(T0 + 5, EXIT, None)]) == Location(T0 + 5, None, T0 + 5)
    assert fold(None, [(T0, SOS, None)]) == Location(T0, None, T0)  # an sos of a tag never seen: off site


def test_fold_orders_by_event_time_and_ignores_late_events() -> None:
    here = Location(T0, "A", T0 - 10)
    assert fold(here, [(T0, LOCATE, "B"), (T0 - 1, EXIT, None)]) == here  # neither is newer
    # out of order within a batch: applied by time, so the exit comes last
    assert fold(None, [(T0 + 2, EXIT, None), (T0, LOCATE, "A"), (T0 + 1, LOCATE, "B")]) == Location(
        T0 + 2, None, T0 + 2
    )
    # the same millisecond twice: the first to arrive wins
    assert fold(None, [(T0, LOCATE, "A"), (T0, LOCATE, "B")]) == Location(T0, "A", T0)
    # leaving and coming back: since restarts
    assert fold(here, [(T0 + 1, LOCATE, "B"), (T0 + 2, LOCATE, "A")]) == Location(T0 + 2, "A", T0 + 2)


def test_by_tag_groups_a_batch_in_arrival_order() -> None:
    rows = [(0, 1, T0, "T1", LOCATE, "A"), (0, 2, T0, "T1", LOCATE, "B"), (1, 1, T0 - 1, "T1", EXIT, None)]
    assert by_tag(rows) == {(1, "T1"): [(T0, LOCATE, "A"), (T0 - 1, EXIT, None)], (2, "T1"): [(T0, LOCATE, "B")]}


events = st.lists(
    st.tuples(
        st.sampled_from(["T1", "T2", "T3"]),
        st.integers(0, 12),
        st.sampled_from([(LOCATE, "A"), (LOCATE, "B"), (EXIT, None), (SOS, None), (SOS, "A"), (SOS, "C")]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events, st.lists(st.integers(0, 40), max_size=4))
def test_folded_batches_place_every_tag_where_the_positioning_rules_do(
    stream: list[tuple[str, int, tuple[int, str | None]]], cuts: list[int]
) -> None:
    family = Positioning()
    family.load(RuleCatalog({1: SiteInfo(1, "S", "underground_mine")}, {}, {}))
    stored: dict[str, Location | None] = {}
    bounds = [0, *sorted(cuts), len(stream)]
    for lo, hi in itertools.pairwise(bounds):
        batch = [(0, 1, T0 + ts, tag, kind, zone) for tag, ts, (kind, zone) in stream[lo:hi]]
        family.on_positions([PositionEvent(1, tag, ts, kind, zone) for _, _, ts, tag, kind, zone in batch])
        for (_, tag), evs in by_tag(batch).items():
            stored[tag] = fold(stored.get(tag), evs)
    zones: dict[str, list[str]] = {}
    for tag, location in sorted(stored.items()):
        if location is not None and location.zone is not None:
            zones.setdefault(location.zone, []).append(tag)
    assert zones == family.occupancy(1)


def ms(ts: dt.datetime) -> int:
    return round(ts.timestamp() * 1000)


async def locations(conn: asyncpg.Connection[Any]) -> dict[str, Location]:
    rows = await conn.fetch("SELECT tag, ts, zone, since FROM tag_locations")
    return {r["tag"]: Location(ms(r["ts"]), r["zone"], ms(r["since"])) for r in rows}


def positions_batch(seq: int, rows: list[tuple[int, str, int, str | None]]) -> Batch:
    """One positions message of site 1 holding (ts, tag, kind, zone) events."""
    batch = Batch()
    msg = batch.add_message(1, "GW", seq, 1, len(rows), T0)
    batch.positions = [(msg, 1, ts, tag, kind, zone) for ts, tag, kind, zone in rows]
    return batch


async def test_writer_keeps_locations_across_batches_and_concurrent_writers(
    stack: StackHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_STORAGE", "native")
    async for dsn in fresh_dsn(stack):
        conns = [await db.connect(dsn) for _ in range(2)]
        try:
            await migrate(conns[0], retention_days=30)
            one, two = (Writer(c, native_partitions=True) for c in conns)
            await one.write(positions_batch(1, [(T0, "T1", LOCATE, "A"), (T0 + 1, "T2", LOCATE, "A")]))
            late = positions_batch(2, [(T0 + 9, "T1", SOS, None), (T0 - 5, "T2", EXIT, None)])
            await one.write(late)
            assert await locations(conns[0]) == {"T1": Location(T0 + 9, "A", T0), "T2": Location(T0 + 1, "A", T0 + 1)}
            result = await one.write(late)  # redelivered: deduplicated, moves nobody
            assert result.duplicate_messages == 1
            assert (await locations(conns[0]))["T1"] == Location(T0 + 9, "A", T0)
            # two writers at once over the same tags, each listing them in the opposite order
            batches = [
                positions_batch(10 + i, [(T0 + 100 + i, tag, LOCATE, "B" if i % 2 else "C") for tag in tags])
                for i, tags in enumerate([("T1", "T2", "T3"), ("T3", "T2", "T1")] * 10)
            ]

            async def run(writer: Writer, mine: list[Batch]) -> None:
                for b in mine:
                    await writer.write(b)

            await asyncio.gather(run(one, batches[0::2]), run(two, batches[1::2]))
            final = await locations(conns[0])
            assert {tag: (loc.ts_ms, loc.zone) for tag, loc in final.items()} == {
                tag: (T0 + 119, "B") for tag in ("T1", "T2", "T3")
            }
        finally:
            for c in conns:
                await c.close()


async def test_migration_backfills_from_stored_positions(stack: StackHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEWATCH_STORAGE", "native")
    stream = [
        (T0, "T1", SOS, None),
        (T0 + 1, "T1", LOCATE, "A"),
        (T0 + 2, "T1", SOS, None),
        (T0 + 3, "T1", LOCATE, "A"),
        (T0 + 4, "T2", LOCATE, "A"),
        (T0 + 5, "T2", SOS, "B"),
        (T0 + 6, "T2", LOCATE, "B"),
        (T0 + 7, "T2", EXIT, None),
        (T0 + 8, "T2", SOS, None),
        (T0 + 9, "T3", LOCATE, "C"),
        (T0 + 9, "T3", EXIT, None),  # the same millisecond: the lower kind stands for the first
    ]
    async for dsn in fresh_dsn(stack):
        conn = await db.connect(dsn)
        try:
            await migrate(conn, retention_days=30)
            await conn.execute("DROP TABLE tag_locations")
            await conn.execute("DELETE FROM schema_migrations WHERE version = 7")
            await conn.executemany(
                "INSERT INTO positions (site_id, ts, tag, kind, zone) VALUES (1, $1, $2, $3, $4)",
                [(dt.datetime.fromtimestamp(ts / 1000, dt.UTC), tag, kind, zone) for ts, tag, kind, zone in stream],
            )
            await migrate(conn, retention_days=30)
            expected = {tag: fold(None, evs) for (_, tag), evs in by_tag([(0, 1, *row) for row in stream]).items()}
            assert await locations(conn) == expected
            assert expected["T1"] == Location(T0 + 3, "A", T0 + 1)
            assert expected["T2"] == Location(T0 + 8, None, T0 + 7)
            assert expected["T3"] == Location(T0 + 9, "C", T0 + 9)
        finally:
            await conn.close()
