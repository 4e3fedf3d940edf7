"""No reading lost, none doubled: ingest crashes, ingest outages longer than Mosquitto's default
queue, and PostgreSQL going away mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Any

import asyncpg

from tests.conftest import StackHandle, site_catalog, unique
from tests.test_ingest import make_readings, now_ms, wait_readings


def publish_in_background(
    stack: StackHandle, site: str, messages: int, per_message: int, pause_s: float = 0.005
) -> threading.Thread:
    def run() -> None:
        gw = stack.gateway(site, "GW-1", "gw-secret-1", client_id=f"bg-{site}")
        t0 = now_ms()
        infos = []
        for m in range(messages):
            infos.append(gw.telemetry(make_readings(per_message, t0 + m * per_message)))
            if pause_s:
                threading.Event().wait(pause_s)
        gw.flush(infos, timeout=120)
        gw.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def new_site(stack: StackHandle) -> str:
    code = unique("F")
    assert stack.load_catalog(site_catalog(code)).status_code == 200
    return code


async def test_ingest_killed_mid_stream_loses_and_doubles_nothing(
    stack: StackHandle, pg: asyncpg.Connection[Any]
) -> None:
    site = new_site(stack)
    publisher = publish_in_background(stack, site, messages=400, per_message=50)
    await asyncio.sleep(0.8)
    os.kill(stack.status["components"]["ingest"]["pid"], signal.SIGKILL)
    await asyncio.sleep(0.5)
    stack.up()
    await asyncio.to_thread(publisher.join, 120)
    assert await wait_readings(pg, site, 400 * 50) == 400 * 50


async def test_ingest_down_while_more_than_1000_messages_queue(stack: StackHandle, pg: asyncpg.Connection[Any]) -> None:
    site = new_site(stack)
    stack.down("ingest")
    publisher = publish_in_background(stack, site, messages=1500, per_message=10, pause_s=0)
    await asyncio.to_thread(publisher.join, 120)
    assert not publisher.is_alive()
    stack.up()
    assert await wait_readings(pg, site, 1500 * 10) == 1500 * 10


async def test_postgres_stopped_mid_stream_spool_replays_everything(stack: StackHandle) -> None:
    site = new_site(stack)
    publisher = publish_in_background(stack, site, messages=300, per_message=50, pause_s=0.01)
    await asyncio.sleep(0.8)
    stack.down("postgres")
    await asyncio.to_thread(publisher.join, 120)
    with stack.http() as c:  # the API answers without its database; ingest reports what it spooled
        metrics = c.get("/metrics").text
        assert c.get("/readyz").status_code == 503
    spooled = next(line for line in metrics.splitlines() if line.startswith("sitewatch_ingest_spool_batches "))
    assert float(spooled.split()[1]) > 0
    assert "sitewatch_ingest_db_up 0.0" in metrics
    stack.up()
    conn = await asyncpg.connect(stack.dsn)
    try:
        assert await wait_readings(conn, site, 300 * 50) == 300 * 50
    finally:
        await conn.close()
