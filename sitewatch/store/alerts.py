"""The alert store as the evaluator writes it: one upsert per changed alert and an append-only
history row per change, in one transaction per flush (on a connection from `db.connect`, whose
codecs turn jsonb into dicts)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sitewatch.alerts import Alert, Change
from sitewatch.store import db

EVALUATOR = "evaluator"


def _ts(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _ms(ts: dt.datetime | None) -> int | None:
    return None if ts is None else int(ts.timestamp() * 1000)


async def write_changes(conn: db.Conn, changes: Sequence[Change]) -> None:
    """Persist evaluator changes; idempotent per alert id (the latest state wins)."""
    if not changes:
        return
    latest = {c.alert.id: c.alert for c in changes}
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO alerts (id, site_id, source_type, source_code, rule, kind, severity, cleared, value, peak,"
            " count, message, details, raised_at, due_at, overdue, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now())"
            " ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, severity = EXCLUDED.severity,"
            " cleared = EXCLUDED.cleared, value = EXCLUDED.value, peak = EXCLUDED.peak, count = EXCLUDED.count,"
            " message = EXCLUDED.message, details = EXCLUDED.details, updated_at = now()",
            [
                (
                    a.id,
                    a.site_id,
                    a.source_type,
                    a.source_code,
                    a.rule,
                    a.kind,
                    a.severity,
                    a.cleared,
                    a.value,
                    a.peak,
                    a.count,
                    a.message,
                    a.details,
                    _ts(a.raised_at),
                    _ts(a.due_at),
                    a.overdue,
                )
                for a in latest.values()
            ],
        )
        await conn.executemany(
            "INSERT INTO alert_history (alert_id, at, action, actor, data) VALUES ($1, $2, $3, $4, $5)",
            [
                (
                    c.alert.id,
                    _ts(c.at_ms),
                    c.action,
                    EVALUATOR,
                    {"severity": c.alert.severity, "value": c.alert.value, "count": c.alert.count},
                )
                for c in changes
            ],
        )


async def open_alerts(conn: db.Conn) -> list[Alert]:
    """Every alert not closed yet, as the tracker holds them."""
    rows = await conn.fetch(
        "SELECT a.*, s.code AS site, s.timezone FROM alerts a JOIN sites s ON s.id = a.site_id"
        " WHERE a.state <> 'closed'"
    )
    return [
        Alert(
            str(r["id"]),
            r["site_id"],
            r["site"],
            r["timezone"],
            r["source_type"],
            r["source_code"],
            r["rule"],
            r["kind"],
            r["severity"],
            r["value"],
            r["peak"],
            r["message"],
            int(r["raised_at"].timestamp() * 1000),
            int(r["due_at"].timestamp() * 1000),
            r["state"],
            r["cleared"],
            r["count"],
            r["overdue"],
            _ms(r["acknowledged_at"]),
            _ms(r["handled_at"]),
            _ms(r["closed_at"]),
            r["details"],
        )
        for r in rows
    ]
