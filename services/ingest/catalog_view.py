"""What ingest needs of the catalog: site ids, point ids and zone codes, by site code.

Kept on disk too, so ingest can start and spool while PostgreSQL is down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg


@dataclass(slots=True)
class SiteView:
    site_id: int
    points: dict[str, int] = field(default_factory=dict)
    zones: set[str] = field(default_factory=set)
    shard: int = 0  # the shard that owns the site when workers are sharded (docs/scaling.md)


async def load(conn: asyncpg.Connection[Any]) -> dict[str, SiteView]:
    sites = {
        r["code"]: SiteView(r["id"], shard=r["shard"])
        for r in await conn.fetch(
            "SELECT s.id, s.code, coalesce(ss.shard, 0) AS shard"
            " FROM sites s LEFT JOIN site_shards ss ON ss.site_id = s.id"
        )
    }
    by_id = {v.site_id: v for v in sites.values()}
    for r in await conn.fetch("SELECT site_id, code, id FROM points"):
        by_id[r["site_id"]].points[r["code"]] = r["id"]
    for r in await conn.fetch("SELECT site_id, code FROM zones"):
        by_id[r["site_id"]].zones.add(r["code"])
    return sites


def save(path: Path, sites: dict[str, SiteView]) -> None:
    doc = {
        code: {"id": v.site_id, "points": v.points, "zones": sorted(v.zones), "shard": v.shard}
        for code, v in sites.items()
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.rename(path)


def read(path: Path) -> dict[str, SiteView]:
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {code: SiteView(v["id"], v["points"], set(v["zones"]), v.get("shard", 0)) for code, v in doc.items()}
