"""Site sharding: N ingest and N alerting workers, each shard of sites owned by exactly one of them.

The site is the natural key (every rule's state belongs to one site), so a shard is a set of
sites. `assign` gives every site a shard, balancing by points; a new site goes to the lightest
shard and a site never moves while the number of shards stays the same (its evaluator state
lives with its owner). A changed number of shards re-deals every site.

A shard is run by whichever worker holds its lease (`shard_leases`, renewed every
`LEASE_RENEW_S`, valid `LEASE_TTL_S`). Worker i takes shard i as soon as it is free; a lease that
stays expired `TAKEOVER_GRACE_S` more, while worker i is not alive, is taken by any live worker,
which then runs that shard too:
its own MQTT session (client id per shard, persistent, so what was published meanwhile waits in
the broker), its state rebuilt from the database. When worker i is back, the other hands shard i
back. Each shard's session receives every site's traffic and keeps only its own sites', so a
site added a moment ago is never missed: its first message makes the owner reload the catalog
and the assignment written with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from sitewatch.settings import Settings
from sitewatch.store import db

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "sitewatch_shards"
SHARDS_KEY = "shards"
LEASE_TTL_S = 4.0
LEASE_RENEW_S = 1.0
TAKEOVER_GRACE_S = 1.5
STARTUP_GRACE_S = 5.0  # a worker just started leaves the others this long to start theirs
_ASSIGN_LOCK = 0x5157_0009


@dataclass(frozen=True, slots=True)
class Shard:
    """One shard as a service instance runs it."""

    index: int
    count: int

    def client_id(self, service: str) -> str:
        return f"sitewatch-{service}-s{self.index}"

    @property
    def key(self) -> str:
        """A suffix for per-shard keys (checkpoints, spool directories)."""
        return f"s{self.index}"


async def assign(conn: db.Conn, shards: int) -> dict[int, int]:
    """Give every site a shard (site id → shard); new sites go to the lightest shard by points.
    Records `shards` so a catalog load assigns new sites the same way, and announces changes."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ASSIGN_LOCK)
        previous = await conn.fetchval("SELECT value FROM storage_info WHERE key = $1", SHARDS_KEY)
        if previous is not None and int(previous) != shards:
            await conn.execute("DELETE FROM site_shards")  # a new number of shards: deal again
        await conn.execute(
            "INSERT INTO storage_info (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
            SHARDS_KEY,
            str(shards),
        )
        changed = await _assign_new(conn, shards)
        if changed:
            await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        rows = await conn.fetch("SELECT site_id, shard FROM site_shards")
    return {r["site_id"]: r["shard"] for r in rows}


async def assign_new_sites(conn: db.Conn) -> None:
    """Inside a catalog load's transaction: shard the sites it added, when workers are sharded."""
    shards = await conn.fetchval("SELECT value FROM storage_info WHERE key = $1", SHARDS_KEY)
    if shards is not None and int(shards) > 1:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ASSIGN_LOCK)
        if await _assign_new(conn, int(shards)):
            await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def _assign_new(conn: db.Conn, shards: int) -> int:
    weights = await conn.fetch(
        "SELECT s.id, ss.shard, (SELECT count(*) FROM points p WHERE p.site_id = s.id) + 1 AS weight"
        " FROM sites s LEFT JOIN site_shards ss ON ss.site_id = s.id ORDER BY weight DESC, s.id"
    )
    load = [0] * shards
    for r in weights:
        if r["shard"] is not None:
            load[r["shard"]] += r["weight"]
    new = []
    for r in weights:
        if r["shard"] is None:
            lightest = min(range(shards), key=load.__getitem__)
            load[lightest] += r["weight"]
            new.append((r["id"], lightest))
    if new:
        await conn.executemany("INSERT INTO site_shards (site_id, shard) VALUES ($1, $2)", new)
    return len(new)


async def sites_of(conn: db.Conn, shard: int) -> set[str]:
    rows = await conn.fetch(
        "SELECT s.code FROM site_shards ss JOIN sites s ON s.id = ss.site_id WHERE ss.shard = $1", shard
    )
    return {r["code"] for r in rows}


def _presence(worker: int) -> int:
    """The pseudo-shard whose lease says worker `worker` is alive (negative: never a real shard)."""
    return -1 - worker


