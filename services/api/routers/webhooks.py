"""The webhook delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api.deps import Pool, Principal, visible_codes

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


@router.get("/webhooks/deliveries")
async def deliveries(
    pool: Pool, principal: Principal, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Every delivery attempt, newest first: event, attempt number, HTTP status or error, delivered.
    A token sees the deliveries of the enterprises whose sites it sees."""
    rows = await pool.fetch(
        "SELECT d.* FROM webhook_deliveries d WHERE $1::text[] IS NULL OR d.enterprise IN"
        " (SELECT enterprise FROM sites WHERE code = ANY($1)) ORDER BY d.id DESC LIMIT $2",
        await visible_codes(pool, principal),
        limit,
    )
    return {
        "deliveries": [
            {
                "enterprise": r["enterprise"],
                "url": r["url"],
                "event_id": r["event_id"],
                "attempt": r["attempt"],
                "status": r["status"],
                "error": r["error"],
                "delivered": r["delivered"],
                "at": r["at"].isoformat(timespec="milliseconds"),
            }
            for r in rows
        ]
    }
