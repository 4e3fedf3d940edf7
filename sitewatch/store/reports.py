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


# Activations (raises and re-triggers) of each site's local day.
_ACTIVATIONS = """
WITH day AS (
    SELECT s.id, s.code, ($1::date)::timestamp AT TIME ZONE s.timezone AS lo,
           ($1::date + 1)::timestamp AT TIME ZONE s.timezone AS hi
    FROM sites s WHERE ($2::text[] IS NULL OR s.code = ANY($2)) AND ($3::text IS NULL OR s.code = $3)
)
SELECT d.code AS site, a.source_type, a.source_code, a.rule, h.at
FROM alert_history h JOIN alerts a ON a.id = h.alert_id JOIN day d ON d.id = a.site_id
WHERE h.action IN ('raise', 'retrigger') AND h.at >= d.lo AND h.at < d.hi
ORDER BY h.at
"""

FLOOD = 10  # alarms within 10 minutes (EEMUA 191, ISA-18.2)
CHATTER = 3  # activations of one source within a minute


def busiest(times: list[dt.datetime], window: dt.timedelta) -> int:
    """The most activations within any `window` (sliding, not in fixed bins); `times` sorted."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def alarm_load(conn: db.Queryable, date: dt.date, *, sites: list[str] | None, site: str | None) -> dict[str, Any]:
    """The alarm-management norm's figures per site: activations per 10 minutes (about one is
    steady operation), floods (10 or more within 10 minutes, as 10-minute periods that start
    one) and the top chattering sources (3 or more activations within a minute: they need a
    deadband or an on-delay)."""
    rows = await conn.fetch(_ACTIVATIONS, date, sites, site)
    per_site: dict[str, list[Any]] = {}
    for r in rows:
        per_site.setdefault(r["site"], []).append(r)
    ten, minute = dt.timedelta(minutes=10), dt.timedelta(minutes=1)
    out = []
    for code, acts in sorted(per_site.items()):
        times = [r["at"] for r in acts]
        floods, i = 0, 0
        while i < len(times):  # count flood periods: each starts at an activation and lasts 10 minutes
            j = i
            while j < len(times) and times[j] - times[i] < ten:
                j += 1
            if j - i >= FLOOD:
                floods += 1
                i = j
            else:
                i += 1
        sources: dict[tuple[str, str, str], list[dt.datetime]] = {}
        for r in acts:
            sources.setdefault((r["source_type"], r["source_code"], r["rule"]), []).append(r["at"])
        chattering: list[dict[str, Any]] = [
            {
                "source": {"type": k[0], "code": k[1]},
                "rule": k[2],
                "activations": len(v),
                "max_per_minute": busiest(v, minute),
            }
            for k, v in sources.items()
            if busiest(v, minute) >= CHATTER
        ]
        chattering.sort(key=lambda c: (-c["activations"], c["source"]["code"]))
        out.append(
            {
                "site": code,
                "activations": len(times),
                "per_10min_avg": round(len(times) / 144, 2),
                "per_10min_max": busiest(times, ten),
                "floods": floods,
                "chattering": chattering[:10],
            }
        )
    return {"date": date.isoformat(), "flood_threshold": FLOOD, "chatter_threshold": CHATTER, "sites": out}


# The regulators' monthly dispatch table (重大事故隐患专项排查整治 行动进展情况调度表): hazards found in the
# month by source and, of those, rectified; beside them the month's alert figures. Per site; the
# enterprise and total rows are sums.
_MONTHLY = """
WITH month AS (
    SELECT s.id, s.code, s.enterprise, $1::timestamp AT TIME ZONE s.timezone AS lo,
           $2::timestamp AT TIME ZONE s.timezone AS hi
    FROM sites s WHERE ($3::text[] IS NULL OR s.code = ANY($3)) AND ($4::text IS NULL OR s.code = $4)
)
SELECT m.code AS site, m.enterprise,
       (SELECT count(*) FROM hazards h WHERE h.site_id = m.id AND h.found_at >= m.lo AND h.found_at < m.hi
          AND h.source = 'self_check') AS self_check_found,
       (SELECT count(*) FROM hazards h WHERE h.site_id = m.id AND h.found_at >= m.lo AND h.found_at < m.hi
          AND h.source = 'self_check' AND h.rectified_at IS NOT NULL) AS self_check_rectified,
       (SELECT count(*) FROM hazards h WHERE h.site_id = m.id AND h.found_at >= m.lo AND h.found_at < m.hi
          AND h.source = 'inspection') AS inspection_found,
       (SELECT count(*) FROM hazards h WHERE h.site_id = m.id AND h.found_at >= m.lo AND h.found_at < m.hi
          AND h.source = 'inspection' AND h.rectified_at IS NOT NULL) AS inspection_rectified,
       (SELECT count(*) FROM hazards h WHERE h.site_id = m.id AND h.found_at >= m.lo AND h.found_at < m.hi
          AND h.source = 'supervision') AS supervision_found,
       (SELECT count(*) FROM hazards h WHERE h.site_id = m.id AND h.found_at >= m.lo AND h.found_at < m.hi
          AND h.source = 'supervision' AND h.rectified_at IS NOT NULL) AS supervision_rectified,
       (SELECT count(*) FROM alerts a WHERE a.site_id = m.id AND a.raised_at >= m.lo
          AND a.raised_at < m.hi) AS alerts_raised,
       (SELECT count(*) FROM alerts a WHERE a.site_id = m.id AND a.raised_at >= m.lo
          AND a.raised_at < m.hi AND a.overdue) AS alerts_overdue
