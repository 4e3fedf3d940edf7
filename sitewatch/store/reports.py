"""Reports regulators and safety directors read, computed in SQL over the alert store."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sitewatch.store import db

# Per site, per enterprise and in total (GROUPING SETS), for the alerts raised on the local date:
# the same-day rule is about the day an alert was raised, in its site's time zone.
_DAILY = """
SELECT s.enterprise, s.code AS site, grouping(s.code) AS by_enterprise, grouping(s.enterprise) AS total,
       count(a.id) AS raised,
       count(a.id) FILTER (WHERE a.state = 'closed' AND NOT a.overdue) AS closed_on_time,
       count(a.id) FILTER (WHERE a.state = 'closed' AND a.overdue) AS closed_late,
       count(a.id) FILTER (WHERE a.state <> 'closed') AS open,
       count(a.id) FILTER (WHERE a.overdue) AS overdue,
       avg(extract(epoch FROM a.acknowledged_at - a.raised_at)) AS ack_mean_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.raised_at)) AS ack_p90_s,
       avg(extract(epoch FROM a.closed_at - a.raised_at)) AS close_mean_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.closed_at - a.raised_at)) AS close_p90_s
FROM sites s
LEFT JOIN alerts a ON a.site_id = s.id
     AND a.raised_at >= ($1::date)::timestamp AT TIME ZONE s.timezone
     AND a.raised_at < ($1::date + 1)::timestamp AT TIME ZONE s.timezone
WHERE ($2::text[] IS NULL OR s.code = ANY($2)) AND ($3::text IS NULL OR s.code = $3)
GROUP BY GROUPING SETS ((s.enterprise, s.code), (s.enterprise), ())
ORDER BY grouping(s.enterprise), s.enterprise, grouping(s.code), s.code
"""

FIGURES = (
    "raised",
    "closed_on_time",
    "closed_late",
    "open",
    "overdue",
    "ack_mean_s",
    "ack_p90_s",
    "close_mean_s",
    "close_p90_s",
)


async def daily(conn: db.Queryable, date: dt.date, *, sites: list[str] | None, site: str | None) -> dict[str, Any]:
    """Raised, closed on time, closed late, still open, overdue, and the mean and p90 times to
    acknowledge and to close, per site, per enterprise and in total."""
    rows = await conn.fetch(_DAILY, date, sites, site)

    def figures(r: Any) -> dict[str, Any]:
        return {k: (round(float(r[k]), 1) if r[k] is not None and k.endswith("_s") else r[k]) for k in FIGURES}

    return {
        "date": date.isoformat(),
        "sites": [
            {"site": r["site"], "enterprise": r["enterprise"], **figures(r)} for r in rows if not r["by_enterprise"]
        ],
        "enterprises": [
            {"enterprise": r["enterprise"], **figures(r)} for r in rows if r["by_enterprise"] and not r["total"]
        ],
        "total": next((figures(r) for r in rows if r["total"]), dict.fromkeys(FIGURES, 0)),
    }
