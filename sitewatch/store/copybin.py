"""PostgreSQL binary COPY built with numpy: one vectorised pass per batch, no per-row Python.

A row of `readings (point_id int4, ts timestamptz, value float8, quality int2)` in COPY BINARY is
a fixed 40-byte record (field count, then length + big-endian value per field), so a whole batch is
a packed numpy structured array.
"""

from __future__ import annotations

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
# Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
PG_EPOCH_US = 946_684_800_000_000

READING_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("len_point", ">i4"),
        ("point_id", ">i4"),
        ("len_ts", ">i4"),
        ("ts", ">i8"),
        ("len_value", ">i4"),
        ("value", ">f8"),
        ("len_quality", ">i4"),
        ("quality", ">i2"),
    ]
)


def readings_copy(point_id: np.ndarray, ts_ms: np.ndarray, value: np.ndarray, quality: np.ndarray) -> bytes:
    """The COPY BINARY stream for readings given as columns (ts in Unix epoch milliseconds)."""
    rows = np.empty(len(point_id), dtype=READING_ROW)
    rows["nfields"] = 4
    rows["len_point"] = 4
    rows["point_id"] = point_id
    rows["len_ts"] = 8
    rows["ts"] = ts_ms.astype(np.int64) * 1000 - PG_EPOCH_US
    rows["len_value"] = 8
    rows["value"] = value
    rows["len_quality"] = 2
    rows["quality"] = quality
    return HEADER + rows.tobytes() + TRAILER
