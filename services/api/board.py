"""What the dispatch board shows of a site: its zones with the live headcount (read from
`tag_locations`, judged by the positioning rules' own limits) and its points with their latest
reading, open alert, last hour, threshold levels and slope trend (replayed through the evaluator)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from services.api.deps import PgPool, not_found, visible_sites
from services.api.timefmt import local
from sitewatch import auth
from sitewatch.alerts import Alert
from sitewatch.rules.base import RED, YELLOW, Readings, RuleCatalog, SiteInfo, ZoneInfo
from sitewatch.rules.positioning import headcount_band, headcount_limit, headcount_severity
from sitewatch.rules.slope import RULE as SLOPE_RULE
from sitewatch.rules.slope import Slope, SlopeParams
from sitewatch.store import db
from sitewatch.store.rule_catalog import point_info, site_info, zone_info

QUALITY = ("good", "uncertain", "bad")
ZONE_STATE = {0: "normal", YELLOW: "warning", RED: "alarm"}
LAST_WITHIN = dt.timedelta(hours=24)
SPARK_MINUTES = 60

SITE = "SELECT s.*, e.name AS enterprise_name FROM sites s JOIN enterprises e ON e.code = s.enterprise"


async def visible_site(pool: PgPool, principal: auth.Principal, code: str) -> Any:
    """The site's row (with its enterprise's name) if the caller may see it; 404 otherwise."""
    visible = await visible_sites(pool, principal)
    row = await pool.fetchrow(f"{SITE} WHERE s.code = $1", code)
    if row is None or (visible is not None and code not in visible):
        raise not_found("site", code)
    return row


# -- zones ---------------------------------------------------------------------------------------


def zone_object(site: SiteInfo, code: str, zone: ZoneInfo | None, headcount: int) -> dict[str, Any]:
    """A zone's headcount against its limit; `zone` None is a zone that holds tags but is not in
    the catalog (limited like the positioning rules limit it: only under rectification)."""
    band = headcount_band(site, zone)
    return {
        "code": code,
        "name": zone.name if zone is not None else "",
        "risk": zone.risk if zone is not None else None,
        "limit": headcount_limit(site, zone),
        "headcount": headcount,
        "warn_at": band[0] if band is not None else None,
        "alarm_at": band[1] if band is not None else None,
        "state": ZONE_STATE[headcount_severity(headcount, band)],
    }


async def zones(conn: db.Queryable, site: Any, only: str | None = None) -> list[dict[str, Any]]:
    """Every catalog zone of the site and every zone holding tags (or just `only`), by code."""
    info = site_info(site)
    catalog = {
        r["code"]: zone_info(r)
        for r in await conn.fetch(
            "SELECT * FROM zones WHERE site_id = $1 AND ($2::text IS NULL OR code = $2)", site["id"], only
        )
    }
    counts = {
        r["zone"]: r["n"]
        for r in await conn.fetch(
            "SELECT zone, count(*) AS n FROM tag_locations WHERE site_id = $1 AND zone IS NOT NULL"
            " AND ($2::text IS NULL OR zone = $2) GROUP BY zone",
            site["id"],
            only,
        )
    }
    return [zone_object(info, code, catalog.get(code), counts.get(code, 0)) for code in sorted(catalog | counts)]


async def zone_detail(conn: db.Queryable, site: Any, code: str) -> dict[str, Any] | None:
    """One zone with the tags in it, longest there first; None if the site has no such zone."""
    found = await zones(conn, site, code)
    if not found:
        return None
    rows = await conn.fetch(
        "SELECT l.tag, nullif(t.person, '') AS person, l.since, l.ts FROM tag_locations l"
        " LEFT JOIN tags t ON t.site_id = l.site_id AND t.code = l.tag"
        " WHERE l.site_id = $1 AND l.zone = $2 ORDER BY l.since, l.tag",
        site["id"],
        code,
    )
    tz = site["timezone"]
    occupants = [
        {"tag": r["tag"], "person": r["person"], "since": local(r["since"], tz), "last_seen": local(r["ts"], tz)}
        for r in rows
    ]
    return {**found[0], "occupants": occupants}


# -- points --------------------------------------------------------------------------------------

POINTS = """
SELECT p.*, l.ts AS last_ts, l.value AS last_value, l.quality AS last_quality,
       a.id AS alert_id, a.rule AS alert_rule, a.severity AS alert_severity, a.state AS alert_state,
       a.cleared AS alert_cleared, a.overdue AS alert_overdue
FROM points p
LEFT JOIN LATERAL (
    SELECT r.ts, r.value, r.quality FROM readings r WHERE r.point_id = p.id AND r.ts >= $5
    ORDER BY r.ts DESC LIMIT 1
) l ON true
LEFT JOIN LATERAL (
    SELECT a.id, a.rule, a.severity, a.state, a.cleared, a.overdue FROM alerts a
    WHERE a.site_id = p.site_id AND a.source_type = 'point' AND a.source_code = p.code AND a.state <> 'closed'
    ORDER BY a.severity DESC, a.raised_at DESC LIMIT 1
) a ON true
WHERE p.site_id = $1 AND ($2::text IS NULL OR p.kind = $2)
ORDER BY p.code LIMIT $3 OFFSET $4
"""


def thresholds(rules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The levels of the point's (effective, as stored) threshold rule, or None without one."""
    spec = next((r for r in rules if r.get("rule") == "threshold"), None)
    return None if spec is None else {"above": spec.get("above", []), "below": spec.get("below", [])}


def point_source(point: Any) -> dict[str, Any]:
    """What an alert on this point shows of it."""
    return {
        "type": "point",
        "code": point["code"],
        "name": point["extra"].get("name") or "",
        "kind": point["kind"],
        "unit": point["unit"],
        "thresholds": thresholds(point["rules"]),
    }


