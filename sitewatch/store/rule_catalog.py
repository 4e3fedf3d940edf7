"""The catalog as the evaluator needs it, read from the database."""

from __future__ import annotations

from typing import Any

from sitewatch.rules.base import PointInfo, RuleCatalog, SiteInfo, ZoneInfo
from sitewatch.store import db

_SITE_TUNING = ("power_baseline_kw", "shift_hours", "tag_lost_s", "rainfall_mm_h", "headcount_warn_ratio")


async def load(conn: db.Conn) -> RuleCatalog:
    sites = {}
    for r in await conn.fetch("SELECT * FROM sites"):
        extra: dict[str, Any] = r["extra"]
        tuning = {k: extra[k] for k in _SITE_TUNING if k in extra}
        sites[r["id"]] = SiteInfo(
            r["id"], r["code"], r["kind"], r["timezone"], r["state"], r["shift_capacity"], **tuning
        )
    zones = {
        (r["site_id"], r["code"]): ZoneInfo(
            r["site_id"], r["code"], r["name"], r["risk"], r["max_people"], frozenset(r["extra"].get("allow", []))
        )
        for r in await conn.fetch("SELECT * FROM zones")
    }
    points = {
        r["id"]: PointInfo(
            r["id"], r["site_id"], r["code"], r["kind"], r["unit"], r["period_s"], r["pair"], tuple(r["rules"])
        )
        for r in await conn.fetch("SELECT * FROM points")
    }
    return RuleCatalog(sites, zones, points)
