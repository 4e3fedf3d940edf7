"""Ingest metrics: rate, batch sizes, lag, spool depth and rejects by reason."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import Counter, Enum, Gauge, Histogram

from services.ingest.spool import Spool
from sitewatch.metrics import ServiceMetrics
from sitewatch.store.writer import Batch, WriteResult

_RATE_WINDOW_S = 10.0


class IngestMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("ingest")
        r = self.registry
        self.messages = Counter("sitewatch_ingest_messages", "MQTT messages decoded", ["channel"], registry=r)
        self.readings_received = Counter("sitewatch_ingest_readings_received", "Valid readings decoded", registry=r)
        self.readings_stored = Counter("sitewatch_ingest_readings_stored", "Readings committed", registry=r)
        self.positions_stored = Counter("sitewatch_ingest_positions_stored", "Position events committed", registry=r)
        self.rejects = Counter("sitewatch_ingest_rejects", "Rejected messages and readings", ["reason"], registry=r)
        self.duplicates = Counter(
            "sitewatch_ingest_duplicate_messages", "Redelivered messages dropped by (site, gateway, seq)", registry=r
        )
        self.batch_readings = Histogram(
            "sitewatch_ingest_batch_readings",
            "Readings per committed batch",
            buckets=(10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
            registry=r,
        )
        self.commit_seconds = Histogram("sitewatch_ingest_commit_seconds", "Time to commit one batch", registry=r)
        self.lag = Histogram(
            "sitewatch_ingest_lag_seconds",
            "Broker delivery to database commit, oldest message of a batch",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.event_lag = Gauge(
            "sitewatch_ingest_event_lag_seconds", "Now minus the newest reading timestamp of the last batch", registry=r
        )
        self.rate = Gauge(
            "sitewatch_ingest_readings_per_second",
            f"Readings committed per second over the last {_RATE_WINDOW_S:.0f} s",
            registry=r,
        )
        self.spool_bytes = Gauge("sitewatch_ingest_spool_bytes", "Bytes waiting in the spool", registry=r)
        self.spool_batches = Gauge("sitewatch_ingest_spool_batches", "Batches waiting in the spool", registry=r)
        self.db_up = Gauge("sitewatch_ingest_db_up", "1 while the last write reached PostgreSQL", registry=r)
        self.load = Enum(
            "sitewatch_ingest_load",
            "normal; overloaded: batches are being deferred to the spool; catching_up: the spool drains;"
            " database_down: the spool holds what PostgreSQL cannot take",
            states=["normal", "overloaded", "catching_up", "database_down"],
            registry=r,
        )
        self.deferred = Counter(
            "sitewatch_ingest_deferred_readings",
            "Readings deferred to the spool because the writers were saturated",
            registry=r,
        )
        self.behind = Gauge(
            "sitewatch_ingest_behind_seconds",
            "While messages wait: now minus the newest reading time stored (how far storage is behind)",
            registry=r,
        )
        self.unacknowledged = Gauge(
            "sitewatch_ingest_unacknowledged", "Messages received and not yet acknowledged (back-pressure)", registry=r
        )
        self._window: deque[tuple[float, int]] = deque()

    def observe_commit(self, batch: Batch, result: WriteResult, seconds: float, newest_ms: int | None) -> None:
        now = time.time()
        self.readings_stored.inc(result.readings)
        self.positions_stored.inc(result.positions)
        self.duplicates.inc(result.duplicate_messages)
        self.batch_readings.observe(result.readings)
        self.commit_seconds.observe(seconds)
        if batch.msg_received_ms:
            self.lag.observe(now - min(batch.msg_received_ms) / 1000)
        if newest_ms is not None:
            self.event_lag.set(now - newest_ms / 1000)
        self._window.append((now, result.readings))
        while self._window and self._window[0][0] < now - _RATE_WINDOW_S:
            self._window.popleft()
        self.rate.set(sum(n for _, n in self._window) / _RATE_WINDOW_S)

    def spool(self, spool: Spool) -> None:
        self.spool_bytes.set(spool.bytes)
        self.spool_batches.set(len(spool))
