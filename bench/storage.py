"""Bytes on disk per reading and insert throughput, with the real schema and writer, for sizing.

    .venv/bin/python bench/storage.py [--sites 30] [--points 200] [--period-s 10] [--readings 2000000]

It starts a throwaway PostgreSQL (the newest under /usr/lib/postgresql, configured as `sitewatch
stack up` configures its own), applies the project's migrations (`sitewatch.store.migrate`, native
daily partitions: TimescaleDB is not installed here), and stores a simulated stream: every point
of every site reports every `period-s` seconds, one MQTT message per site and tick, gathered into
batches of 20,000 readings as ingest gathers them, written by `sitewatch.store.writer.Writer`
(message keys, then binary COPY) on two connections as ingest's two writers do. Then it measures:

  on disk   the readings partitions (heap, free-space and visibility maps, indexes) and the
            ingest_messages keys, after VACUUM, per reading; beside the raw width of a reading's
            four columns, 4 + 8 + 8 + 2 = 22 bytes (the baseline)
  WAL       bytes of write-ahead log per reading (what a replica or an archive receives)
  rate      readings/s through the writer, beside a naive writer in the same run: executemany of
            one INSERT per reading, a transaction per message

and prints a sizing table from the measured bytes/reading (docs/operations.md, "Sizing").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from sitewatch.stack import free_port
from sitewatch.store import migrate, partitions
from sitewatch.store.writer import Batch, Writer

RAW_BYTES = 4 + 8 + 8 + 2  # point_id int4, ts timestamptz, value float8, quality int2
BATCH_READINGS = 20_000  # ingest's SITEWATCH_BATCH_MAX_READINGS
WRITERS = 2  # ingest's SITEWATCH_WRITERS
T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: the whole run falls in one daily partition
# TimescaleDB's documented typical reduction of a chunk by compression, "more than 90 %":
# https://www.tigerdata.com/docs/use-timescale/latest/compression/about-compression (an estimate:
# the extension is not installed here, so it is not measured).
COMPRESSED_FRACTION = 0.10
# The deployments docs/operations.md sizes: (name, sites, points per site, period in seconds).
DEPLOYMENTS = (
    ("county", 30, 200, 10),
    ("province", 500, 200, 10),
    ("large province", 3000, 200, 10),
)


# -- a throwaway PostgreSQL -----------------------------------------------------------------------
def _pg_tool(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3]))
    path = str(found[-1]) if found else shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} not found: install PostgreSQL (make demo does)")
    return path


def _run_pg(*args: str) -> None:
    """PostgreSQL refuses to run as root: under root its tools run as `postgres`."""
    user = "postgres" if os.geteuid() == 0 else None
    subprocess.run(list(args), user=user, check=True, capture_output=True)


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, str]]:
    """A private cluster on a free loopback port; yields (dsn, server version), removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="sitewatch-storage-"))
    root.chmod(0o711)
    data = root / "pg"
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres")
        os.chown(data, uid.pw_uid, uid.pw_gid)
    port = free_port()
    started = False
    try:
        _run_pg(_pg_tool("initdb"), "-D", str(data), "-U", "sitewatch", "-E", "UTF8", "--no-locale", "--auth=trust")
        with open(data / "postgresql.conf", "a") as conf:  # as sitewatch.stack configures its cluster
            conf.write(
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                "shared_buffers = '512MB'\nmax_wal_size = '4GB'\nwal_buffers = '64MB'\n"
                "checkpoint_timeout = '15min'\nlogging_collector = off\n"
            )
        _run_pg(_pg_tool("pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "-o", f"-p {port}", "start")
        started = True
        version = subprocess.run(
            [_pg_tool("postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        yield f"postgresql://sitewatch@127.0.0.1:{port}/postgres", version
    finally:
        if started:
            _run_pg(_pg_tool("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


# -- the simulated stream -------------------------------------------------------------------------
def batches(sites: int, points: int, period_s: int, total: int) -> list[Batch]:
    """Every point of every site every `period_s`, one message per site and tick (seq counts ticks),
    values a slow random walk around each point's level with 1 % uncertain quality."""
    rng = np.random.default_rng(7)
    n_points = sites * points
    level = rng.uniform(0, 100, n_points)
    out: list[Batch] = []
    batch = Batch()
    done, tick = 0, 0
    while done < total:
        level += rng.normal(0, 0.05, n_points)
        values = np.round(level, 2)
        quality = (rng.random(n_points) < 0.01).astype(np.int16)
        ts = T0_MS + tick * period_s * 1000
        for s in range(sites):
            n = min(points, total - done)
            if n <= 0:
                break
            lo = s * points
            msg = batch.add_message(s + 1, "GW-1", tick + 1, 0, n, ts)
            batch.add_readings(
                msg,
                np.arange(lo + 1, lo + n + 1, dtype=np.int32),
                np.full(n, ts, dtype=np.int64),
                values[lo : lo + n],
                quality[lo : lo + n],
            )
            done += n
            if batch.n_readings >= BATCH_READINGS:
                out.append(batch)
                batch = Batch()
        tick += 1
    if not batch.empty:
        out.append(batch)
    return out


# -- measurements ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Disk:
    heap: int  # main fork plus free-space and visibility maps
    indexes: int
    messages: int  # ingest_messages, heap and primary key

    @property
    def total(self) -> int:
        return self.heap + self.indexes + self.messages


async def disk(conn: asyncpg.Connection[Any]) -> Disk:
    row = await conn.fetchrow(
        "SELECT sum(pg_table_size(relid))::bigint AS heap, sum(pg_indexes_size(relid))::bigint AS indexes"
        " FROM pg_partition_tree('readings') WHERE isleaf"
    )
    assert row is not None  # an aggregate always gives a row
    messages = await conn.fetchval("SELECT pg_total_relation_size('ingest_messages')")
    return Disk(int(row["heap"]), int(row["indexes"]), int(messages))


async def write_all(dsn: str, work: list[Batch]) -> float:
    """Seconds to store `work` on WRITERS connections, batches dealt round-robin as ingest's writers
    take them (each commits while the other copies)."""
    conns = [await asyncpg.connect(dsn) for _ in range(WRITERS)]
    try:
        writers = [Writer(c, native_partitions=True) for c in conns]

        async def run(w: Writer, mine: list[Batch]) -> None:
            for b in mine:
                await w.write(b)

        started = time.perf_counter()
        await asyncio.gather(*(run(w, work[i::WRITERS]) for i, w in enumerate(writers)))
        return time.perf_counter() - started
    finally:
        for c in conns:
            await c.close()


async def naive(dsn: str, work: list[Batch], readings: int) -> tuple[int, float]:
    """One INSERT per reading (executemany), one transaction per message, on one connection, into
    the next day's partition: (readings written, seconds)."""
    conn = await asyncpg.connect(dsn)
    try:
        await partitions.ensure(conn, {T0_MS // partitions.DAY_MS + 1})
        done, started = 0, time.perf_counter()
        for b in work:
            msg, point, ts, value, quality = b.columns()
            for m in range(len(b.msg_seq)):
                rows = np.flatnonzero(msg == m)
                records = [
                    (int(point[i]), _ts(int(ts[i]) + partitions.DAY_MS), float(value[i]), int(quality[i])) for i in rows
                ]
                async with conn.transaction():
                    await conn.executemany("INSERT INTO readings VALUES ($1, $2, $3, $4)", records)
                done += len(records)
                if done >= readings:
                    return done, time.perf_counter() - started
        return done, time.perf_counter() - started
    finally:
        await conn.close()


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"


def sizing(bytes_per_reading: float, retention_days: int) -> list[str]:
    lines = [
        f"{'deployment':<16}{'sites×points/period':>22}{'readings/s':>12}{'raw/day':>11}"
        f"{'compressed/day*':>17}{f'{retention_days} d on disk*':>15}",
    ]
    for name, sites, points, period in DEPLOYMENTS:
        rate = sites * points / period
        day = rate * 86_400 * bytes_per_reading
        # the compression policy compresses chunks older than 2 days (002_readings.timescaledb.sql)
        kept = 2 * day + (retention_days - 2) * day * COMPRESSED_FRACTION
        lines.append(
            f"{name:<16}{f'{sites}×{points}/{period} s':>22}{rate:>12,.0f}{_gb(day):>11}"
            f"{_gb(day * COMPRESSED_FRACTION):>17}{_gb(kept):>15}"
        )
    lines.append(f"* estimated: TimescaleDB's documented > 90 % compression (factor {COMPRESSED_FRACTION})")
    return lines


async def main(args: argparse.Namespace) -> None:
    work = batches(args.sites, args.points, args.period_s, args.readings)
    readings = sum(b.n_readings for b in work)
    messages = sum(len(b.msg_seq) for b in work)
    with postgres() as (admin_dsn, version):
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute("CREATE DATABASE sitewatch")
        await admin.close()
        dsn = admin_dsn.rsplit("/", 1)[0] + "/sitewatch"
        conn = await asyncpg.connect(dsn)
        try:
            mode = await migrate.migrate(conn, retention_days=args.retention_days)
            wal0 = await conn.fetchval("SELECT pg_current_wal_lsn()")
            seconds = await write_all(dsn, work)
            wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal0)
            stored = await conn.fetchval("SELECT count(*) FROM readings")
            assert stored == readings, f"stored {stored}, wrote {readings}"
            await conn.execute("VACUUM (ANALYZE) readings, ingest_messages")
            size = await disk(conn)
            n_naive, naive_s = await naive(dsn, work, args.naive_readings)
        finally:
            await conn.close()
    per = size.total / readings
    rate, naive_rate = readings / seconds, n_naive / naive_s
    print(f"machine    {os.cpu_count()} cores, Python {platform.python_version()}, {version}, storage {mode}")
    print(
        f"stream     {args.sites} sites × {args.points} points every {args.period_s} s:"
        f" {readings:,} readings in {messages:,} messages, {len(work)} batches"
    )
    print(f"on disk    readings heap {size.heap / readings:.1f} B + indexes {size.indexes / readings:.1f} B")
    print(f"           + message keys {size.messages / readings:.1f} B = {per:.1f} B/reading ({_gb(size.total)})")
    print(f"baseline   raw columns {RAW_BYTES} B/reading: on disk / raw = {per / RAW_BYTES:.2f} ×")
    print(f"WAL        {float(wal) / readings:.1f} B/reading")
    print(f"rate       Writer (COPY, {WRITERS} connections) {rate:,.0f} readings/s")
    print(f"baseline   one INSERT per reading (executemany, {n_naive:,} readings) {naive_rate:,.0f} readings/s:")
    print(f"           COPY / naive = {rate / naive_rate:.1f} ×")
    print()
    print("\n".join(sizing(per, args.retention_days)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=30)
    parser.add_argument("--points", type=int, default=200, help="points per site")
    parser.add_argument("--period-s", type=int, default=10, help="seconds between a point's readings")
    parser.add_argument("--readings", type=int, default=2_000_000)
    parser.add_argument("--naive-readings", type=int, default=20_000)
    parser.add_argument("--retention-days", type=int, default=90)
    asyncio.run(main(parser.parse_args()))
