"""The alerting loop: deliveries → decoded batches → rule families → alert changes → MQTT + store.

Alerts are published on `sw/v1/{site}/alerts` as soon as they change and written to PostgreSQL
behind, with retries, so they keep firing while the database is slow or down. Timers run every
200 ms on the wall clock. On start the service rebuilds its state: open alerts (so nothing is
raised twice), threshold levels from them, zone occupancy and slope windows from what ingest
stored up to the last checkpoint; what arrived after that comes from the persistent session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import asyncpg
import numpy as np

from services.alerting.metrics import AlertingMetrics
from sitewatch import protocol, shards
from sitewatch.alerts import Alert, AlertTracker, Change
from sitewatch.mqtt import Delivery, MqttSession
from sitewatch.rules.base import PositionEvent, RuleCatalog, Signal
from sitewatch.rules.engine import Evaluator, default_families
from sitewatch.rules.threshold import Threshold
from sitewatch.settings import Settings
from sitewatch.store import alerts as alert_store
from sitewatch.store import db, rule_catalog
from sitewatch.store.catalog import NOTIFY_CHANNEL

log = logging.getLogger("sitewatch.alerting")

TICK_S = 0.2
BATCH_MAX_S = 0.02
BATCH_MAX_READINGS = 50_000
CHECKPOINT_KEY = "alerting_checkpoint_ms"
REPLAY_HOURS = 24
CATALOG_RELOAD_MIN_S = 0.5
DEADLINES_S = 1.0  # how often the same-day clock looks for alerts coming due
STORE_TIMEOUT_S = 10.0


def now_ms() -> int:
    return int(time.time() * 1000)


class AlertingService:
    """The evaluator for every site, or (`shard`) for one shard's: its session then receives every
    site's traffic and evaluates only its own sites'."""

    def __init__(
        self, settings: Settings, shard: shards.Shard | None = None, metrics: AlertingMetrics | None = None
    ) -> None:
        self.settings = settings
        self.shard = shard
        self.metrics = metrics or AlertingMetrics()
        self.evaluator = Evaluator(default_families(), late_window_ms=settings.late_window_s * 1000)
        self.tracker = AlertTracker({})
        self.session = MqttSession.for_service(
            shard.client_id("alerting") if shard else "sitewatch-alerting",
            settings,
            [("sw/v1/+/+/telemetry", 1), ("sw/v1/+/+/positions", 1), ("sw/v1/+/+/status", 1)],
        )
        self._checkpoint_key = f"{CHECKPOINT_KEY}:{shard.key}" if shard else CHECKPOINT_KEY
        self._unacked: list[Delivery] = []  # evaluated; acknowledged once their alert changes are stored
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._points: dict[int, dict[str, int]] = {}
        self._zones: dict[int, set[str]] = {}
        self._unstored: list[Change] = []
        self._checkpoint = 0
        # one connection reads the catalog and listens for its changes (the consumer's), one writes
        # alert changes (the store task's): asyncpg runs one operation at a time per connection
        self._catalog_conn: asyncpg.Connection[Any] | None = None
        self._store_conn: asyncpg.Connection[Any] | None = None
        self._reloaded_at = 0.0
        self._deadlines_at = 0.0
        self._reload = asyncio.Event()

    # -- catalog and state ----------------------------------------------------------------------
    def _apply_catalog(self, catalog: RuleCatalog) -> None:
        self.evaluator.load(catalog)
        self.tracker.sites = {s.id: (s.code, s.timezone) for s in catalog.sites.values()}
        self._points = {}
        for p in catalog.points.values():
            self._points.setdefault(p.site_id, {})[p.code] = p.id
        self._zones = {}
        for site_id, code in catalog.zones:
            self._zones.setdefault(site_id, set()).add(code)

    async def _catalog_connection(self) -> asyncpg.Connection[Any]:
        if self._catalog_conn is None or self._catalog_conn.is_closed():
            self._catalog_conn = await db.connect(self.settings.dsn)
            await self._catalog_conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._reload.set())
            await self._catalog_conn.add_listener(shards.NOTIFY_CHANNEL, lambda *_: self._reload.set())
            await self._catalog_conn.add_listener(alert_store.HUMAN_CHANNEL, self._human_step)
        return self._catalog_conn

    def _human_step(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        """An operator acknowledged, handled or closed an alert: keep the open alert in step, and
        once it is closed forget it (the next signal raises a new one) and reset a latched point."""
        step = json.loads(str(payload))
        key = (step["site_id"], step["source_type"], step["source_code"], step["rule"])
        alert = self.tracker.open.get(key)
        if alert is None or alert.id != step["id"]:
            return
        if step["state"] != "closed":
            alert.state = step["state"]
            alert.acknowledged_at, alert.handled_at = step["acknowledged_at"], step["handled_at"]
            alert.shelved_until = step["shelved_until"]
            return
        self.tracker.forget(key)
        point = self.evaluator.catalog.point_ids.get((step["site_id"], step["source_code"]))
        if step["rule"] == "threshold" and point is not None:
            for family in self.evaluator.families:
                if isinstance(family, Threshold):
                    family.reset(point)

    async def _load_catalog(self, conn: asyncpg.Connection[Any]) -> RuleCatalog:
        """The catalog of the sites this instance evaluates."""
        catalog = await rule_catalog.load(conn)
        if self.shard is None:
            return catalog
        mine = await shards.sites_of(conn, self.shard.index)
        self.session.ignored_sites = frozenset(set(catalog.site_ids) - mine)  # known, other shards
        return catalog.only(mine)

    async def _rebuild(self) -> None:
        """Catalog, open alerts and the state behind them, before the first delivery."""
        conn = await self._catalog_connection()
        catalog = await self._load_catalog(conn)
        self._reloaded_at = time.monotonic()
        self._apply_catalog(catalog)
        checkpoint = await conn.fetchval(
            "SELECT value FROM storage_info WHERE key = $1", self._checkpoint_key
        ) or await conn.fetchval("SELECT value FROM storage_info WHERE key = $1", CHECKPOINT_KEY)
        self._checkpoint = int(checkpoint) if checkpoint else now_ms()
        since = self._checkpoint - REPLAY_HOURS * 3_600_000
        rows = await conn.fetch(
            "SELECT site_id, tag, (extract(epoch FROM ts) * 1000)::bigint AS ts, kind, zone FROM positions"
            " WHERE ts > to_timestamp($1 / 1000.0) AND ts <= to_timestamp($2 / 1000.0) ORDER BY ts",
            since,
            self._checkpoint,
        )
        rows = [r for r in rows if r["site_id"] in catalog.sites]
        if rows:
            self._replay_positions(rows)
        await self._replay_windows(conn, catalog)
        open_alerts = [a for a in await alert_store.open_alerts(conn) if a.site_id in catalog.sites]
        self.tracker.load(open_alerts)
        for family in self.evaluator.families:
            if isinstance(family, Threshold):
                for a in open_alerts:
                    point = catalog.point_ids.get((a.site_id, a.source_code))
                    if a.rule == "threshold" and not a.cleared and point is not None:
                        family.restore(point, a.severity, a.kind == "low")
        log.info(
            "rebuilt: %d sites, %d points, %d open alerts, %d position events replayed",
            len(catalog.sites),
            len(catalog.points),
            len(open_alerts),
            len(rows),
        )

    async def _replay_windows(self, conn: asyncpg.Connection[Any], catalog: RuleCatalog) -> None:
        """Refill the slope windows (and the rain state beside them) from stored readings."""
        windows = {p.id: float(spec.get("window_h", 24)) for p, spec in catalog.with_rule("slope_trend")}
        windows.update({p.id: 1.0 for p in catalog.points.values() if p.kind == "rainfall"})
        if not windows:
            return
        hours = max(windows.values())
        rows = await conn.fetch(
            "SELECT point_id, (extract(epoch FROM ts) * 1000)::bigint AS ts, value, quality FROM readings"
            " WHERE point_id = ANY($1) AND ts > to_timestamp($2 / 1000.0) AND ts <= to_timestamp($3 / 1000.0)",
            list(windows),
            self._checkpoint - int(hours * 3_600_000),
            self._checkpoint,
        )
        if rows:
            self.evaluator.replay(
                np.array([r["point_id"] for r in rows], dtype=np.int32),
                np.array([r["ts"] for r in rows], dtype=np.int64),
                np.array([r["value"] for r in rows], dtype=np.float64),
                np.array([r["quality"] for r in rows], dtype=np.int16),
            )

    def _replay_positions(self, rows: list[asyncpg.Record]) -> None:
        events = [PositionEvent(r["site_id"], r["tag"], r["ts"], r["kind"], r["zone"]) for r in rows]
        self.evaluator.position_events(events)  # signals discarded: these were evaluated before

    # -- evaluation -----------------------------------------------------------------------------
    def _emit(self, signals: list[Signal]) -> None:
        for signal in signals:
            change = self.tracker.apply(signal)
            if change is None:
                continue
            alert = change.alert
            body = json.dumps(change.body, ensure_ascii=False).encode()
            self.session.publish(f"sw/v1/{alert.site}/alerts", body, qos=1)
            self._unstored.append(change)
            self.metrics.changes.labels(change.action, alert.rule).inc()
        self.metrics.unstored.set(len(self._unstored))

    def _evaluate(self, deliveries: list[Delivery]) -> None:
        started = time.perf_counter()
        now = now_ms()
        bounds = {
            "min_ts_ms": now - self.settings.retention_days * 86_400_000,
            "max_ts_ms": now + self.settings.max_future_s * 1000,
        }
        readings: list[tuple[int, str, protocol.TelemetryColumns]] = []
        positions: list[tuple[int, protocol.PositionColumns]] = []
        signals: list[Signal] = []
        done = (0, 0)  # readings and positions evaluated so far

        def catch_up() -> None:
            """Evaluate what came before a status message first: a gateway's last will must see
            the readings it sent before dying (delivery order, not channel order)."""
            nonlocal done
            signals.extend(self.evaluator.readings(readings[done[0] :], now))
            signals.extend(self.evaluator.positions(positions[done[1] :], now))
            done = (len(readings), len(positions))

        for d in deliveries:
            topic = protocol.parse_topic(d.topic)
            site_id = self.evaluator.catalog.site_ids.get(topic.site) if topic else None
            if topic is None or site_id is None:
                continue
            if topic.channel == protocol.Channel.TELEMETRY:
                tel = protocol.decode_telemetry(d.payload, self._points.get(site_id, {}), **bounds)
                if not isinstance(tel, protocol.Reject):
                    readings.append((site_id, topic.gateway, tel))
            elif topic.channel == protocol.Channel.POSITIONS:
                pos = protocol.decode_positions(d.payload, self._zones.get(site_id, set()), **bounds)
                if not isinstance(pos, protocol.Reject):
                    positions.append((site_id, pos))
            else:
                state = protocol.decode_status(d.payload)
                if not isinstance(state, protocol.Reject):
                    catch_up()
                    signals += self.evaluator.status(site_id, topic.gateway, state == "online", d.received_ms)
        catch_up()
        signals.sort(key=lambda s: s.ts_ms)
        self._emit(signals)
        n_readings = sum(len(c.point_id) for _, _, c in readings)
        self.metrics.readings.inc(n_readings)
        self.metrics.positions.inc(sum(len(c.tag) for _, c in positions))
        self.metrics.late.set(self.evaluator.late_skipped)
        self.metrics.evaluate_seconds.observe(time.perf_counter() - started)
        delay = now / 1000 - min(d.received_ms for d in deliveries) / 1000
        self.metrics.lag.observe(delay)
        self.metrics.delay.set(delay)
        self.metrics.queued.set(self.session.queue.qsize())
        stamps = [c.ts_ms for _, _, c in readings] + [c.ts_ms for _, c in positions]
        newest = max((int(ts.max()) for ts in stamps if len(ts)), default=0)
        if newest:
            self.metrics.event_lag.set(max(0.0, (now - newest) / 1000))
        self._checkpoint = max(self._checkpoint, min(newest, now))

    async def _consume(self) -> None:
        queue = self.session.queue
        while True:
            deliveries = [await queue.get()]
            deadline = time.monotonic() + BATCH_MAX_S
            while len(deliveries) < BATCH_MAX_READINGS // 100:
                try:
                    deliveries.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        deliveries.append(await asyncio.wait_for(queue.get(), remaining))
            stale = time.monotonic() - self._reloaded_at > CATALOG_RELOAD_MIN_S and self._unknown_site(deliveries)
            if self._reload.is_set() or stale:
                await self._reload_catalog()
            try:
                self._evaluate(deliveries)
            except Exception:  # a bug in one batch must not stop every alert; ingest has stored it
                log.exception("evaluating %d deliveries failed; they are acknowledged and skipped", len(deliveries))
            self._unacked.extend(deliveries)

    async def _reload_catalog(self) -> None:
        self._reload.clear()
        try:
            self._apply_catalog(await self._load_catalog(await self._catalog_connection()))
            self._reloaded_at = time.monotonic()
        except db.UNAVAILABLE as exc:
            log.warning("catalog reload failed (%s); keeping the one loaded", exc)
            self._catalog_conn = None
            self._reload.set()

    def _unknown_site(self, deliveries: list[Delivery]) -> bool:
        """A delivery names a site the loaded catalog lacks (a catalog loaded a moment ago)."""
        for d in deliveries:
            topic = protocol.parse_topic(d.topic)
            if (
                topic is not None
                and topic.site not in self.evaluator.catalog.site_ids
                and topic.site not in self.session.ignored_sites
            ):
                return True
        return False

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._emit(self.evaluator.tick(now_ms()))
            if self.session.queue.empty():  # idle: nothing waits, whatever the last batch's delay was
                self.metrics.delay.set(0)
                self.metrics.event_lag.set(0)
                self.metrics.queued.set(0)

    async def _store(self) -> None:
        """Write alert changes behind the publishes; keep them while the database is away.

        The deliveries behind them are acknowledged once they are stored (or the database is away:
        then alerting goes on from memory), so a worker killed before storing leaves them to the
        next owner, which evaluates them again and raises the same alerts (`alert_id`)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK_S)
            await self._store_once()
            self.metrics.unstored.set(len(self._unstored))
            by_severity, overdue = [0, 0, 0, 0], [0, 0, 0, 0]
            for alert in self.tracker.open.values():
                if not alert.cleared:
                    by_severity[alert.severity - 1] += 1
                if alert.overdue:
                    overdue[alert.severity - 1] += 1
            for severity in range(1, 5):
                self.metrics.open_alerts.labels(str(severity)).set(by_severity[severity - 1])
                self.metrics.overdue.labels(str(severity)).set(overdue[severity - 1])

    async def _store_once(self) -> None:
        changes, self._unstored = self._unstored, []
        evaluated, self._unacked = self._unacked, []
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):  # a hung database must not hold the acks forever
                await self._write(changes, evaluated)
        except db.UNAVAILABLE as exc:
            log.warning("database unavailable (%s): %d alert changes wait", exc, len(changes))
            if not self._stopping.is_set():  # stopping: the next owner evaluates them again
                self._acknowledge(evaluated)
            self._unstored[:0] = changes
            if self._store_conn is not None:
                self._store_conn.terminate()
                self._store_conn = None
            await asyncio.sleep(1.0)

    async def _write(self, changes: list[Change], evaluated: list[Delivery]) -> None:
        if self._store_conn is None or self._store_conn.is_closed():
            self._store_conn = await db.connect(self.settings.dsn)
        conn = self._store_conn
        await alert_store.write_changes(conn, changes)
        await conn.execute(
            "INSERT INTO storage_info (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            self._checkpoint_key,
            str(self._checkpoint),
        )
        self._acknowledge(evaluated)
        if time.monotonic() - self._deadlines_at >= DEADLINES_S:
            self._deadlines_at = time.monotonic()
            self._announce(
                await alert_store.deadlines(
                    conn,
                    unacknowledged_red_s=self.settings.red_escalation_s,
                    regulator_after_s=self.settings.regulator_escalation_s,
                )
            )

    def _acknowledge(self, deliveries: list[Delivery]) -> None:
        """PUBACK once: a packet id acknowledged twice may by then name another message."""
        for d in deliveries:
            self.session.ack(d.mid, d.qos)
        deliveries.clear()

    def _announce(self, steps: list[tuple[str, Alert]]) -> None:
        """Push deadline steps (overdue, escalation) and keep the tracker's copies in step."""
        for change, alert in steps:
            body = json.dumps({**alert.to_json(), "change": change}, ensure_ascii=False).encode()
            self.session.publish(f"sw/v1/{alert.site}/alerts", body, qos=1)
            tracked = self.tracker.open.get(alert.key)
            if tracked is not None and tracked.id == alert.id:
                tracked.overdue = alert.overdue
                tracked.details = alert.details

    async def run(self) -> None:
        """Rebuild, then evaluate until cancelled (`stop` first stores what was evaluated)."""
        while True:
            try:
                await self._rebuild()
                break
            except db.UNAVAILABLE as exc:
                log.warning("waiting for the database to load the catalog: %s", exc)
                await asyncio.sleep(1.0)
        await self.session.start()
        self.metrics.ready.set(1)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = {job.__name__: tg.create_task(job()) for job in (self._consume, self._tick, self._store)}
        finally:
            await self.session.stop()
            for conn in (self._catalog_conn, self._store_conn):
                if conn is not None:
                    conn.terminate()

    async def stop(self) -> None:
        """Stop evaluating, then let the store task write the last changes and acknowledge the
        deliveries behind them: the next owner of the shard starts exactly where this one ends."""
        for name in ("_consume", "_tick"):
            if name in self._tasks:
                self._tasks[name].cancel()
        self._stopping.set()
        store = self._tasks.get("_store")
        if store is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(store), STORE_TIMEOUT_S + 2)
