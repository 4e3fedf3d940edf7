"""Alerts: queries, one alert with its history, and the human steps of the same-day loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from services.api import board
from services.api.deps import Pool, Principal, not_found, require_uuid, visible_codes
from services.api.errors import errors
from services.api.schemas import Alert as AlertObject
from services.api.schemas import AlertPage, ok
from services.api.timefmt import local, parse_time
from sitewatch import auth
from sitewatch.alerts import Alert
from sitewatch.catalog.rules import SHIFT_HOURS
from sitewatch.lifecycle import TransitionError
from sitewatch.store import alerts as alert_store

router = APIRouter(prefix="/api/v1", tags=["alerts"])
BIGINT = 2**63 - 1  # PostgreSQL's bigint: event ids, and offsets beyond it are refused (not a 500)
STEP = {**ok(AlertObject), **errors(409)}  # what a step answers: the alert, or 409 if its state does not allow it


class Shelve(BaseModel):
    by: str = Field(min_length=1, max_length=200, description="who shelves it")
    note: str = Field(default="", max_length=4000, description="why: required")
    until: str | None = Field(default=None, description="RFC 3339; at most (and by default) one shift from now")


class Step(BaseModel):
    by: str = Field(min_length=1, max_length=200, description="who does this (name or seat)")
    note: str = Field(default="", max_length=4000, description="required to handle: the disposition")


async def _alert_for(pool: Any, principal: auth.Principal, alert_id: str) -> Alert:
    """The alert if it exists and the caller may see it; 404 otherwise (no hint that it exists)."""
    require_uuid("alert", alert_id)
    alert = await alert_store.get(pool, alert_id)
    sites = await visible_codes(pool, principal)
    if alert is None or (sites is not None and alert.site not in sites):
        raise not_found("alert", alert_id)
    return alert


@router.get("/alerts", response_model=None, responses=ok(AlertPage))
async def list_alerts(
    pool: Pool,
    principal: Principal,
    site: str | None = None,
    state: Literal["open", "acknowledged", "handled", "closed"] | None = None,
    severity: Annotated[int | None, Query(ge=1, le=4)] = None,
    since: Annotated[str | None, Query(description="raised at or after: RFC 3339 or epoch ms")] = None,
    until: Annotated[str | None, Query(description="raised before: RFC 3339 or epoch ms")] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=BIGINT)] = 0,
) -> dict[str, Any]:
    """Alerts the caller may see, most severe and newest first, `limit` at a time from `offset`."""
    total, alerts = await alert_store.query(
        pool,
        sites=await visible_codes(pool, principal),
        site=site,
        state=state,
        severity=severity,
        since=parse_time(since, "since") if since else None,
        until=parse_time(until, "until") if until else None,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return {"total": total, "limit": limit, "offset": offset, "alerts": [a.to_json() for a in alerts]}


KEEPALIVE_S = 15.0
AROUND_S = 600  # the readings of a point alert's source shown around its raise, each side
QUALITY = ("good", "uncertain", "bad")


def _event_id(header: str | None) -> int | None:
    """A `Last-Event-ID` as an event id, None (from now on) if it cannot be one of ours: ASCII
    digits within bigint (`str.isdigit` also takes "²", which `int` refuses)."""
    if header and header.isascii() and header.isdigit() and int(header) <= BIGINT:
        return int(header)
    return None


@router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "one SSE event per alert change"}},
)
async def stream(
    request: Request,
    pool: Pool,
    principal: Principal,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=BIGINT, description="resume after this event id (for clients without headers)")
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: every alert change, as on MQTT. Each event's `id` is its position in the
    alert event log: a client that reconnects with `Last-Event-ID` gets exactly what it missed."""
    sites = await visible_codes(pool, principal)
    resume = after if after is not None else _event_id(last_event_id)
    start = resume if resume is not None else int(await pool.fetchval("SELECT coalesce(max(id), 0) FROM alert_events"))
    bell = request.app.state.bell

    async def events() -> AsyncIterator[str]:
        last = start
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            rows = await alert_store.events_after(pool, last, sites)
            for row in rows:
                last = row["id"]
                yield f"id: {last}\nevent: alert\ndata: {json.dumps(row['body'], ensure_ascii=False)}\n\n"
            if not rows:
                await bell.wait(KEEPALIVE_S)
                yield ": keepalive\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/alerts/{alert_id}", response_model=None, responses=ok(AlertObject))