async def points(
    conn: db.Queryable, site: Any, kind: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """A page of the site's points by code, with the total for paging."""
    total = await conn.fetchval(
        "SELECT count(*) FROM points WHERE site_id = $1 AND ($2::text IS NULL OR kind = $2)", site["id"], kind
    )
    now = dt.datetime.now(dt.UTC)
    rows = await conn.fetch(POINTS, site["id"], kind, limit, offset, now - LAST_WITHIN)
    sparks = await _sparks(conn, [r["id"] for r in rows], now)
    tz = site["timezone"]
    out = []
    for r in rows:
        last = None
        if r["last_ts"] is not None:
            last = {"ts": local(r["last_ts"], tz), "value": r["last_value"], "quality": QUALITY[r["last_quality"]]}
        alert = None
        if r["alert_id"] is not None:
            alert = {
                "id": str(r["alert_id"]),
                "rule": r["alert_rule"],
                "severity": r["alert_severity"],
                "state": r["alert_state"],
                "cleared": r["alert_cleared"],
                "overdue": r["alert_overdue"],
            }
        out.append(
            {
                **{k: v for k, v in point_source(r).items() if k != "type"},
                "period_s": r["period_s"],
                "last": last,
                "alert": alert,
                "spark": sparks.get(r["id"], [None] * SPARK_MINUTES),
                "trend": await slope_trend(conn, site, r) if r["last_ts"] is not None else None,
            }
        )
    return int(total), out


async def _sparks(conn: db.Queryable, ids: list[int], now: dt.datetime) -> dict[int, list[float | None]]:
    """Per point, the average of each of the last 60 minutes (the current one last), None where empty."""
    start = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=SPARK_MINUTES - 1)
    rows = await conn.fetch(
        "SELECT point_id, floor(extract(epoch FROM ts - $2) / 60)::int AS minute, avg(value) AS avg FROM readings"
        " WHERE point_id = ANY($1) AND ts >= $2 AND ts < $3 GROUP BY 1, 2",
        ids,
        start,
        start + dt.timedelta(minutes=SPARK_MINUTES),
    )
    out: dict[int, list[float | None]] = {}
    for r in rows:
        out.setdefault(r["point_id"], [None] * SPARK_MINUTES)[r["minute"]] = r["avg"]
    return out


async def slope_trend(conn: db.Queryable, site: Any, point: Any) -> dict[str, Any] | None:
    """A slope_trend point's rate, acceleration, tangent angle, forecast and severity at its latest
    reading, from the evaluator's own code fed two windows of stored readings (the first fills the
    window, the second is evaluated; readings start at a knot boundary, so the knots are the live
    evaluator's) and the site's rain gauges. With `steady_rate_mm_d` the figures are the live
    ones; without it the steady rate is estimated one window back, where the live evaluator
    estimated it at the point's first evaluated reading. None before the window is evaluable."""
    spec = next((r for r in point["rules"] if r.get("rule") == SLOPE_RULE), None)
    if spec is None:
        return None
    info = site_info(site)
    gauges = await conn.fetch("SELECT * FROM points WHERE site_id = $1 AND kind = 'rainfall'", site["id"])
    # dense ids: the family's state arrays are as long as the largest id
    ids = [point["id"], *(g["id"] for g in gauges)]
    infos = [dataclasses.replace(point_info(r), id=i) for i, r in enumerate([point, *gauges])]
    family = Slope()
    params = SlopeParams.of(spec, family.resolution, family.band)
    last = round(point["last_ts"].timestamp() * 1000)
    since = (last - 2 * params.window_ms) // params.bucket_ms * params.bucket_ms
    rows = await conn.fetch(
        "SELECT point_id, (extract(epoch FROM ts) * 1000)::bigint AS ts, value, quality FROM readings"
        " WHERE point_id = ANY($1) AND ts >= $2",
        ids,
        dt.datetime.fromtimestamp(since / 1000, dt.UTC),
    )
    dense = {real: i for i, real in enumerate(ids)}
    pid = np.array([dense[r["point_id"]] for r in rows], np.int32)
    ts = np.array([r["ts"] for r in rows], np.int64)
    order = np.lexsort((ts, pid))  # as the engine passes readings: by point, then time
    value = np.array([r["value"] for r in rows], np.float64)
    quality = np.array([r["quality"] for r in rows], np.int16)
    family.load(RuleCatalog({info.id: info}, {}, {p.id: p for p in infos}))
    family.on_readings(Readings(pid[order], ts[order], value[order], quality[order], np.zeros(len(rows), np.int32)))
    severity, trend = family.trend(0)
    if trend.rate is None:
        return None
    forecast = None
    if trend.forecast is not None:
        forecast = local(dt.datetime.fromtimestamp(trend.forecast / 1000, dt.UTC), site["timezone"])
    return {**trend.details(), "forecast": forecast, "severity": severity}


async def source_info(conn: db.Queryable, alert: Alert) -> dict[str, Any]:
    """What the alert is about: a point with its threshold levels, a zone with the people in it
    now, or just the source's type and code."""
    if alert.source_type == "point":
        point = await conn.fetchrow(
            "SELECT * FROM points WHERE site_id = $1 AND code = $2", alert.site_id, alert.source_code
        )
        if point is not None:
            return point_source(point)
    elif alert.source_type == "zone":
        site = await conn.fetchrow(f"{SITE} WHERE s.id = $1", alert.site_id)
        zone = await zone_detail(conn, site, alert.source_code)
        if zone is not None:
            return {"type": "zone", **zone}
    return {"type": alert.source_type, "code": alert.source_code}
