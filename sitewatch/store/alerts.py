"""The alert store as the evaluator writes it: one upsert per changed alert and an append-only
history row per change, in one transaction per flush (on a connection from `db.connect`, whose
codecs turn jsonb into dicts)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sitewatch.alerts import Alert, Change
from sitewatch.lifecycle import TransitionError, check_shelve, target_state
from sitewatch.store import db, hazards

EVALUATOR = "evaluator"
# the human steps, for the evaluator (a closed alert is forgotten, a latched point reset)
HUMAN_CHANNEL = "sitewatch_alert_steps"
# a new row in alert_events, for the SSE streams
EVENTS_CHANNEL = "sitewatch_alert_events"


def _ts(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _ms(ts: dt.datetime | None) -> int | None:
    return None if ts is None else int(ts.timestamp() * 1000)


async def write_changes(conn: db.Conn, changes: Sequence[Change]) -> None:
    """Persist evaluator changes; idempotent per alert id (the latest state wins)."""
    if not changes:
        return
    # Snapshot before the first await: the evaluator keeps changing these alert objects meanwhile,
    # and a row newer than the history written beside it would show a count its steps do not.
    latest = {c.alert.id: c.alert for c in changes}
    rows = [
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
    ]
    events = [(c.alert.site_id, c.alert.id, c.body) for c in changes]
    history = [
        (
            c.alert.id,
            _ts(c.at_ms),
            c.action,
            EVALUATOR,
            {k: c.body.get(k, getattr(c.alert, k)) for k in ("severity", "value", "count")},
        )
        for c in changes
    ]
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO alerts (id, site_id, source_type, source_code, rule, kind, severity, cleared, value, peak,"
            " count, message, details, raised_at, due_at, overdue, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now())"
            " ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, severity = EXCLUDED.severity,"
            " cleared = EXCLUDED.cleared, value = EXCLUDED.value, peak = EXCLUDED.peak, count = EXCLUDED.count,"
            " message = EXCLUDED.message, details = EXCLUDED.details, updated_at = now()",
            rows,
        )
        await conn.executemany("INSERT INTO alert_events (site_id, alert_id, body) VALUES ($1, $2, $3)", events)
        await conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
        await conn.executemany(
            "INSERT INTO alert_history (alert_id, at, action, actor, data) VALUES ($1, $2, $3, $4, $5)", history
        )


def alert_from_row(r: Any) -> Alert:
    """An alert as stored, from a row of `alerts` joined with its site's code and time zone."""
    return Alert(
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
        _ms(r["raised_at"]) or 0,
        _ms(r["due_at"]) or 0,
        r["state"],
        r["cleared"],
        r["count"],
        r["overdue"],
        _ms(r["acknowledged_at"]),
        _ms(r["handled_at"]),
        _ms(r["closed_at"]),
        r["details"],
        _ms(r["shelved_until"]),
    )


_SELECT = "SELECT a.*, s.code AS site, s.timezone FROM alerts a JOIN sites s ON s.id = a.site_id"


async def open_alerts(conn: db.Conn) -> list[Alert]:
    """Every alert not closed yet, as the tracker holds them."""
    return [alert_from_row(r) for r in await conn.fetch(f"{_SELECT} WHERE a.state <> 'closed'")]


async def get(conn: db.Queryable, alert_id: str) -> Alert | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1::uuid", alert_id)
    return None if row is None else alert_from_row(row)


async def history(conn: db.Queryable, alert_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT at, action, actor, note, state_from, state_to, data FROM alert_history"
        " WHERE alert_id = $1::uuid ORDER BY id",
        alert_id,
    )
    return [dict(r) for r in rows]


async def readings_around(conn: db.Queryable, alert: Alert, *, window_s: int, limit: int = 5000) -> list[Any]:
    """The readings of a point alert's source within `window_s` either side of the raise."""
    if alert.source_type != "point":
        return []
    raised = _ts(alert.raised_at)
    return list(
        await conn.fetch(
            "SELECT r.ts, r.value, r.quality FROM readings r JOIN points p ON p.id = r.point_id"
            " WHERE p.site_id = $1 AND p.code = $2 AND r.ts >= $3::timestamptz - make_interval(secs => $4::float8)"
            " AND r.ts <= $3::timestamptz + make_interval(secs => $4::float8) ORDER BY r.ts LIMIT $5",
            alert.site_id,
            alert.source_code,
            raised,
            window_s,
            limit,
        )
    )


