"""Webhook delivery: every alert change of an enterprise, POSTed in order to its webhooks, signed,
retried with backoff, every attempt logged.

One API process delivers at a time (a PostgreSQL advisory lock), reading the alert event log from a
cursor per (enterprise, url), so a restart resumes where delivery stopped and nothing is sent twice
once acknowledged with a 2xx. A webhook that fails holds its later events back (order is kept)
and is retried after 1, 2, 4, … 60 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import asyncpg
import httpx

from services.api.events import EventBell
from sitewatch.store import db

log = logging.getLogger("sitewatch.webhooks")

_LOCK_KEY = 0x5157_0003
MAX_BACKOFF_S = 60.0
TIMEOUT_S = 5.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + HMAC-SHA256 of "{timestamp}.{body}": the receiver recomputes it to check the
    sender and that the timestamp (against replays) was not altered."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookDeliverer:
    def __init__(self, dsn: str, bell: EventBell) -> None:
        self.dsn = dsn
        self.bell = bell
        self._retry: dict[tuple[str, str], tuple[int, float]] = {}  # (enterprise, url) → (attempt, not before)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            while True:
                try:
                    conn = await db.connect(self.dsn)
                    try:
                        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                            while True:
                                await self._round(conn, client)
                                await self.bell.wait(1.0)
                    finally:
                        await conn.close()
                except db.UNAVAILABLE as exc:
                    log.warning("webhook delivery paused: %s", exc)
                await asyncio.sleep(5.0)  # another process delivers, or the database is away

    async def _round(self, conn: asyncpg.Connection[Any], client: httpx.AsyncClient) -> None:
        rows = await conn.fetch(
            "SELECT code, extra -> 'webhooks' AS hooks FROM enterprises"
            " WHERE jsonb_array_length(coalesce(extra -> 'webhooks', '[]')) > 0"
        )
        for row in rows:
            for hook in row["hooks"]:
                await self._deliver(conn, client, row["code"], hook["url"], hook["secret"])

    async def _deliver(
        self, conn: asyncpg.Connection[Any], client: httpx.AsyncClient, enterprise: str, url: str, secret: str
    ) -> None:
        key = (enterprise, url)
        attempt, not_before = self._retry.get(key, (0, 0.0))
        if time.monotonic() < not_before:
            return
        cursor = await conn.fetchval(
            "SELECT last_event_id FROM webhook_cursors WHERE enterprise = $1 AND url = $2", enterprise, url
        )
        if cursor is None:  # the catalog load sets it; a webhook added in SQL starts from now
            await conn.execute(
                "INSERT INTO webhook_cursors (enterprise, url, last_event_id)"
                " SELECT $1, $2, coalesce(max(id), 0) FROM alert_events",
                enterprise,
                url,
            )
            return
        events = await conn.fetch(
            "SELECT e.id, e.body FROM alert_events e JOIN sites s ON s.id = e.site_id"
            " WHERE s.enterprise = $1 AND e.id > $2 ORDER BY e.id LIMIT 100",
            enterprise,
            cursor,
        )
        for event in events:
            body = json.dumps({"event_id": event["id"], **event["body"]}, ensure_ascii=False).encode()
            stamp = str(int(time.time()))
            status: int | None = None
            error: str | None = None
            try:
                response = await client.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Sitewatch-Event-Id": str(event["id"]),
                        "X-Sitewatch-Timestamp": stamp,
                        "X-Sitewatch-Signature": signature(secret, stamp, body),
                    },
                )
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivered = status is not None and 200 <= status < 300
            attempt += 1
            await conn.execute(
                "INSERT INTO webhook_deliveries (enterprise, url, event_id, attempt, status, error, delivered)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                enterprise,
                url,
                event["id"],
                attempt,
                status,
                error,
                delivered,
            )
            if not delivered:
                self._retry[key] = (attempt, time.monotonic() + min(MAX_BACKOFF_S, 2.0 ** (attempt - 1)))
                return
            await conn.execute(
                "UPDATE webhook_cursors SET last_event_id = $3 WHERE enterprise = $1 AND url = $2",
                enterprise,
                url,
                event["id"],
            )
            attempt = 0
            self._retry.pop(key, None)