async def get_alert(pool: Pool, principal: Principal, alert_id: str) -> dict[str, Any]:
    """One alert with its full, append-only history, what its source is (a point with its
    threshold levels, a zone with the people in it now) and, for a point's alert, its readings
    from 10 minutes before to 10 minutes after the raise."""
    alert = await _alert_for(pool, principal, alert_id)
    steps = await alert_store.history(pool, alert.id)
    around = await alert_store.readings_around(pool, alert, window_s=AROUND_S)
    return {
        **alert.to_json(),
        "source_info": await board.source_info(pool, alert),
        "readings": [
            {"ts": local(r["ts"], alert.timezone), "value": r["value"], "quality": QUALITY[r["quality"]]}
            for r in around
        ],
        "history": [
            {
                "at": local(h["at"], alert.timezone),
                "action": h["action"],
                "by": h["actor"],
                "note": h["note"],
                "from": h["state_from"],
                "to": h["state_to"],
                "data": h["data"],
            }
            for h in steps
        ],
    }


def _push(request: Request, alert: Alert, change: str) -> dict[str, Any]:
    """The alert object of a human step, pushed on MQTT like every other change."""
    out = {**alert.to_json(), "change": change}
    publisher = request.app.state.publisher
    if publisher is not None:
        publisher.publish(f"sw/v1/{alert.site}/alerts", json.dumps(out, ensure_ascii=False).encode(), qos=1)
    return out


async def _step(
    request: Request, pool: Any, principal: auth.Principal, alert_id: str, action: str, body: Step
) -> dict[str, Any]:
    await _alert_for(pool, principal, alert_id)
    try:
        async with pool.acquire() as conn:
            alert = await alert_store.transition(conn, alert_id, action, body.by, body.note)
    except TransitionError as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    return _push(request, alert, action)


@router.post("/alerts/{alert_id}/shelve", response_model=None, responses=STEP)
async def shelve(request: Request, pool: Pool, principal: Principal, alert_id: str, body: Shelve) -> dict[str, Any]:
    """Shelve a chattering or known-bad source for a stated reason and a bounded time (ISA-18.2):
    still recorded and shown greyed, unshelved automatically on expiry. Never SOS, headcount or red."""
    await _alert_for(pool, principal, alert_id)
    until = parse_time(body.until, "until") if body.until else None
    try:
        async with pool.acquire() as conn:
            alert = await alert_store.shelve(conn, alert_id, body.by, body.note, until, max_hours_default=SHIFT_HOURS)
    except TransitionError as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    return _push(request, alert, "shelve")


@router.post("/alerts/{alert_id}/unshelve", response_model=None, responses=STEP)
async def unshelve(request: Request, pool: Pool, principal: Principal, alert_id: str, body: Step) -> dict[str, Any]:
    """Show a shelved alert again before its time is up."""
    await _alert_for(pool, principal, alert_id)
    try:
        async with pool.acquire() as conn:
            alert = await alert_store.unshelve(conn, alert_id, body.by)
    except TransitionError as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    return _push(request, alert, "unshelve")


@router.post("/alerts/{alert_id}/acknowledge", response_model=None, responses=STEP)
async def acknowledge(request: Request, pool: Pool, principal: Principal, alert_id: str, body: Step) -> dict[str, Any]:
    """签收: open → acknowledged."""
    return await _step(request, pool, principal, alert_id, "acknowledge", body)


@router.post("/alerts/{alert_id}/handle", response_model=None, responses=STEP)
async def handle(request: Request, pool: Pool, principal: Principal, alert_id: str, body: Step) -> dict[str, Any]:
    """处置: → handled, with the disposition in `note` (required)."""
    return await _step(request, pool, principal, alert_id, "handle", body)


@router.post("/alerts/{alert_id}/close", response_model=None, responses=STEP)
async def close(request: Request, pool: Pool, principal: Principal, alert_id: str, body: Step) -> dict[str, Any]:
    """销号: handled → closed. Closing after the due time leaves the alert counted as late."""
    return await _step(request, pool, principal, alert_id, "close", body)
