"""Periodic housekeeping shared by both storage modes."""

from __future__ import annotations

from typing import Any

import asyncpg

from sitewatch.store import partitions


async def run(conn: asyncpg.Connection[Any], *, native: bool, retention_days: int) -> None:
    """Keep partitions ahead of time and prune what has left retention.

    TimescaleDB's own policies handle its hypertables; the message keys and dead letters are
    plain tables in both modes.
    """
    if native:
        await partitions.maintain(conn, retention_days=retention_days)
    for table, column in (("ingest_messages", "received_at"), ("dead_letters", "received_at"), ("alert_events", "at")):
        await conn.execute(f"DELETE FROM {table} WHERE {column} < now() - make_interval(days => $1)", retention_days)