class ShardService(Protocol):
    """What a worker runs per shard: a service instance that stops cleanly (its state stored)."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


async def run_service(service: str, settings: Settings, factory: Callable[[Shard | None], ShardService]) -> None:
    """A service process: one instance for every site, or worker `settings.worker` of `settings.shards`."""
    if settings.shards <= 1:
        await factory(None).run()
        return
    await Worker(service, settings.dsn, settings.worker, settings.shards, factory).run()


class Worker:
    """Runs the shards whose leases it holds: its own, and any whose worker is gone."""

    def __init__(
        self,
        service: str,
        dsn: str,
        index: int,
        count: int,
        factory: Callable[[Shard], ShardService],
    ) -> None:
        self.service, self.dsn, self.index, self.count = service, dsn, index, count
        self.factory = factory
        self.owner = f"{service}-{index}@{socket.gethostname()}:{os.getpid()}"
        self.running: dict[int, tuple[ShardService, asyncio.Task[None]]] = {}
        self.stopping: dict[int, asyncio.Task[None]] = {}
        self.started = time.monotonic()

    async def run(self) -> None:
        conn: asyncpg.Connection[Any] | None = None
        try:
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn = await db.connect(self.dsn)
                        await assign(conn, self.count)
                    await self._round(conn)
                except db.UNAVAILABLE as exc:
                    log.warning("shard leases unavailable (%s); running shards keep going", exc)
                    conn = None
                for shard, (_, task) in list(self.running.items()):
                    if task.done():  # a shard's service failed: let the lease go so another retries
                        del self.running[shard]
                        log.error("shard %d stopped: %r", shard, task.exception() if not task.cancelled() else None)
                        if conn is not None:
                            await self._release(conn, shard)
                await asyncio.sleep(LEASE_RENEW_S)
        finally:
            for shard in list(self.running):
                self._begin_stop(shard)
            await asyncio.gather(*self.stopping.values(), return_exceptions=True)
            if conn is not None:
                with contextlib.suppress(*db.FAILED):
                    await conn.execute(
                        "DELETE FROM shard_leases WHERE service = $1 AND owner = $2", self.service, self.owner
                    )
                await conn.close()

    async def _round(self, conn: asyncpg.Connection[Any]) -> None:
        """Renew what it holds, take its own shard when free, take over abandoned ones, hand back
        shards whose worker is alive again. Stopping a shard runs beside the rounds (its lease
        renewed until its session is closed): a slow stop must not let the other leases lapse."""
        rows = await conn.fetch(
            "SELECT shard, owner, extract(epoch FROM now() - expires_at) AS expired_s FROM shard_leases"
            " WHERE service = $1",
            self.service,
        )
        leases = {r["shard"]: (r["owner"], float(r["expired_s"])) for r in rows}
        await self._lease(conn, _presence(self.index))  # "worker i is alive", whatever it runs
        settled = time.monotonic() - self.started > STARTUP_GRACE_S
        for shard in range(self.count):
            stopping = self.stopping.get(shard)
            if stopping is not None:
                if stopping.done():
                    del self.stopping[shard]
                    await self._release(conn, shard)
                else:
                    await self._lease(conn, shard)
                continue
            owner, expired_s = leases.get(shard, (None, float("inf")))
            mine, home = owner == self.owner, shard == self.index
            home_alive = not home and self._home_alive(leases, shard)
            if mine and home_alive:
                self._begin_stop(shard)  # its worker is back: hand it over
                await self._lease(conn, shard)
                continue
            # another's shard only once it has been free a while, its worker is not alive, and
            # this worker has been up long enough for the others to have started too
            takeover = expired_s > TAKEOVER_GRACE_S and not home_alive and (settled or owner is not None)
            wanted = mine or (home and expired_s > 0) or takeover
            if wanted and await self._lease(conn, shard):
                if shard not in self.running:
                    self._start(shard, took_over=not home)
            elif shard in self.running:
                self._begin_stop(shard)  # lost the lease (this worker was stalled): another runs it

    def _home_alive(self, leases: dict[int, tuple[str | None, float]], shard: int) -> bool:
        """Whether the worker whose home is `shard` is alive (its presence lease is live)."""
        owner, expired_s = leases.get(_presence(shard), (None, float("inf")))
        return owner is not None and owner != self.owner and expired_s < 0

    async def _lease(self, conn: asyncpg.Connection[Any], shard: int) -> bool:
        owner = await conn.fetchval(
            "INSERT INTO shard_leases (service, shard, owner, expires_at)"
            " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
            " ON CONFLICT (service, shard) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at"
            " WHERE shard_leases.owner = EXCLUDED.owner OR shard_leases.expires_at < now()"
            " RETURNING owner",
            self.service,
            shard,
            self.owner,
            LEASE_TTL_S,
        )
        return bool(owner == self.owner)

    async def _release(self, conn: asyncpg.Connection[Any], shard: int) -> None:
        await conn.execute(
            "DELETE FROM shard_leases WHERE service = $1 AND shard = $2 AND owner = $3", self.service, shard, self.owner
        )

    def _start(self, shard: int, *, took_over: bool) -> None:
        instance = self.factory(Shard(shard, self.count))
        self.running[shard] = (instance, asyncio.create_task(instance.run()))
        if took_over:
            log.warning("took over shard %d of %s (its worker is gone)", shard, self.service)
        else:
            log.info("running shard %d", shard)

    def _begin_stop(self, shard: int) -> None:
        entry = self.running.pop(shard, None)
        if entry is not None:
            self.stopping[shard] = asyncio.create_task(self._stopped(shard, *entry))

    async def _stopped(self, shard: int, instance: ShardService, task: asyncio.Task[None]) -> None:
        await instance.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        log.info("stopped shard %d", shard)
