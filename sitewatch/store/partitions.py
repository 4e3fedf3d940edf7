"""Native daily range partitions for `readings` and `positions` (used when TimescaleDB is absent).

Partitions are named `{table}_pYYYYMMDD` and cover one UTC day. They are created ahead of time
by `maintain` and on demand by the writer for any day a batch touches (late data within retention),
and dropped whole once they fall out of retention, which costs nothing compared with DELETE.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import asyncpg

TABLES = ("readings", "positions")
DAY_MS = 86_400_000
_LOCK_KEY = 0x5157_0002
_EPOCH = dt.date(1970, 1, 1)


def partition_name(table: str, day: int) -> str:
    return f"{table}_p{(_EPOCH + dt.timedelta(days=day)):%Y%m%d}"


async def existing_days(conn: asyncpg.Connection[Any], table: str) -> set[int]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        table,
    )
    days = set()
    for row in rows:
        stamp = row["relname"].rpartition("_p")[2]
        days.add((dt.datetime.strptime(stamp, "%Y%m%d").date() - _EPOCH).days)
    return days


async def ensure(conn: asyncpg.Connection[Any], days: Iterable[int], known: set[int] | None = None) -> set[int]:
    """Create the partitions of `days` that do not exist yet; returns the days now known to exist.

    `known` is the caller's cache, so the common case (every day already there) costs no query.
    """
    wanted = set(days) - (known or set())
    if not wanted:
        return known or set()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        present = await existing_days(conn, TABLES[0])
        for table in TABLES:
            have = present if table == TABLES[0] else await existing_days(conn, table)
            for day in sorted(wanted - have):
                lo = _EPOCH + dt.timedelta(days=day)
                hi = lo + dt.timedelta(days=1)
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF {table}"
                    f" FOR VALUES FROM ('{lo.isoformat()} 00:00:00+00') TO ('{hi.isoformat()} 00:00:00+00')"
                )
    return (known or set()) | wanted | present


async def maintain(conn: asyncpg.Connection[Any], *, retention_days: int, ahead_days: int = 3) -> None:
    """Create today's and the next days' partitions, drop those wholly older than retention."""
    today = (dt.datetime.now(dt.UTC).date() - _EPOCH).days
    await ensure(conn, range(today - 1, today + ahead_days + 1))
    oldest_kept = today - retention_days
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        for table in TABLES:
            for day in sorted(await existing_days(conn, table)):
                if day < oldest_kept:
                    await conn.execute(f"DROP TABLE IF EXISTS {partition_name(table, day)}")
