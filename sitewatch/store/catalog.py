"""Loading a validated catalog: one transaction of upserts, reported as what changed.

A document adds and updates; it never deletes (a point with years of readings does not vanish
because a later document left it out). Unchanged rows are not touched, so loading the same
document twice reports nothing changed and keeps `updated_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from sitewatch import shards
from sitewatch.catalog.broker import hash_password, verify_password
from sitewatch.catalog.models import Catalog
from sitewatch.catalog.validate import Existing
from sitewatch.store import db

NOTIFY_CHANNEL = "sitewatch_catalog"


@dataclass(slots=True)
class LoadResult:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    gateways_changed: bool = False

    def count(self, kind: str, status: str) -> None:
        bucket = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}[status]
        bucket[kind] = bucket.get(kind, 0) + 1

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


async def existing(conn: db.Conn) -> Existing:
    sites = {r["code"]: r["enterprise"] for r in await conn.fetch("SELECT code, enterprise FROM sites")}

    async def pairs(table: str) -> set[tuple[str, str]]:
        rows = await conn.fetch(f"SELECT s.code AS site, t.code FROM {table} t JOIN sites s ON s.id = t.site_id")
        return {(r["site"], r["code"]) for r in rows}

    return Existing(
        enterprises={r["code"] for r in await conn.fetch("SELECT code FROM enterprises")},
        sites=sites,
        gateways=await pairs("gateways"),
        zones=await pairs("zones"),
        points=await pairs("points"),
        tags=await pairs("tags"),
    )


def _extra(model: BaseModel, columns: set[str]) -> dict[str, Any]:
    return {k: v for k, v in model.model_dump(mode="json", exclude_none=True).items() if k not in columns}


async def _upsert(conn: db.Conn, table: str, key: dict[str, Any], values: dict[str, Any]) -> str:
    """Insert or update one row; 'created', 'updated' or 'unchanged'."""
    cols = [*key, *values]
    params = [*key.values(), *values.values()]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(cols)))
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in values)
    differs = " OR ".join(f"{table}.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in values)
    row = await conn.fetchrow(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}, updated_at = now() WHERE {differs}"
        " RETURNING (xmax = 0) AS inserted",
        *params,
    )
    if row is None:
        return "unchanged"
    return "created" if row["inserted"] else "updated"


async def apply(conn: db.Conn, catalog: Catalog) -> LoadResult:
    """Write `catalog` in one transaction and notify the services that read it."""
    result = LoadResult()
    async with conn.transaction():
        for e in catalog.enterprises:
            status = await _upsert(
                conn, "enterprises", {"code": e.code}, {"name": e.name, "extra": _extra(e, {"code", "name"})}
            )
            result.count("enterprises", status)
            for hook in e.webhooks:  # a new webhook gets the alert changes from this load on
                await conn.execute(
                    "INSERT INTO webhook_cursors (enterprise, url, last_event_id)"
                    " SELECT $1, $2, coalesce(max(id), 0) FROM alert_events ON CONFLICT DO NOTHING",
                    e.code,
                    hook.url,
                )
        site_cols = {"code", "enterprise", "name", "kind", "timezone", "state", "shift_capacity"}
        for s in catalog.sites:
            status = await _upsert(
                conn,
                "sites",
                {"code": s.code},
                {
                    "enterprise": s.enterprise,
                    "name": s.name,
                    "kind": s.kind,
                    "timezone": s.timezone,
                    "state": s.state,
                    "shift_capacity": s.shift_capacity,
                    "extra": _extra(s, site_cols),
                },
            )
            result.count("sites", status)
        site_ids = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM sites")}
        hashes = {
            (r["site_id"], r["code"]): r["password_hash"]
            for r in await conn.fetch("SELECT site_id, code, password_hash FROM gateways")
        }
        for g in catalog.gateways:
            sid = site_ids[g.site]
            old = hashes.get((sid, g.code))
            hashed = old if old is not None and verify_password(g.password, old) else hash_password(g.password)
            status = await _upsert(
                conn,
                "gateways",
                {"site_id": sid, "code": g.code},
                {"password_hash": hashed, "extra": _extra(g, {"code", "site", "password"})},
            )
            result.count("gateways", status)
            result.gateways_changed |= status != "unchanged"
        for z in catalog.zones:
            status = await _upsert(
                conn,
                "zones",
                {"site_id": site_ids[z.site], "code": z.code},
                {
                    "name": z.name,
                    "risk": z.risk,
                    "max_people": z.max_people,
                    "extra": _extra(z, {"code", "site", "name", "risk", "max_people"}),
                },
            )
            result.count("zones", status)
        for p in catalog.points:
            status = await _upsert(
                conn,
                "points",
                {"site_id": site_ids[p.site], "code": p.code},
                {
                    "kind": p.kind,
                    "unit": p.unit,
                    "period_s": float(p.period_s),
                    "pair": p.pair,
                    "rules": catalog.effective_rules(p),
                    "rules_set": p.rules is not None,
                    "extra": _extra(p, {"code", "site", "kind", "unit", "period_s", "pair", "rules"}),
                },
            )
            result.count("points", status)
        for t in catalog.tags:
            status = await _upsert(
                conn,
                "tags",
                {"site_id": site_ids[t.site], "code": t.code},
                {"person": t.person, "extra": _extra(t, {"code", "site", "person"})},
            )
            result.count("tags", status)
        if result.changed:
            await shards.assign_new_sites(conn)  # in the same transaction: no delivery finds a site unowned
            await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return result
