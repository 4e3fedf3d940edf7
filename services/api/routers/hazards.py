"""The hazard ledger (隐患台账): records from an alert or an inspection, rectified with a note."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.api import audit
from services.api.deps import Pool, Principal, not_found, require_uuid, visible_codes, visible_sites
from services.api.errors import errors
from services.api.routers.alerts import _alert_for
from services.api.routers.reports import month_bounds
from services.api.timefmt import local, parse_time
from sitewatch.lifecycle import TransitionError
from sitewatch.store import hazards

router = APIRouter(prefix="/api/v1", tags=["hazards"])


class NewHazard(BaseModel):
    by: str = Field(min_length=1, max_length=200, description="who found or records it")
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=8000)
    alert_id: str | None = Field(default=None, description="the alert it comes from (its site and raise time)")
    site: str | None = Field(default=None, description="the site, for a finding not from an alert")
    source: Literal["self_check", "inspection", "supervision"] = Field(
        default="self_check",
        description="the enterprise's own check (the monitoring system counts as one), "
        "department inspection, or listed for government supervision",
    )
    found_at: str | None = Field(default=None, description="RFC 3339; default the alert's raise or now")


class Rectification(BaseModel):
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(min_length=1, max_length=8000, description="what was done: required")
    at: str | None = Field(default=None, description="RFC 3339; default now")


def _json(h: dict[str, Any]) -> dict[str, Any]:
    tz = h["timezone"]
    return {
        "id": str(h["id"]),
        "site": h["site"],
        "enterprise": h["enterprise"],
        "alert_id": str(h["alert_id"]) if h["alert_id"] else None,
        "source": h["source"],
        "title": h["title"],
        "description": h["description"],
        "found_at": local(h["found_at"], tz),
        "found_by": h["found_by"],
        "rectified": h["rectified_at"] is not None,
        "rectified_at": local(h["rectified_at"], tz),
        "rectified_by": h["rectified_by"],
        "rectification_note": h["rectification_note"],
    }


async def _visible_site(pool: Any, principal: Any, site: str) -> None:
    sites = await visible_sites(pool, principal)
    if sites is not None and site not in sites:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"site {site!r} not found")


@router.post("/hazards", status_code=201, responses=errors(404, 409))
async def create(request: Request, pool: Pool, principal: Principal, body: NewHazard) -> dict[str, Any]:
    """Record a hazard from an alert (`alert_id`) or by hand (`site`)."""
    if body.alert_id:
        await _alert_for(pool, principal, body.alert_id)
    elif body.site:
        await _visible_site(pool, principal, body.site)
    else:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "give alert_id or site")
    try:
        async with pool.acquire() as conn:
            hazard = await hazards.create(
                conn,
                site=body.site,
                alert_id=body.alert_id,
                source=body.source,
                title=body.title,
                description=body.description,
                found_at=parse_time(body.found_at, "found_at") if body.found_at else None,
                by=body.by,
            )
    except TransitionError as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{exc} not found") from exc
    audit.note(request, hazard=str(hazard["id"]))
    return _json(hazard)


@router.post("/hazards/{hazard_id}/rectify", responses=errors(409))
async def rectify(pool: Pool, principal: Principal, hazard_id: str, body: Rectification) -> dict[str, Any]:
    """Mark a hazard rectified (已完成整改) with what was done and when."""
    existing = await _hazard_for(pool, principal, hazard_id)
    try:
        async with pool.acquire() as conn:
            hazard = await hazards.rectify(
                conn, str(existing["id"]), by=body.by, note=body.note, at=parse_time(body.at, "at") if body.at else None
            )
    except TransitionError as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    return _json(hazard)


async def _hazard_for(pool: Any, principal: Any, hazard_id: str) -> dict[str, Any]:
    require_uuid("hazard", hazard_id)
    hazard = await hazards.get(pool, hazard_id)
    if hazard is None:
        raise not_found("hazard", hazard_id)
    await _visible_site(pool, principal, hazard["site"])
    return hazard


@router.get("/hazards")
async def listing(
    pool: Pool,
    principal: Principal,
    site: str | None = None,
    month: Annotated[str | None, Query(description="YYYY-MM: found that month")] = None,
) -> dict[str, Any]:
    """The ledger, oldest finding first."""
    bounds = month_bounds(month) if month else None
    rows = await hazards.listing(pool, sites=await visible_codes(pool, principal), site=site, month=bounds)
    return {"hazards": [_json(h) for h in rows]}
