"""Sites for the dispatch board: the caller's token, the sites it sees with their open alerts,
live headcount per zone and the points with their latest state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import board
from services.api.deps import Pool, Principal, not_found, visible_codes
from services.api.routers.alerts import BIGINT

router = APIRouter(prefix="/api/v1", tags=["sites"])

SEVERITIES = ("1", "2", "3", "4")

_SITES = """
SELECT s.code, s.name, s.enterprise, e.name AS enterprise_name, s.kind, s.timezone, s.state, s.shift_capacity,
       count(a.id) FILTER (WHERE a.severity = 1) AS "1", count(a.id) FILTER (WHERE a.severity = 2) AS "2",
       count(a.id) FILTER (WHERE a.severity = 3) AS "3", count(a.id) FILTER (WHERE a.severity = 4) AS "4",
       count(a.id) FILTER (WHERE a.overdue) AS overdue
FROM sites s JOIN enterprises e ON e.code = s.enterprise
LEFT JOIN alerts a ON a.site_id = s.id AND a.state <> 'closed'
WHERE ($1::text[] IS NULL OR s.code = ANY($1))
GROUP BY s.id, e.name ORDER BY s.code
"""


@router.get("/me")
async def me(principal: Principal) -> dict[str, Any]:
    """Who the token is: its name, role, enterprise and site list (None: every site its role sees)."""
    return {
        "name": principal.name,
        "role": principal.role,
        "enterprise": principal.enterprise,
        "sites": sorted(principal.sites) if principal.sites is not None else None,
    }


@router.get("/sites")
async def sites(pool: Pool, principal: Principal) -> dict[str, Any]:
    """The sites the caller may see, by code, each with its not-closed alerts per severity and
    how many of them are overdue."""
    rows = await pool.fetch(_SITES, await visible_codes(pool, principal))
    columns = ("code", "name", "enterprise", "enterprise_name", "kind", "timezone", "state", "shift_capacity")
    return {
        "sites": [
            {**{k: r[k] for k in columns}, "open": {k: r[k] for k in SEVERITIES}, "overdue": r["overdue"]} for r in rows
        ]
    }


@router.get("/sites/{site}/zones")
async def zones(pool: Pool, principal: Principal, site: str) -> dict[str, Any]:
    """Live headcount and limit per zone (PROTOCOL §4): every zone of the catalog and any other
    zone holding tags, with the people on site and the site's shift capacity."""
    row = await board.visible_site(pool, principal, site)
    found = await board.zones(pool, row)
    return {
        "site": site,
        "on_site": sum(z["headcount"] for z in found),
        "shift_capacity": row["shift_capacity"],
        "zones": found,
    }


@router.get("/sites/{site}/zones/{zone}")
async def zone(pool: Pool, principal: Principal, site: str, zone: str) -> dict[str, Any]:
    """One zone with the tags located in it, who wears them and since when."""
    row = await board.visible_site(pool, principal, site)
    found = await board.zone_detail(pool, row, zone)
    if found is None:
        raise not_found("zone", zone)
    return found


@router.get("/sites/{site}/points")
async def points(
    pool: Pool,
    principal: Principal,
    site: str,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=BIGINT)] = 0,
) -> dict[str, Any]:
    """The site's points by code, `limit` at a time: latest reading (within 24 h), the most severe
    open alert, the last hour per minute, threshold levels and, for slope points, the trend."""
    row = await board.visible_site(pool, principal, site)
    total, found = await board.points(pool, row, kind, limit, offset)
    return {"site": site, "total": total, "points": found}
