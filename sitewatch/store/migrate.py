"""Versioned schema migrations, and the one place that chooses TimescaleDB or native partitions.

Files in `migrations/` are named `NNN_name.sql` (any storage mode) or `NNN_name.MODE.sql` (only for
that mode). The mode is chosen once, on the first migration, and recorded in `storage_info`; later
runs read it back so a database never mixes both layouts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import asyncpg

from sitewatch.store import partitions

log = logging.getLogger(__name__)

Mode = Literal["timescaledb", "native"]
_LOCK_KEY = 0x5157_0001


@dataclass(frozen=True, slots=True)
class MigrationFile:
    version: int
    name: str
    mode: str | None
    sql: str


def migration_files() -> list[MigrationFile]:
    files = []
    for entry in resources.files("sitewatch.store").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        stem = entry.name.removesuffix(".sql")
        number, _, rest = stem.partition("_")
        name, _, mode = rest.partition(".")
        files.append(MigrationFile(int(number), name, mode or None, entry.read_text("utf-8")))
    return sorted(files, key=lambda f: (f.version, f.mode or ""))


async def _choose_mode(conn: asyncpg.Connection[Any]) -> Mode:
    wanted = os.environ.get("SITEWATCH_STORAGE", "auto")
    if wanted == "native":
        return "native"
    available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
    if available:
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return "timescaledb"
        except asyncpg.PostgresError as exc:  # e.g. not in shared_preload_libraries
            if wanted == "timescaledb":
                raise
            log.warning("timescaledb is installed but cannot be loaded (%s); using native partitions", exc)
    elif wanted == "timescaledb":
        raise RuntimeError("SITEWATCH_STORAGE=timescaledb but the extension is not installed")
    return "native"


async def storage_mode(conn: asyncpg.Connection[Any]) -> Mode:
    """The mode recorded by the first migration."""
    value = await conn.fetchval("SELECT value FROM storage_info WHERE key = 'mode'")
    return "timescaledb" if value == "timescaledb" else "native"


async def migrate(conn: asyncpg.Connection[Any], *, retention_days: int = 90) -> Mode:
    """Apply every pending migration; safe to run concurrently and repeatedly."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        has_info = await conn.fetchval("SELECT to_regclass('storage_info') IS NOT NULL")
        recorded = await conn.fetchval("SELECT value FROM storage_info WHERE key = 'mode'") if has_info else None
        mode: Mode = recorded if recorded in ("timescaledb", "native") else await _choose_mode(conn)
        for f in migration_files():
            if f.version in applied or (f.mode is not None and f.mode != mode):
                continue
            log.info("applying migration %03d_%s (%s)", f.version, f.name, mode)
            async with conn.transaction():
                await conn.execute(f.sql.replace("{retention_days}", str(int(retention_days))))
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", f.version, f.name)
                await conn.execute(
                    "INSERT INTO storage_info (key, value) VALUES ('mode', $1), ('retention_days', $2)"
                    " ON CONFLICT (key) DO NOTHING",
                    mode,
                    str(retention_days),
                )
        if mode == "native":
            await partitions.maintain(conn, retention_days=retention_days)
        return mode
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
