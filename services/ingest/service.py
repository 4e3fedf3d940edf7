"""The ingest loop: MQTT deliveries → columns → batches → COPY (or the spool) → PUBACK.

Tasks share the work: `_consume` decodes deliveries into the open batch and hands full ones over,
`_write` commits each batch (or spools it when the database is away), `_acknowledge` PUBACKs in
order once durable, `_replay` drains the spool once the database is back.

Overload (docs/reliability.md): a batch the writers cannot take within `defer_after_ms` is deferred
to the spool and acknowledged, so the backlog waits on disk rather than in the broker's memory, and
the process (niced) leaves the CPU to alerting; the replayers catch up when the load falls. The
`sitewatch_ingest_load` state says which of normal, overloaded, catching_up, database_down holds.

Catalog changes arrive by LISTEN/NOTIFY; an unknown site or point also triggers a (rate-limited)
reload before rejecting, so a catalog loaded just before a publish is never raced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.ingest import catalog_view
from services.ingest.metrics import IngestMetrics
from services.ingest.spool import Spool
from sitewatch import priority, protocol, shards
from sitewatch.mqtt import Delivery, MqttSession
from sitewatch.settings import Settings
from sitewatch.store import db, maintenance
from sitewatch.store.migrate import storage_mode
from sitewatch.store.writer import Batch, Writer

log = logging.getLogger("sitewatch.ingest")

CATALOG_CHANNEL = "sitewatch_catalog"
UNKNOWN_SITE = "unknown_site"
INTERNAL_ERROR = "internal_error"
_RELOAD_MIN_S = 0.5
_MAINTENANCE_S = 3600.0
_OVERLOAD_HOLD_S = 5.0  # the state stays "overloaded" this long after the spool last grew
_BEHIND_S = 5.0  # storage this far behind the newest reading received is overloaded, or catching up


@dataclass(slots=True)
class _Pending:
    batch: Batch
    acks: list[tuple[int, int]]
    durable: asyncio.Event = field(default_factory=asyncio.Event)


class IngestService:
    """Ingest for every site, or (`shard`) for one shard's: its session then receives every site's
    traffic and acknowledges the other shards' without storing it (their owners store it)."""

    def __init__(
        self, settings: Settings, shard: shards.Shard | None = None, metrics: IngestMetrics | None = None
    ) -> None:
        self.settings = settings
        self.shard = shard
        self.metrics = metrics or IngestMetrics()
        suffix = f"-{shard.key}" if shard else ""
        self.spool = Spool(settings.data_dir / "spool" / f"ingest{suffix}", settings.spool_max_bytes)
        self._catalog_file = settings.data_dir / f"ingest-catalog{suffix}.json"
        self.sites = catalog_view.read(self._catalog_file)
        self.session = MqttSession.for_service(
            shard.client_id("ingest") if shard else "sitewatch-ingest",
            settings,
            [("sw/v1/+/+/telemetry", 1), ("sw/v1/+/+/positions", 1), ("sw/v1/+/+/status", 1)],
        )
        # batches ready to write (bounded: backpressure on the broker), and the same in arrival order
        self._ready: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=2 * settings.writers)
        self._order: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writers: dict[int, Writer] = {}
        self._listener: asyncpg.Connection[Any] | None = None
        self._reloaded_at = 0.0
        self._reload_wanted = False
        self._db_down = False
        self._grew_at = -_OVERLOAD_HOLD_S  # when a batch was last deferred (the writers were saturated)
        self._unacknowledged = 0  # messages received and not yet PUBACKed
        self._stored_upto_ms = 0  # the newest reading time committed

    # -- database connections ------------------------------------------------------------------
    async def _writer(self, slot: int) -> Writer:
        """The connection of one writing task: slots 0..writers-1 write batches, the last replays.

        Each slot belongs to exactly one task, so no lock is needed (asyncpg runs one operation
        at a time per connection) and the writers overlap: one COPYs while another commits.
        """
        writer = self._writers.get(slot)
        if writer is not None and not writer.conn.is_closed():
            return writer
        conn = await db.connect(self.settings.dsn)
        await priority.lower_session(conn, self.settings.nice)
        native = await storage_mode(conn) == "native"
        self._writers[slot] = writer = Writer(conn, native_partitions=native)
        return writer

    def _drop_writer(self, slot: int) -> None:
        writer = self._writers.pop(slot, None)
        if writer is not None:
            writer.conn.terminate()
        self.metrics.db_up.set(0)
        self._db_down = True

    async def _reload_catalog(self) -> None:
        """Read the catalog on the listening connection (only the consumer task calls this)."""
        if self._listener is None or self._listener.is_closed():
            self._listener = await db.connect(self.settings.dsn)
            await self._listener.add_listener(CATALOG_CHANNEL, lambda *_: self._want_reload())
            await self._listener.add_listener(shards.NOTIFY_CHANNEL, lambda *_: self._want_reload())
        self._reload_wanted = False
        self.sites = await catalog_view.load(self._listener)
        if self.shard is not None:
            self.session.ignored_sites = frozenset(c for c, v in self.sites.items() if v.shard != self.shard.index)
        self._reloaded_at = time.monotonic()
        catalog_view.save(self._catalog_file, self.sites)

    def _want_reload(self) -> None:
        self._reload_wanted = True

    async def _maybe_reload(self) -> bool:
        """Reload for an unknown site/point, at most every _RELOAD_MIN_S unless the catalog has
        announced a change since (a site loaded right after another); True if it reloaded."""
        if not self._reload_wanted and time.monotonic() - self._reloaded_at < _RELOAD_MIN_S:
            return False
        try:
            await self._reload_catalog()
        except db.UNAVAILABLE:
            if self._listener is not None:
                self._listener.terminate()
                self._listener = None
            self._reloaded_at = time.monotonic()
            return False
        return True

    # -- decoding -----------------------------------------------------------------------------
    async def _add(self, batch: Batch, d: Delivery) -> None:
        topic = protocol.parse_topic(d.topic)
        # Statuses are alerting's; ingest only keeps the unreadable ones, as it receives them live
        # (a retained one comes again at every subscription: it was judged when it was published).
        if topic is None or (topic.channel == protocol.Channel.STATUS and d.retain):
            return
        now = int(time.time() * 1000)
        bounds = {
            "min_ts_ms": now - self.settings.retention_days * 86_400_000,
            "max_ts_ms": now + self.settings.max_future_s * 1000,
        }
        site = self.sites.get(topic.site)
        if site is None and await self._maybe_reload():
            site = self.sites.get(topic.site)
        if self.shard is not None and (site.shard if site else 0) != self.shard.index:
            return  # another shard's site (an unknown one is shard 0's to dead-letter)
        if site is None:
            self._reject(
                batch,
                -1,
                d,
                topic,
                None,
                protocol.Reject(UNKNOWN_SITE, f"site {topic.site!r} is not in the catalog", None),
            )
            return
        if topic.channel == protocol.Channel.STATUS:
            status = protocol.decode_status(d.payload)
            if isinstance(status, protocol.Reject):
                self._reject(batch, -1, d, topic, None, status)
            return
        if topic.channel == protocol.Channel.TELEMETRY:
            tel = protocol.decode_telemetry(d.payload, site.points, **bounds)
            if (
                not isinstance(tel, protocol.Reject)
                and any(r.reason == protocol.UNKNOWN_POINT for r in tel.rejects)
                and await self._maybe_reload()
            ):
                site = self.sites[topic.site]
                tel = protocol.decode_telemetry(d.payload, site.points, **bounds)
            msg = self._open_message(batch, d, topic, site, tel)
            if msg is None or isinstance(tel, protocol.Reject):
                return
            batch.add_readings(msg, tel.point_id, tel.ts_ms, tel.value, tel.quality)
            self.metrics.readings_received.inc(len(tel.point_id))
        else:
            pos = protocol.decode_positions(d.payload, site.zones, **bounds)
            msg = self._open_message(batch, d, topic, site, pos)
            if msg is None or isinstance(pos, protocol.Reject):
                return
            batch.positions.extend(
                (msg, site.site_id, int(ts), tag, int(kind), zone)
                for tag, ts, kind, zone in zip(pos.tag, pos.ts_ms.tolist(), pos.kind.tolist(), pos.zone, strict=True)
            )
        self.metrics.messages.labels(topic.channel.name.lower()).inc()

    def _open_message(
        self,
        batch: Batch,
        d: Delivery,
        topic: protocol.Topic,
        site: catalog_view.SiteView,
        decoded: protocol.TelemetryColumns | protocol.PositionColumns | protocol.Reject,
    ) -> int | None:
        """Register a decoded message in the batch (its key and its rejected items); None if it
        was rejected whole."""
        if isinstance(decoded, protocol.Reject):
            self._reject(batch, -1, d, topic, None, decoded)
            return None
        valid = len(decoded.ts_ms)
        msg = batch.add_message(
            site.site_id, topic.gateway, decoded.seq, int(topic.channel), valid + len(decoded.rejects), d.received_ms
        )
        for r in decoded.rejects:
            self._reject(batch, msg, d, topic, decoded.seq, r)
        return msg

    def _reject(
        self, batch: Batch, msg: int, d: Delivery, topic: protocol.Topic, seq: int | None, r: protocol.Reject
    ) -> None:
        batch.dead.append((msg, d.received_ms, topic.site, topic.gateway, d.topic, seq, r.reason, r.detail, r.item))
        self.metrics.rejects.labels(r.reason).inc()

    async def _consume(self) -> None:
        max_readings = self.settings.batch_max_readings
        max_age = self.settings.batch_max_ms / 1000
        while True:
            first = await self.session.queue.get()
            batch, acks = Batch(), []
            deadline = time.monotonic() + max_age
            d: Delivery | None = first
            while d is not None:
                try:
                    await self._add(batch, d)
                except Exception as exc:  # a bug must not stop ingestion: keep the message as a dead letter
                    log.exception("decoding %s failed", d.topic)
                    text = d.payload.decode("utf-8", errors="replace")
                    batch.dead.append((-1, d.received_ms, None, None, d.topic, None, INTERNAL_ERROR, repr(exc), text))
                acks.append((d.mid, d.qos))
                if batch.n_readings >= max_readings:
                    break
                try:
                    d = self.session.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    # positions do not wait out the linger: the headcount the API reads from
                    # tag_locations must be fresh by the time alerting (20 ms batches) pushes its alert
                    if remaining <= 0 or batch.positions:
                        break
                    try:
                        d = await asyncio.wait_for(self.session.queue.get(), remaining)
                    except TimeoutError:
                        d = None
            if self._reload_wanted:
                await self._maybe_reload()
            pending = _Pending(batch, acks)
            self._order.put_nowait(pending)
            self._unacknowledged += len(acks)
            if not await self._hand_over(pending):
                await self._spool(pending, deferred=True)

    async def _hand_over(self, pending: _Pending) -> bool:
        """Queue a batch for the writers; False if they could not take it within `defer_after_ms`."""
        put = asyncio.ensure_future(self._ready.put(pending))
        await asyncio.wait({put}, timeout=self.settings.defer_after_ms / 1000)
        if not put.done():
            put.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await put
        return not put.cancelled()

    async def _spool(self, pending: _Pending, *, deferred: bool = False) -> None:
        """Make a batch durable in the spool: the database is away, or (`deferred`) overloaded."""
        await self.spool.append(pending.batch)
        self.metrics.spool(self.spool)
        if deferred:
            self._grew_at = time.monotonic()
            self.metrics.deferred.inc(pending.batch.n_readings)
        pending.durable.set()

    # -- writing ------------------------------------------------------------------------------
    async def _commit(self, slot: int, batch: Batch) -> bool:
        """Write one batch; False when the database is unavailable (the caller spools)."""
        try:
            writer = await self._writer(slot)
            started = time.monotonic()
            result = await writer.write(batch)
        except db.UNAVAILABLE as exc:
            log.warning("database unavailable (%s): spooling", exc)
            self._drop_writer(slot)
            return False
        self.metrics.db_up.set(1)
        self._db_down = False
        newest = batch.newest_ms
        if newest is not None:
            self._stored_upto_ms = max(self._stored_upto_ms, min(newest, int(time.time() * 1000)))
        self.metrics.observe_commit(batch, result, time.monotonic() - started, newest)
        return True

    async def _write(self, slot: int) -> None:
        while True:
            pending = await self._ready.get()
            # While the database is away, straight behind what waits for it; otherwise committed
            # now, beside the replayers (duplicates and late positions do not depend on the order).
            if pending.batch.empty:
                pending.durable.set()  # only other shards' messages: nothing to store
            elif (self._db_down and len(self.spool)) or not await self._commit(slot, pending.batch):
                await self._spool(pending)
            else:
                pending.durable.set()

    async def _acknowledge(self) -> None:
        """PUBACK batches in the order they were received (MQTT 3.1.1 §4.6), each once durable."""
        while True:
            pending = await self._order.get()
            await pending.durable.wait()
            for mid, qos in pending.acks:
                self.session.ack(mid, qos)
            self._unacknowledged -= len(pending.acks)

    async def _replay(self, slot: int) -> None:
        """Commit spooled batches, oldest first; as many replayers as writers, so catching up after
        an overload runs at the writers' full rate."""
        while True:
            oldest = await self.spool.claim()
            if oldest is None:
                await asyncio.sleep(0.2)
                continue
            path, batch = oldest
            if await self._commit(slot, batch):
                await self.spool.remove(path)
                self.metrics.spool(self.spool)
                log.debug("replayed %s (%d left)", path.name, len(self.spool))
            else:
                self.spool.release(path)
                await asyncio.sleep(1.0)

    async def _watch_load(self) -> None:
        """Publish the load state and log its changes. Storage is behind when messages wait and the
        newest reading stored is old: the backlog then waits in the broker's session (ingest runs
        niced, so under CPU pressure it is storage that falls behind) or in the spool."""
        state = "normal"
        history: deque[float] = deque(maxlen=int(_OVERLOAD_HOLD_S / 0.5))
        while True:
            behind = time.time() - self._stored_upto_ms / 1000 if self._unacknowledged and self._stored_upto_ms else 0.0
            growing = bool(history) and behind > history[0] + 0.5
            history.append(behind)
            self.metrics.behind.set(behind)
            if self._db_down and len(self.spool):
                now = "database_down"
            elif time.monotonic() - self._grew_at < _OVERLOAD_HOLD_S or (behind > _BEHIND_S and growing):
                now = "overloaded"
            elif len(self.spool) or behind > _BEHIND_S:
                now = "catching_up"
            else:
                now = "normal"
            if now != state:
                level = logging.WARNING if now in ("overloaded", "database_down") else logging.INFO
                log.log(
                    level, "load %s → %s (%d spooled batches, %d bytes)", state, now, len(self.spool), self.spool.bytes
                )
                state = now
                self.metrics.load.state(state)
            self.metrics.unacknowledged.set(self._unacknowledged)
            await asyncio.sleep(0.5)

    async def _maintain(self) -> None:
        while True:
            try:
                conn = await db.connect(self.settings.dsn)
                try:
                    native = await storage_mode(conn) == "native"
                    await maintenance.run(conn, native=native, retention_days=self.settings.retention_days)
                finally:
                    await conn.close()
            except db.UNAVAILABLE:
                await asyncio.sleep(5)
                continue
            await asyncio.sleep(_MAINTENANCE_S)

    async def run(self) -> None:
        """Run until cancelled; what is not acknowledged yet stays in the broker's session."""
        self.metrics.spool(self.spool)
        with contextlib.suppress(*db.UNAVAILABLE):
            await self._reload_catalog()
        await self.session.start()
        self.metrics.ready.set(1)
        log.info("ingest ready: %d sites, %d spooled batches", len(self.sites), len(self.spool))
        # partitions and retention are one process's job: the unsharded one's, or shard 0's
        jobs = [self._consume, self._acknowledge, self._watch_load]
        if self.shard is None or self.shard.index == 0:
            jobs.append(self._maintain)
        try:
            async with asyncio.TaskGroup() as tg:
                for job in jobs:
                    tg.create_task(job())
                for slot in range(self.settings.writers):
                    tg.create_task(self._write(slot))
                    tg.create_task(self._replay(self.settings.writers + slot))
        finally:
            await self.session.stop()
            for slot in list(self._writers):
                self._writers.pop(slot).conn.terminate()
            if self._listener is not None:
                self._listener.terminate()

    async def stop(self) -> None:
        """Nothing to hand over: the caller cancels `run`, and unacknowledged messages are the
        next owner's from the broker, spooled ones from the shard's spool."""
