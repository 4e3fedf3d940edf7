"""The catalog as the evaluator needs it, read from the database."""

from __future__ import annotations

from typing import Any

from sitewatch.rules.base import PointInfo, RuleCatalog, SiteInfo, ZoneInfo
from sitewatch.store import db

_SITE_TUNING = ("power_baseline_kw", "shift_hours", "tag_lost_s", "rainfall_mm_h", "headcount_warn_ratio")


def site_info(r: Any) -> SiteInfo:
    """A row of `sites` as the rule families see it (the API derives zone limits from the same)."""
    extra: dict[str, Any] = r["extra"]
    tuning = {k: extra[k] for k in _SITE_TUNING if k in extra}
    return SiteInfo(r["id"], r["code"], r["kind"], r["timezone"], r["state"], r["shift_capacity"], **tuning)


def zone_info(r: Any) -> ZoneInfo:
    """A row of `zones` as the rule families see it."""
    return ZoneInfo(
        r["site_id"], r["code"], r["name"], r["risk"], r["max_people"], frozenset(r["extra"].get("allow", []))
    )


def point_info(r: Any) -> PointInfo:
    """A row of `points` as the rule families see it: its stored rules are the effective ones."""
    return PointInfo(
        r["id"], r["site_id"], r["code"], r["kind"], r["unit"], r["period_s"], r["pair"], tuple(r["rules"])
    )


async def load(conn: db.Conn) -> RuleCatalog:
    sites = {r["id"]: site_info(r) for r in await conn.fetch("SELECT * FROM sites")}
    zones = {(r["site_id"], r["code"]): zone_info(r) for r in await conn.fetch("SELECT * FROM zones")}
    points = {r["id"]: point_info(r) for r in await conn.fetch("SELECT * FROM points")}
    return RuleCatalog(sites, zones, points)
