"""Time parameters and output: RFC 3339 or epoch milliseconds in, site-local RFC 3339 out."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from fastapi import HTTPException, status


def parse_time(value: str, name: str) -> dt.datetime:
    if value.lstrip("-").isdigit():
        return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"{name}: expected RFC 3339 with an offset or epoch milliseconds, got {value!r}",
        )
    return parsed


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(ts: dt.datetime | None, tz: str) -> str | None:
    return None if ts is None else ts.astimezone(zone(tz)).isoformat(timespec="milliseconds")
