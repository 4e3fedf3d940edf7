"""Reports: the daily same-day figures, as JSON or CSV."""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Response, status

from services.api.deps import Pool, Principal, visible_codes
from sitewatch.store import reports

router = APIRouter(prefix="/api/v1", tags=["reports"])

MEDIA = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
DOWNLOADS: dict[int | str, dict[str, Any]] = {200: {"content": {media: {} for media in MEDIA.values()}}}


def _date(date: str | None) -> dt.date:
    try:
        return dt.date.fromisoformat(date) if date else dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"date: expected YYYY-MM-DD, got {date!r}") from exc


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """The first day of `month` (YYYY-MM) and of the month after."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"month: expected YYYY-MM, got {month!r}") from exc
    return first, (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


@router.get("/reports/monthly", responses=DOWNLOADS)
async def monthly(
    pool: Pool,
    principal: Principal,
    month: Annotated[str | None, Query(description="YYYY-MM; default this month")] = None,
    site: str | None = None,
    format: Format = "json",
) -> Any:
    """The regulators' monthly dispatch table: major hazards found by the enterprise's own checks,
    by department inspection and listed for government supervision, each with how many of them are
    rectified, per site, enterprise and in total, beside the month's alerts raised and overdue."""
    first, _ = month_bounds(month or _date(None).strftime("%Y-%m"))
    report = await reports.monthly(pool, first, sites=await visible_codes(pool, principal), site=site)
    if format == "json":
        return report
    return _download(
        f"monthly-{report['month']}",
        format,
        [{"month": report["month"], **row} for row in report["sites"]]
        + [{"month": report["month"], "site": "", **row} for row in report["enterprises"]],
    )


Format = Literal["json", "csv", "xlsx"]


def _download(name: str, fmt: str, rows: list[dict[str, Any]]) -> Response:
    """The report's rows as a CSV or Excel download, through pandas."""
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        body: bytes = frame.to_csv(index=False).encode("utf-8-sig")  # with a BOM: Excel opens Chinese right
    else:
        buffer = io.BytesIO()
        frame.to_excel(buffer, index=False, sheet_name=name.split("-")[0])
        body = buffer.getvalue()
    return Response(
        body, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    )


@router.get("/reports/alarm-load", responses=DOWNLOADS)
async def alarm_load(
    pool: Pool,
    principal: Principal,
    date: Annotated[str | None, Query(description="YYYY-MM-DD, each site's local date; default today")] = None,
    site: str | None = None,
    format: Format = "json",
) -> Any:
    """Per site: activations per 10 minutes (average over the day and the busiest), floods (10 or
    more in 10 minutes) and the top chattering sources (3 or more activations within a minute)."""
    report = await reports.alarm_load(pool, _date(date), sites=await visible_codes(pool, principal), site=site)
    if format == "json":
        return report
    return _download(
        f"alarm-load-{report['date']}",
        format,
        [
            {
                "date": report["date"],
                **{k: v for k, v in row.items() if k != "chattering"},
                "chattering": "; ".join(
                    f"{c['source']['code']} {c['rule']} ×{c['activations']}" for c in row["chattering"]
                ),
            }
            for row in report["sites"]
        ],
    )


@router.get("/reports/daily", responses=DOWNLOADS)
async def daily(
    pool: Pool,
    principal: Principal,
    date: Annotated[
        str | None, Query(description="YYYY-MM-DD, each site's local date; default today in Asia/Shanghai")
    ] = None,
    site: str | None = None,
    format: Format = "json",
) -> Any:
    """Per site and enterprise: alerts raised that local day, closed on time, closed late, still
    open, overdue; mean and p90 seconds to acknowledge and to close."""
    day = _date(date)
    report = await reports.daily(pool, day, sites=await visible_codes(pool, principal), site=site)
    if format == "json":
        return report
    return _download(
        f"daily-{report['date']}",
        format,
        [{"date": report["date"], **row} for row in report["sites"]]
        + [{"date": report["date"], "site": "", **row} for row in report["enterprises"]],
    )