FROM month m ORDER BY m.enterprise, m.code
"""

MONTHLY_COLUMNS = (
    "self_check_found",
    "self_check_rectified",
    "inspection_found",
    "inspection_rectified",
    "supervision_found",
    "supervision_rectified",
    "alerts_raised",
    "alerts_overdue",
)


# The month's alerts per local day of raise and severity, counted as the daily report counts them.
_MONTH_DAYS = """
SELECT (a.raised_at AT TIME ZONE s.timezone)::date AS day, a.severity, count(*) AS raised,
       count(*) FILTER (WHERE a.state = 'closed' AND NOT a.overdue) AS closed_on_time,
       count(*) FILTER (WHERE a.state = 'closed' AND a.overdue) AS closed_late,
       count(*) FILTER (WHERE a.overdue) AS overdue
FROM alerts a JOIN sites s ON s.id = a.site_id
WHERE ($3::text[] IS NULL OR s.code = ANY($3)) AND ($4::text IS NULL OR s.code = $4)
  AND a.raised_at >= $1::timestamp AT TIME ZONE s.timezone AND a.raised_at < $2::timestamp AT TIME ZONE s.timezone
GROUP BY 1, 2
"""

DAY_COUNTS = ("closed_on_time", "closed_late", "overdue")


async def month_days(
    conn: db.Queryable, first: dt.date, nxt: dt.date, *, sites: list[str] | None, site: str | None
) -> list[dict[str, Any]]:
    """One entry per day of the month: alerts raised that (site-local) day per severity, and of
    them closed on time, closed late and overdue."""
    dates = [first + dt.timedelta(days=i) for i in range((nxt - first).days)]
    raised: dict[dt.date, dict[str, int]] = {d: dict.fromkeys(("1", "2", "3", "4"), 0) for d in dates}
    counts: dict[dt.date, dict[str, int]] = {d: dict.fromkeys(DAY_COUNTS, 0) for d in dates}
    for r in await conn.fetch(_MONTH_DAYS, first, nxt, sites, site):
        raised[r["day"]][str(r["severity"])] += r["raised"]
        for k in DAY_COUNTS:
            counts[r["day"]][k] += r[k]
    return [{"date": d.isoformat(), "raised": raised[d], **counts[d]} for d in dates]


async def monthly(conn: db.Queryable, first: dt.date, *, sites: list[str] | None, site: str | None) -> dict[str, Any]:
    """The six found/rectified columns per site, enterprise and in total for the month starting at
    `first` (each site's local calendar), with the month's alerts raised and overdue beside them,
    and the alerts of each day."""
    nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    rows = [dict(r) for r in await conn.fetch(_MONTHLY, first, nxt, sites, site)]
    enterprises: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(MONTHLY_COLUMNS, 0)
    for r in rows:
        into = enterprises.setdefault(r["enterprise"], dict.fromkeys(MONTHLY_COLUMNS, 0))
        for k in MONTHLY_COLUMNS:
            into[k] += r[k]
            total[k] += r[k]
    return {
        "month": first.strftime("%Y-%m"),
        "sites": [
            {"site": r["site"], "enterprise": r["enterprise"], **{k: r[k] for k in MONTHLY_COLUMNS}} for r in rows
        ],
        "enterprises": [{"enterprise": e, **v} for e, v in sorted(enterprises.items())],
        "total": total,
        "days": await month_days(conn, first, nxt, sites=sites, site=site),
    }
