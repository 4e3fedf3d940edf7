"""The hazard ledger: records created from an alert or by hand, rectified with a note and a date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sitewatch.lifecycle import TransitionError
from sitewatch.store import db

SOURCES = ("self_check", "inspection", "supervision")
_SELECT = "SELECT h.*, s.code AS site, s.enterprise, s.timezone FROM hazards h JOIN sites s ON s.id = h.site_id"


async def create(
    conn: db.Conn,
    *,
    site: str | None,
    alert_id: str | None,
    source: str,
    title: str,
    description: str,
    found_at: dt.datetime | None,
    by: str,
) -> dict[str, Any]:
    """A hazard from an alert (its site, its raise time unless given) or from an inspection finding."""
    if source not in SOURCES:
        raise TransitionError(422, f"source must be one of {', '.join(SOURCES)}")
    if not title.strip() or not by.strip():
        raise TransitionError(422, "'title' and 'by' are required")
    if alert_id is not None:
        alert = await conn.fetchrow("SELECT site_id, raised_at FROM alerts WHERE id = $1::uuid", alert_id)
        if alert is None:
            raise LookupError(alert_id)
        if await conn.fetchval("SELECT 1 FROM hazards WHERE alert_id = $1::uuid", alert_id):
            raise TransitionError(409, "this alert already has a hazard record")
        site_id, found = alert["site_id"], found_at or alert["raised_at"]
    else:
        site_id = await conn.fetchval("SELECT id FROM sites WHERE code = $1", site)
        if site_id is None:
            raise LookupError(site or "")
        found = found_at or dt.datetime.now(dt.UTC)
    hazard_id = await conn.fetchval(
        "INSERT INTO hazards (site_id, alert_id, source, title, description, found_at, found_by)"
        " VALUES ($1, $2::uuid, $3, $4, $5, $6, $7) RETURNING id",
        site_id,
        alert_id,
        source,
        title,
        description,
        found,
        by,
    )
    return await _existing(conn, str(hazard_id))


async def get(conn: db.Queryable, hazard_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE h.id = $1::uuid", hazard_id)
    return None if row is None else dict(row)


async def _existing(conn: db.Queryable, hazard_id: str) -> dict[str, Any]:
    hazard = await get(conn, hazard_id)
    assert hazard is not None  # written in the same transaction
    return hazard


async def rectify(conn: db.Conn, hazard_id: str, *, by: str, note: str, at: dt.datetime | None) -> dict[str, Any]:
    if not note.strip() or not by.strip():
        raise TransitionError(422, "rectifying needs 'by' and a rectification 'note'")
    updated = await conn.fetchval(
        "UPDATE hazards SET rectified_at = $2, rectified_by = $3, rectification_note = $4"
        " WHERE id = $1::uuid AND rectified_at IS NULL RETURNING id",
        hazard_id,
        at or dt.datetime.now(dt.UTC),
        by,
        note,
    )
    if updated is None:
        if await get(conn, hazard_id) is None:
            raise LookupError(hazard_id)
        raise TransitionError(409, "the hazard is already rectified")
    return await _existing(conn, hazard_id)


async def rectify_for_alert(conn: db.Conn, alert_id: str, *, by: str, note: str) -> None:
    """Closing an alert with a note rectifies the hazard raised from it (DOMAIN §3)."""
    if note.strip():
        await conn.execute(
            "UPDATE hazards SET rectified_at = now(), rectified_by = $2, rectification_note = $3"
            " WHERE alert_id = $1::uuid AND rectified_at IS NULL",
            alert_id,
            by,
            note,
        )


async def listing(
    conn: db.Queryable, *, sites: list[str] | None, site: str | None, month: tuple[dt.date, dt.date] | None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"{_SELECT} WHERE ($1::text[] IS NULL OR s.code = ANY($1)) AND ($2::text IS NULL OR s.code = $2)"
        " AND ($3::date IS NULL OR h.found_at >= $3::timestamp AT TIME ZONE s.timezone)"
        " AND ($4::date IS NULL OR h.found_at < $4::timestamp AT TIME ZONE s.timezone) ORDER BY h.found_at",
        sites,
        site,
        month[0] if month else None,
        month[1] if month else None,
    )
    return [dict(r) for r in rows]
