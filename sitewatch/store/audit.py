"""The audit log: one row per state-changing API request, allowed or refused (docs/security.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sitewatch.store import db


@dataclass(frozen=True, slots=True)
class Entry:
    at: dt.datetime
    method: str
    path: str
    status: int
    route: str | None = None
    client: str | None = None
    token_id: int | None = None
    token_name: str | None = None
    role: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


async def record(conn: db.Queryable, entry: Entry) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, token_id, token_name, role, method, path, route, status, client, summary)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        entry.at,
        entry.token_id,
        entry.token_name,
        entry.role,
        entry.method,
        entry.path,
        entry.route,
        entry.status,
        entry.client,
        entry.summary,
    )


async def query(
    conn: db.Queryable,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; `actor` is a token's name or id."""
    rows = await conn.fetch(
        "SELECT id, at, token_id, token_name, role, method, path, route, status, client, summary FROM audit_log"
        " WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)"
        " AND ($3::text IS NULL OR token_name = $3 OR token_id::text = $3)"
        " ORDER BY at DESC, id DESC LIMIT $4",
        since,
        until,
        actor,
        limit,
    )
    return [{**dict(r), "at": r["at"].isoformat(timespec="milliseconds")} for r in rows]
