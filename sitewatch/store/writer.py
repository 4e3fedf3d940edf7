"""The ingest write path: one transaction per batch, idempotent by (site, gateway, seq).

A batch is the concatenation of many decoded MQTT messages. The message keys are inserted first
with ON CONFLICT DO NOTHING; rows of messages that were already stored (a QoS 1 redelivery after a
crash between commit and PUBACK, or a spool replayed twice) are dropped before the readings COPY, so
a message is stored exactly once whatever happens around it. The positions of the messages kept
also move their tags in `tag_locations`, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np

from sitewatch.store import partitions, tag_locations
from sitewatch.store.copybin import readings_copy


@dataclass(slots=True)
class Batch:
    """Columns of many messages; `*_msg` arrays give each row's index into the message lists."""

    msg_site: list[int] = field(default_factory=list)
    msg_gateway: list[str] = field(default_factory=list)
    msg_seq: list[int] = field(default_factory=list)
    msg_channel: list[int] = field(default_factory=list)
    msg_items: list[int] = field(default_factory=list)
    msg_received_ms: list[int] = field(default_factory=list)
    r_msg: list[np.ndarray] = field(default_factory=list)
    r_point: list[np.ndarray] = field(default_factory=list)
    r_ts: list[np.ndarray] = field(default_factory=list)
    r_value: list[np.ndarray] = field(default_factory=list)
    r_quality: list[np.ndarray] = field(default_factory=list)
    # positions: (msg index, site_id, ts_ms, tag, kind, zone)
    positions: list[tuple[int, int, int, str, int, str | None]] = field(default_factory=list)
    # dead letters: (msg index or -1, received_ms, site, gateway, topic, seq, reason, detail, item)
    dead: list[tuple[int, int, str | None, str | None, str, int | None, str, str, str | None]] = field(
        default_factory=list
    )
    n_readings: int = 0

    def add_message(self, site_id: int, gateway: str, seq: int, channel: int, n_items: int, received_ms: int) -> int:
        self.msg_site.append(site_id)
        self.msg_gateway.append(gateway)
        self.msg_seq.append(seq)
        self.msg_channel.append(channel)
        self.msg_items.append(n_items)
        self.msg_received_ms.append(received_ms)
        return len(self.msg_seq) - 1

    def add_readings(
        self, msg: int, point_id: np.ndarray, ts_ms: np.ndarray, value: np.ndarray, quality: np.ndarray
    ) -> None:
        self.r_msg.append(np.full(len(point_id), msg, dtype=np.int32))
        self.r_point.append(point_id)
        self.r_ts.append(ts_ms)
        self.r_value.append(value)
        self.r_quality.append(quality)
        self.n_readings += len(point_id)

    @property
    def empty(self) -> bool:
        return not self.msg_seq and not self.dead

    @property
    def newest_ms(self) -> int | None:
        """The newest reading time in the batch, if it holds readings."""
        return max((int(t.max()) for t in self.r_ts if len(t)), default=None)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.r_point:
            z = np.empty(0, dtype=np.int64)
            return z.astype(np.int32), z.astype(np.int32), z, z.astype(np.float64), z.astype(np.int16)
        return (
            np.concatenate(self.r_msg),
            np.concatenate(self.r_point),
            np.concatenate(self.r_ts),
            np.concatenate(self.r_value),
            np.concatenate(self.r_quality),
        )


@dataclass(frozen=True, slots=True)
class WriteResult:
    readings: int
    positions: int
    dead_letters: int
    duplicate_messages: int


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _text(text: str) -> str:
    """A dead letter's detail or item as PostgreSQL text, which cannot hold U+0000: a NUL in a
    payload (kept as text) would fail the batch's transaction, and ingest with it."""
    return text.replace("\x00", "\ufffd")


class Writer:
    """Writes batches on one connection; caches which daily partitions exist (native mode)."""

    def __init__(self, conn: asyncpg.Connection[Any], *, native_partitions: bool) -> None:
        self.conn = conn
        self.native_partitions = native_partitions
        self._known_days: set[int] = set()

    async def write(self, batch: Batch) -> WriteResult:
        conn = self.conn
        msg, point, ts, value, quality = batch.columns()
        async with conn.transaction():
            fresh = await conn.fetch(
                "INSERT INTO ingest_messages (site_id, gateway, seq, channel, n_items, received_at)"
                " SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::smallint[], $5::int[],"
                " $6::timestamptz[]) ON CONFLICT DO NOTHING RETURNING site_id, gateway, seq",
                batch.msg_site,
                batch.msg_gateway,
                batch.msg_seq,
                batch.msg_channel,
                batch.msg_items,
                [_ts(ms) for ms in batch.msg_received_ms],
            )
            duplicates = len(batch.msg_seq) - len(fresh)
            keep_msg = np.ones(len(batch.msg_seq) + 1, dtype=bool)  # last slot: rows of no message
            if duplicates:
                stored = {(r["site_id"], r["gateway"], r["seq"]) for r in fresh}
                for i, key in enumerate(zip(batch.msg_site, batch.msg_gateway, batch.msg_seq, strict=True)):
                    keep_msg[i] = key in stored
                    stored.discard(key)  # a key repeated within the batch is kept once, first come
                rows = keep_msg[msg]
                point, ts, value, quality = point[rows], ts[rows], value[rows], quality[rows]
            positions = [p for p in batch.positions if keep_msg[p[0]]]
            dead = [d for d in batch.dead if keep_msg[d[0]]]
            if self.native_partitions and (len(ts) or positions):
                days = set(np.unique(ts // partitions.DAY_MS).tolist())
                days.update(p[2] // partitions.DAY_MS for p in positions)
                self._known_days = await partitions.ensure(conn, days, self._known_days)
            if len(ts):
                await conn.copy_to_table(
                    "readings",
                    source=_BytesSource(readings_copy(point, ts, value, quality)),
                    columns=["point_id", "ts", "value", "quality"],
                    format="binary",
                )
            if positions:
                await conn.copy_records_to_table(
                    "positions",
                    records=[(p[1], _ts(p[2]), p[3], p[4], p[5]) for p in positions],
                    columns=["site_id", "ts", "tag", "kind", "zone"],
                )
                await tag_locations.apply(conn, tag_locations.by_tag(positions))
            if dead:
                await conn.copy_records_to_table(
                    "dead_letters",
                    records=[(_ts(d[1]), *d[2:7], _text(d[7]), d[8] and _text(d[8])) for d in dead],
                    columns=["received_at", "site", "gateway", "topic", "seq", "reason", "detail", "item"],
                )
        return WriteResult(len(ts), len(positions), len(dead), duplicates)


class _BytesSource:
    """An async iterable of one bytes chunk: what asyncpg's copy_to_table reads from."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _BytesSource:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data
