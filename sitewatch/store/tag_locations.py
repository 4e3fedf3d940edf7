"""Each tag's latest position, kept by the ingest writer beside the positions rows it stores.

The live headcount per zone is read from here, so it follows the positioning rules (DOMAIN §2.1,
`sitewatch.rules.positioning`): a tag's events apply in event-time order; an event not newer than
the tag's latest one changes nothing (at the same millisecond the first wins); `locate` puts the
tag in its zone, `exit` takes it off site, `sos` locates it when it names a zone and keeps its zone
otherwise. `since` is when the tag entered the zone it is in (or left the site).

A batch is folded per tag first and written with one UPDATE: concurrent writers may hold the same
tag, so each locks the tags of its batch (in one order, so they cannot deadlock) and folds its
events onto what is stored, never onto a stale copy. Events older than a tag's stored one are
late, even when they reach the database in a batch committed after a newer one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter

from sitewatch.store import db

LOCATE, EXIT, SOS = 0, 1, 2

Key = tuple[int, str]
"""(site id, tag)"""
Event = tuple[int, int, str | None]
"""(ts ms, kind, zone)"""


@dataclass(frozen=True, slots=True)
class Location:
    ts_ms: int  # the tag's latest accepted event
    zone: str | None  # None: off site
    since_ms: int


def fold(location: Location | None, events: Iterable[Event]) -> Location | None:
    """The tag's location after `events` (in arrival order), from `location` (None: never seen)."""
    for ts, kind, zone in sorted(events, key=itemgetter(0)):  # stable: the first of equal times wins
        if location is not None and ts <= location.ts_ms:
            continue
        before = location.zone if location is not None else None
        after = None if kind == EXIT else zone if zone is not None else before
        stays = location is not None and after == before
        location = Location(ts, after, location.since_ms if location is not None and stays else ts)
    return location


def by_tag(positions: Iterable[tuple[int, int, int, str, int, str | None]]) -> dict[Key, list[Event]]:
    """A batch's position rows (msg, site id, ts ms, tag, kind, zone) grouped per tag, in order."""
    out: dict[Key, list[Event]] = {}
    for _, site, ts, tag, kind, zone in positions:
        out.setdefault((site, tag), []).append((ts, kind, zone))
    return out


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


async def apply(conn: db.Conn, events: dict[Key, list[Event]]) -> int:
    """Fold each tag's events onto its stored location, in the caller's transaction; returns how
    many tags changed. A row is created first for tags never seen (a placeholder at -infinity) so
    that every tag of the batch has a row to lock."""
    if not events:
        return 0
    keys = sorted(events)
    sites, tags = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(
        "INSERT INTO tag_locations (site_id, tag, ts, zone, since)"
        " SELECT site_id, tag, '-infinity', NULL, '-infinity' FROM unnest($1::int[], $2::text[]) AS u(site_id, tag)"
        " ORDER BY site_id, tag ON CONFLICT DO NOTHING",
        sites,
        tags,
    )
    rows = await conn.fetch(
        "SELECT t.site_id, t.tag, t.zone, (extract(epoch FROM nullif(t.ts, '-infinity')) * 1000)::bigint AS ts,"
        " (extract(epoch FROM nullif(t.since, '-infinity')) * 1000)::bigint AS since"
        " FROM tag_locations t JOIN unnest($1::int[], $2::text[]) AS u(site_id, tag) USING (site_id, tag)"
        " ORDER BY t.site_id, t.tag FOR UPDATE OF t",
        sites,
        tags,
    )
    changed = []
    for r in rows:
        stored = None if r["ts"] is None else Location(r["ts"], r["zone"], r["since"])
        location = fold(stored, events[(r["site_id"], r["tag"])])
        if location is not None and location != stored:
            changed.append((r["site_id"], r["tag"], _ts(location.ts_ms), location.zone, _ts(location.since_ms)))
    if changed:
        await conn.execute(
            "UPDATE tag_locations t SET ts = u.ts, zone = u.zone, since = u.since"
            " FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[])"
            " AS u(site_id, tag, ts, zone, since) WHERE t.site_id = u.site_id AND t.tag = u.tag",
            *(list(col) for col in zip(*changed, strict=True)),
        )
    return len(changed)