async def query(
    conn: db.Queryable,
    *,
    sites: list[str] | None,
    site: str | None,
    state: str | None,
    severity: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Alert]]:
    """Alerts matching the filters, most severe and newest first; with the total count for paging."""
    where = (
        " WHERE ($1::text[] IS NULL OR s.code = ANY($1)) AND ($2::text IS NULL OR s.code = $2)"
        " AND ($3::text IS NULL OR a.state = $3) AND ($4::int IS NULL OR a.severity = $4)"
        " AND ($5::timestamptz IS NULL OR a.raised_at >= $5) AND ($6::timestamptz IS NULL OR a.raised_at < $6)"
        " AND ($7::boolean IS NULL OR a.overdue = $7)"
    )
    args = (sites, site, state, severity, since, until, overdue)
    total = await conn.fetchval(f"SELECT count(*) FROM alerts a JOIN sites s ON s.id = a.site_id{where}", *args)
    rows = await conn.fetch(
        f"{_SELECT}{where} ORDER BY a.severity DESC, a.raised_at DESC, a.id LIMIT $8 OFFSET $9", *args, limit, offset
    )
    return int(total), [alert_from_row(r) for r in rows]


async def events_after(conn: db.Queryable, last_id: int, sites: list[str] | None, limit: int = 500) -> list[Any]:
    """Alert events newer than `last_id` at the given sites (None: all), oldest first."""
    return list(
        await conn.fetch(
            "SELECT e.id, e.body FROM alert_events e JOIN sites s ON s.id = e.site_id"
            " WHERE e.id > $1 AND ($2::text[] IS NULL OR s.code = ANY($2)) ORDER BY e.id LIMIT $3",
            last_id,
            sites,
            limit,
        )
    )


async def _escalate(conn: db.Conn, rows: list[Any], change: str, level: int, why: str) -> list[tuple[str, Alert]]:
    """Record and announce a deadline step for `rows` (already updated): history, event, NOTIFY."""
    alerts = []
    for r in rows:
        recipients = (r["escalation"] or {}).get(str(level), [])
        escalation = {"level": level, "to": recipients, "why": why}
        details = {**r["details"], "escalation": escalation}
        await conn.execute("UPDATE alerts SET details = $2 WHERE id = $1", r["id"], details)
        alert = alert_from_row({**dict(r), "details": details})
        await conn.executemany(
            "INSERT INTO alert_history (alert_id, at, action, actor, note, data) VALUES ($1, now(), $2, $3, $4, $5)",
            [
                *([(r["id"], change, "scheduler", why, {})] if change != "escalate" else []),
                (r["id"], "escalate", "scheduler", why, escalation),
            ],
        )
        await conn.execute(
            "INSERT INTO alert_events (site_id, alert_id, body) VALUES ($1, $2, $3)",
            alert.site_id,
            alert.id,
            {**alert.to_json(), "change": change},
        )
        alerts.append((change, alert))
    if alerts:
        await conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
    return alerts


_DEADLINE_RETURNING = (
    " RETURNING a.*, s.code AS site, s.timezone, (SELECT e.extra -> 'escalation' FROM enterprises e"
    " WHERE e.code = s.enterprise) AS escalation"
)


async def deadlines(conn: db.Conn, *, unacknowledged_red_s: float, regulator_after_s: float) -> list[tuple[str, Alert]]:
    """The same-day rule's clock, run every second: alerts past their due time become overdue (a
    fact that never un-happens) and escalate to level 2, the enterprise's safety director; a red
    alert nobody acknowledged within `unacknowledged_red_s` escalates too, and an overdue alert still
    open `regulator_after_s` after its due time goes to level 3, the regulator. Returns (change, alert)."""
    async with conn.transaction():
        overdue = await conn.fetch(
            "UPDATE alerts a SET overdue = true, updated_at = now() FROM sites s WHERE s.id = a.site_id"
            " AND NOT a.overdue AND a.state <> 'closed' AND a.due_at <= now()" + _DEADLINE_RETURNING
        )
        changed = await _escalate(conn, list(overdue), "overdue", 2, "not closed by the end of the day")
        red = await conn.fetch(
            "UPDATE alerts a SET updated_at = now() FROM sites s WHERE s.id = a.site_id AND a.severity = 4"
            " AND a.state = 'open' AND NOT a.details ? 'escalation'"
            " AND a.raised_at <= now() - make_interval(secs => $1)" + _DEADLINE_RETURNING,
            unacknowledged_red_s,
        )
        changed += await _escalate(conn, list(red), "escalate", 2, "red alert not acknowledged in time")
        stale = await conn.fetch(
            "UPDATE alerts a SET updated_at = now() FROM sites s WHERE s.id = a.site_id AND a.overdue"
            " AND a.state <> 'closed' AND a.due_at <= now() - make_interval(secs => $1::float8)"
            " AND coalesce((a.details -> 'escalation' ->> 'level')::int, 0) < 3" + _DEADLINE_RETURNING,
            regulator_after_s,
        )
        why = f"still not closed {regulator_after_s / 3600:g} h after the end of its day"
        changed += await _escalate(conn, list(stale), "escalate", 3, why)
        expired = await conn.fetch(
            "UPDATE alerts a SET shelved_until = NULL, updated_at = now() FROM sites s WHERE s.id = a.site_id"
            " AND a.shelved_until <= now()" + _DEADLINE_RETURNING
        )
        for row in expired:
            alert = alert_from_row(row)
            await _record_step(conn, alert, "unshelve", "scheduler", "shelving expired", {})
            changed.append(("unshelve", alert))
    return changed


