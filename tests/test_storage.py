"""Migrations and the time-partitioned readings table, on fresh databases in the test cluster."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest

from sitewatch.store import db, partitions
from sitewatch.store.migrate import migrate, migration_files, storage_mode
from sitewatch.store.writer import Batch, Writer
from tests.conftest import StackHandle, unique


async def fresh_dsn(stack: StackHandle) -> AsyncIterator[str]:
    """The DSN of a new, empty database in the test cluster, dropped afterwards."""
    name = unique("db").replace("-", "_")
    admin = await asyncpg.connect(stack.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield stack.dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def fresh_database(stack: StackHandle) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A new database, on a connection with the services' codecs (jsonb as dicts)."""
    async for dsn in fresh_dsn(stack):
        conn = await db.connect(dsn)
        try:
            yield conn
        finally:
            await conn.close()


@pytest.fixture
async def fresh(stack: StackHandle) -> AsyncIterator[asyncpg.Connection[Any]]:
    async for conn in fresh_database(stack):
        yield conn


async def test_native_mode_is_chosen_recorded_and_migrations_rerun_cleanly(
    fresh: asyncpg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_STORAGE", "native")
    assert await migrate(fresh, retention_days=7) == "native"
    assert await migrate(fresh, retention_days=7) == "native"  # nothing pending: a no-op
    assert await storage_mode(fresh) == "native"
    versions = [r["version"] for r in await fresh.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == sorted({f.version for f in migration_files()})
    assert await fresh.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'readings'") == "p"
    today = (dt.datetime.now(dt.UTC).date() - dt.date(1970, 1, 1)).days
    days = await partitions.existing_days(fresh, "readings")
    assert set(range(today - 1, today + 4)) <= days


async def test_partitions_on_demand_and_retention(
    fresh: asyncpg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_STORAGE", "native")
    await migrate(fresh, retention_days=30)
    await fresh.execute("INSERT INTO enterprises (code, name) VALUES ('E', 'e')")
    site_id = await fresh.fetchval(
        "INSERT INTO sites (code, enterprise, name, kind) VALUES ('S', 'E', 's', 'tank_farm') RETURNING id"
    )
    point_id = await fresh.fetchval(
        "INSERT INTO points (site_id, code, kind) VALUES ($1, 'P', 'generic') RETURNING id", site_id
    )
    today = (dt.datetime.now(dt.UTC).date() - dt.date(1970, 1, 1)).days
    old_day = today - 20  # late data within retention: its partition is made on demand
    ts = np.array([old_day * partitions.DAY_MS + 5, today * partitions.DAY_MS + 5], dtype=np.int64)
    batch = Batch()
    msg = batch.add_message(site_id, "GW", 1, 0, 2, today * partitions.DAY_MS)
    batch.add_readings(
        msg, np.array([point_id] * 2, dtype=np.int32), ts, np.array([1.5, 2.5]), np.zeros(2, dtype=np.int16)
    )
    writer = Writer(fresh, native_partitions=True)
    result = await writer.write(batch)
    assert result.readings == 2 and result.duplicate_messages == 0
    assert old_day in await partitions.existing_days(fresh, "readings")
    again = await writer.write(batch)  # the same message key: stored once
    assert again.readings == 0 and again.duplicate_messages == 1
    assert await fresh.fetchval("SELECT count(*) FROM readings") == 2
    await partitions.maintain(fresh, retention_days=10)  # the day 20 days back leaves retention
    assert old_day not in await partitions.existing_days(fresh, "readings")
    assert await fresh.fetchval("SELECT count(*) FROM readings") == 1


async def test_timescaledb_mode(fresh: asyncpg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    available = await fresh.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
    if not available:
        pytest.skip(
            "the TimescaleDB extension is not installed in this PostgreSQL (Debian does not package it; "
            "deploy/ uses the official TimescaleDB image)"
        )
    monkeypatch.setenv("SITEWATCH_STORAGE", "timescaledb")
    assert await migrate(fresh, retention_days=30) == "timescaledb"
    assert (
        await fresh.fetchval(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings'"
        )
        == 1
    )
    jobs = {r["proc_name"] for r in await fresh.fetch("SELECT proc_name FROM timescaledb_information.jobs")}
    assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= jobs
    assert (
        await fresh.fetchval(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_name = 'readings_1m'"
        )
        == 1
    )
