"""One LISTEN connection per API process wakes every open SSE stream when alert events arrive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from sitewatch.store import alerts as alert_store
from sitewatch.store import db

log = logging.getLogger("sitewatch.api")


class EventBell:
    """Rings on every NOTIFY of the alert-event channel; streams wait on it (with a timeout, so a
    lost connection costs at most one poll interval, never an event)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._changed = asyncio.Condition()
        self._conn: asyncpg.Connection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_listening())

    async def _keep_listening(self) -> None:
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await db.connect(self.dsn)
                    await self._conn.add_listener(alert_store.EVENTS_CHANNEL, lambda *_: self._ring())
                    self._ring()  # catch up on what happened while not listening
            except db.UNAVAILABLE as exc:
                log.warning("alert event listener: %s", exc)
            await asyncio.sleep(2.0)

    def _ring(self) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, timeout: float) -> None:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._conn is not None:
            await self._conn.close()
