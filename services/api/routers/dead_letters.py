"""Rejected messages and readings, with the reason each was refused."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api.deps import Pool, Principal, visible_sites
from services.api.schemas import DeadLetters, ok
from services.api.timefmt import parse_time

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@router.get("/dead-letters", response_model=None, responses=ok(DeadLetters))
async def dead_letters(
    pool: Pool,
    principal: Principal,
    site: str | None = None,
    reason: str | None = None,
    since: Annotated[str | None, Query(description="RFC 3339 or epoch ms")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    """Newest first. Dead letters of topics outside the catalog are listed to admins only."""
    visible = await visible_sites(pool, principal)
    rows = await pool.fetch(
        "SELECT id, received_at, site, gateway, topic, seq, reason, detail, item FROM dead_letters"
        " WHERE ($1::text IS NULL OR site = $1) AND ($2::text IS NULL OR reason = $2)"
        " AND ($3::timestamptz IS NULL OR received_at >= $3) AND ($4::text[] IS NULL OR site = ANY($4))"
        " ORDER BY received_at DESC, id DESC LIMIT $5",
        site,
        reason,
        parse_time(since, "since") if since else None,
        sorted(visible) if visible is not None else None,
        limit,
    )
    return {
        "dead_letters": [
            {
                "id": r["id"],
                "received_at": r["received_at"].isoformat(timespec="milliseconds"),
                "site": r["site"],
                "gateway": r["gateway"],
                "topic": r["topic"],
                "seq": r["seq"],
                "reason": r["reason"],
                "detail": r["detail"],
                "item": r["item"],
            }
            for r in rows
        ]
    }
