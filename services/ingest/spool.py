"""A bounded on-disk spool of whole batches, used while PostgreSQL is unavailable or overloaded.

Each batch is one fsynced file named by a monotonically increasing number, so replay order is
the order of arrival. A batch is acknowledged to the broker only after its file is durable.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from sitewatch.store.writer import Batch

_COLUMNS = (
    ("r_msg", np.int32),
    ("r_point", np.int32),
    ("r_ts", np.int64),
    ("r_value", np.float64),
    ("r_quality", np.int16),
)
_MESSAGE_FIELDS = ("msg_site", "msg_gateway", "msg_seq", "msg_channel", "msg_items", "msg_received_ms")


def encode(batch: Batch) -> bytes:
    doc: dict[str, Any] = {name: getattr(batch, name) for name in _MESSAGE_FIELDS}
    columns = batch.columns()
    for (name, dtype), column in zip(_COLUMNS, columns, strict=True):
        doc[name] = np.ascontiguousarray(column, dtype=dtype).tobytes()
    doc["positions"] = batch.positions
    doc["dead"] = batch.dead
    return msgspec.msgpack.encode(doc)


def decode(data: bytes) -> Batch:
    doc = msgspec.msgpack.decode(data)
    batch = Batch(**{name: doc[name] for name in _MESSAGE_FIELDS})
    arrays = [np.frombuffer(doc[name], dtype=dtype) for name, dtype in _COLUMNS]
    if len(arrays[0]):
        batch.r_msg, batch.r_point, batch.r_ts, batch.r_value, batch.r_quality = ([a] for a in arrays)
        batch.n_readings = len(arrays[0])
    batch.positions = [tuple(p) for p in doc["positions"]]
    batch.dead = [tuple(d) for d in doc["dead"]]
    return batch


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):
            leftover.unlink()
        # path → size, in arrival order (dicts keep insertion order)
        self._files = {f: f.stat().st_size for f in sorted(directory.glob("*.batch"))}
        self._next = int(max(self._files).stem) + 1 if self._files else 1
        self._reserved = 0  # bytes of batches being written: counted against the bound already
        self._space = asyncio.Condition()
        self._claimed: set[Path] = set()  # batches a replayer is committing

    def __len__(self) -> int:
        return len(self._files)

    @property
    def bytes(self) -> int:
        return sum(self._files.values())

    async def append(self, batch: Batch) -> None:
        """Make `batch` durable on disk; waits while the spool is full (the broker then holds the rest)."""
        data = encode(batch)
        async with self._space:
            # a batch larger than the bound goes in alone; writers waiting together reserve their
            # bytes before writing, so two of them never both fit into the last free space
            await self._space.wait_for(
                lambda: (
                    (not self._files and not self._reserved)
                    or self.bytes + self._reserved + len(data) <= self.max_bytes
                )
            )
            self._reserved += len(data)
            path = self.directory / f"{self._next:012d}.batch"
            self._next += 1
        try:
            await asyncio.to_thread(_write_durably, path, data)
            self._files[path] = len(data)
        finally:
            self._reserved -= len(data)

    async def claim(self) -> tuple[Path, Batch] | None:
        """The oldest batch no other replayer holds; give it back with `remove` or `release`."""
        path = next((p for p in self._files if p not in self._claimed), None)
        if path is None:
            return None
        self._claimed.add(path)
        try:
            return path, decode(await asyncio.to_thread(path.read_bytes))
        except BaseException:
            self._claimed.discard(path)
            raise

    def release(self, path: Path) -> None:
        self._claimed.discard(path)

    async def remove(self, path: Path) -> None:
        await asyncio.to_thread(path.unlink)
        del self._files[path]
        self._claimed.discard(path)
        async with self._space:
            self._space.notify_all()


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
