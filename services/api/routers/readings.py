"""Readings of one point, raw or time-bucketed."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from services.api.deps import Pool, Principal, visible_sites
from services.api.timefmt import local, parse_time

router = APIRouter(prefix="/api/v1", tags=["readings"])

_BUCKET = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
MAX_RAW = 100_000
MAX_BUCKETS = 20_000


def parse_bucket(value: str) -> dt.timedelta:
    m = _BUCKET.match(value.strip())
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)] if m else 0
    if seconds < 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"bucket: expected a duration of at least 1 s such as 30s, 1m, 15m, 1h or 1d, got {value!r}",
        )
    return dt.timedelta(seconds=seconds)


@router.get("/points/{point}/readings")
async def readings(
    pool: Pool,
    principal: Principal,
    point: str,
    site: str | None = None,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339 or epoch ms; default to − 1 h")] = None,
    to: Annotated[str | None, Query(description="RFC 3339 or epoch ms; default now")] = None,
    bucket: Annotated[str | None, Query(description="e.g. 30s, 1m, 1h: aggregate per bucket")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW)] = 10_000,
) -> dict[str, Any]:
    """Raw readings (ts, value, quality) or per-bucket avg/min/max/count/last, in the site's time zone."""
    visible = await visible_sites(pool, principal)
    candidates = await pool.fetch(
        "SELECT p.id, p.code, p.kind, p.unit, s.code AS site, s.timezone FROM points p"
        " JOIN sites s ON s.id = p.site_id WHERE p.code = $1 AND ($2::text IS NULL OR s.code = $2)",
        point,
        site,
    )
    candidates = [c for c in candidates if visible is None or c["site"] in visible]
    if not candidates:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"point {point!r} not found" + (f" at site {site!r}" if site else "")
        )
    if len(candidates) > 1:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"point {point!r} exists at several sites ({', '.join(c['site'] for c in candidates)}): pass ?site=",
        )
    p = candidates[0]
    end = parse_time(to, "to") if to else dt.datetime.now(dt.UTC)
    start = parse_time(from_, "from") if from_ else end - dt.timedelta(hours=1)
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "from must be before to")
    tz = p["timezone"]
    out: dict[str, Any] = {
        "site": p["site"],
        "point": p["code"],
        "kind": p["kind"],
        "unit": p["unit"],
        "from": local(start, tz),
        "to": local(end, tz),
        "bucket": bucket,
    }
    if bucket is None:
        rows = await pool.fetch(
            "SELECT ts, value, quality FROM readings WHERE point_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
            p["id"],
            start,
            end,
            limit + 1,
        )
        out["truncated"] = len(rows) > limit
        quality = ("good", "uncertain", "bad")
        out["readings"] = [
            {"ts": local(r["ts"], tz), "value": r["value"], "quality": quality[r["quality"]]} for r in rows[:limit]
        ]
        return out
    width = parse_bucket(bucket)
    if (end - start) / width > MAX_BUCKETS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"{(end - start) / width:.0f} buckets requested; at most {MAX_BUCKETS}: widen the bucket",
        )
    rows = await pool.fetch(
        "SELECT date_bin($2, ts, $3) AS bucket, avg(value) AS avg, min(value) AS min, max(value) AS max,"
        " count(*) AS count, (array_agg(value ORDER BY ts DESC))[1] AS last"
        " FROM readings WHERE point_id = $1 AND ts >= $4 AND ts < $5 GROUP BY 1 ORDER BY 1",
        p["id"],
        width,
        dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        start,
        end,
    )
    out["bucket_s"] = width.total_seconds()
    out["readings"] = [
        {
            "ts": local(r["bucket"], tz),
            "avg": r["avg"],
            "min": r["min"],
            "max": r["max"],
            "count": r["count"],
            "last": r["last"],
        }
        for r in rows
    ]
    return out