async def _record_step(
    conn: db.Conn, alert: Alert, action: str, by: str, note: str, data: dict[str, Any], *, state_from: str | None = None
) -> None:
    """History, event log and the evaluator's notification of one step on `alert`."""
    await conn.execute(
        "INSERT INTO alert_history (alert_id, at, action, actor, note, state_from, state_to, data)"
        " VALUES ($1::uuid, now(), $2, $3, $4, $5, $6, $7)",
        alert.id,
        action,
        by,
        note,
        state_from or alert.state,
        alert.state,
        data,
    )
    await conn.execute(
        "INSERT INTO alert_events (site_id, alert_id, body) VALUES ($1, $2::uuid, $3)",
        alert.site_id,
        alert.id,
        {**alert.to_json(), "change": action},
    )
    await conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
    await conn.execute("SELECT pg_notify($1, $2)", HUMAN_CHANNEL, json.dumps(_step_payload(alert)))


def _step_payload(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "site_id": alert.site_id,
        "source_type": alert.source_type,
        "source_code": alert.source_code,
        "rule": alert.rule,
        "state": alert.state,
        "acknowledged_at": alert.acknowledged_at,
        "handled_at": alert.handled_at,
        "closed_at": alert.closed_at,
        "shelved_until": alert.shelved_until,
    }


async def shelve(
    conn: db.Conn, alert_id: str, by: str, reason: str, until: dt.datetime | None, max_hours_default: float
) -> Alert:
    """Shelve for a stated reason until `until`, at most (and by default) the site's shift length."""
    async with conn.transaction():
        row = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1::uuid FOR UPDATE OF a", alert_id)
        if row is None:
            raise LookupError(alert_id)
        check_shelve(row["rule"], row["severity"], row["state"], by, reason)
        hours = float(
            (await conn.fetchval("SELECT extra ->> 'shift_hours' FROM sites WHERE id = $1", row["site_id"]))
            or max_hours_default
        )
        latest = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        bounded = min(until, latest) if until is not None else latest
        await conn.execute(
            "UPDATE alerts SET shelved_until = $2, updated_at = now() WHERE id = $1::uuid", alert_id, bounded
        )
        alert = alert_from_row({**dict(row), "shelved_until": bounded})
        await _record_step(conn, alert, "shelve", by, reason, {"until": bounded.isoformat()})
        return alert


async def unshelve(conn: db.Conn, alert_id: str, by: str) -> Alert:
    async with conn.transaction():
        row = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1::uuid FOR UPDATE OF a", alert_id)
        if row is None:
            raise LookupError(alert_id)
        if row["shelved_until"] is None:
            raise TransitionError(409, "the alert is not shelved")
        await conn.execute("UPDATE alerts SET shelved_until = NULL, updated_at = now() WHERE id = $1::uuid", alert_id)
        alert = alert_from_row({**dict(row), "shelved_until": None})
        await _record_step(conn, alert, "unshelve", by, "", {})
        return alert


async def transition(conn: db.Conn, alert_id: str, action: str, by: str, note: str) -> Alert:
    """Apply a human step with the row locked; raises TransitionError, or LookupError if absent."""
    async with conn.transaction():
        row = await conn.fetchrow(f"{_SELECT} WHERE a.id = $1::uuid FOR UPDATE OF a", alert_id)
        if row is None:
            raise LookupError(alert_id)
        target = target_state(action, row["state"], by, note)
        updated = await conn.fetchrow(
            "UPDATE alerts SET state = $2,"
            " acknowledged_at = CASE WHEN $3 IN ('acknowledge', 'handle') THEN coalesce(acknowledged_at, now())"
            " ELSE acknowledged_at END,"
            " handled_at = CASE WHEN $3 = 'handle' THEN now() ELSE handled_at END,"
            " closed_at = CASE WHEN $3 = 'close' THEN now() ELSE closed_at END, updated_at = now()"
            " WHERE id = $1::uuid RETURNING *",
            alert_id,
            target,
            action,
        )
        assert updated is not None  # the row is locked: it cannot have gone
        alert = alert_from_row({**dict(updated), "site": row["site"], "timezone": row["timezone"]})
        await _record_step(conn, alert, action, by, note, {}, state_from=row["state"])
        if action == "close":
            await hazards.rectify_for_alert(conn, alert_id, by=by, note=note)
        return alert
