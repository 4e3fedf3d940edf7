"""Sustained ingest throughput, MQTT → PostgreSQL, beside two baselines measured in the same run.

    .venv/bin/python bench/ingest.py [--messages 6000] [--naive-messages 40]

It starts a temporary stack (its own PostgreSQL, Mosquitto and ingest), loads a catalog of 1,000
points, and measures, on the same table:

  end to end  gateways publish 500-reading messages (RFC 3339 and epoch-ms timestamps mixed) at
              QoS 1 as fast as the broker takes them; rate = readings / (last commit − first publish)
  raw COPY    the same rows, already decoded, COPYed in 20,000-row transactions on as many
              connections as ingest writes with: the ceiling
  naive       a subscriber that json.loads each message and INSERTs reading by reading as it arrives

and checks published = stored (every reading, once) before printing the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import httpx
import msgspec
import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.load import mosquitto_pub
from sitewatch import protocol
from sitewatch.stack import Stack
from sitewatch.store.copybin import readings_copy

POINTS = 1000
PER_MESSAGE = 500
GATEWAYS = 2
WRITERS = 2  # ingest's default SITEWATCH_WRITERS; the raw COPY uses as many connections
TZ = dt.timezone(dt.timedelta(hours=8))


def catalog(site: str) -> dict[str, Any]:
    return {
        "enterprises": [{"code": "BENCH", "name": "bench"}],
        "sites": [{"code": site, "enterprise": "BENCH", "name": site, "kind": "tank_farm"}],
        "gateways": [{"code": f"GW-{g}", "site": site, "password": "bench-password"} for g in range(GATEWAYS)],
        "points": [{"code": f"P{i:04d}", "site": site, "kind": "generic", "period_s": 1} for i in range(POINTS)],
    }


def messages(count: int, t0_ms: int) -> list[bytes]:
    """Realistic batches: every point in turn, half the timestamps RFC 3339 at +08:00, half epoch ms."""
    encoder = msgspec.json.Encoder()
    out = []
    rng = np.random.default_rng(1)
    for m in range(count):
        base = t0_ms + m * PER_MESSAGE
        values = np.round(rng.normal(50, 10, PER_MESSAGE), 3).tolist()
        readings = []
        for i in range(PER_MESSAGE):
            ts_ms = base + i
            ts: str | int = ts_ms
            if i % 2 == 0:
                ts = dt.datetime.fromtimestamp(ts_ms / 1000, TZ).isoformat(timespec="milliseconds")
            readings.append({"point": f"P{(m * PER_MESSAGE + i) % POINTS:04d}", "ts": ts, "value": values[i]})
        out.append(encoder.encode({"seq": m + 1, "readings": readings}))
    return out


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = (
        int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        // 1024
        // 1024
    )
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Python {platform.python_version()}"


async def stored(pool: asyncpg.Pool[Any], site: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id JOIN sites s ON s.id = p.site_id"
            " WHERE s.code = $1",
            site,
        )
    )


async def ingest_stored(client: httpx.AsyncClient) -> float:
    """Readings ingest has committed, from its metrics: cheaper to poll than count(*)."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("sitewatch_ingest_readings_stored_total "):
            return float(line.split()[1])
    return 0.0


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


async def end_to_end(stack: Stack, info: dict[str, Any], payloads: list[bytes], site: str, tmp: Path) -> float:
    """Gateways publish with mosquitto_pub (C, one message per stdin line), as external gateways
    would cost this machine nothing of Python; the clock stops at ingest's last commit."""
    ingest = f"http://127.0.0.1:{stack.state['services']['ingest']['port']}"
    expected = len(payloads) * PER_MESSAGE
    files = []
    for g in range(GATEWAYS):
        path = tmp / f"gw-{g}.jsonl"
        path.write_bytes(b"\n".join(payloads[g::GATEWAYS]) + b"\n")
        files.append(path)
    async with httpx.AsyncClient(base_url=ingest, timeout=5) as metrics:
        before = await ingest_stored(metrics)
        started = time.perf_counter()
        publishers = []
        for g, path in enumerate(files):
            with _open(path) as stdin:
                publishers.append(
                    await mosquitto_pub(
                        info["mqtt"]["host"],
                        info["mqtt"]["port"],
                        site,
                        f"GW-{g}",
                        "bench-password",
                        stdin=stdin,
                        client_id=f"bench-{site}-{g}",
                    )
                )
        while await ingest_stored(metrics) - before < expected:
            await asyncio.sleep(0.05)
            if time.perf_counter() - started > 600:
                raise TimeoutError("ingest did not store everything within 10 minutes")
        elapsed = time.perf_counter() - started
    for proc in publishers:
        if await proc.wait() != 0:
            raise RuntimeError(f"mosquitto_pub exited with {proc.returncode}")
    return expected / elapsed


async def raw_copy(pool: asyncpg.Pool[Any], payloads: list[bytes], points: dict[str, int]) -> float:
    now = int(time.time() * 1000)
    cols = [
        protocol.decode_telemetry(p, points, min_ts_ms=now - 86_400_000 * 30, max_ts_ms=now + 86_400_000)
        for p in payloads
    ]
    decoded = [c for c in cols if isinstance(c, protocol.TelemetryColumns)]
    point = np.concatenate([c.point_id for c in decoded])
    ts = np.concatenate([c.ts_ms for c in decoded])
    value = np.concatenate([c.value for c in decoded])
    quality = np.concatenate([c.quality for c in decoded])
    chunk = 20_000
    slices = [slice(lo, lo + chunk) for lo in range(0, len(point), chunk)]

    async def copy(part: list[slice]) -> None:
        async with pool.acquire() as conn:
            for sl in part:
                data = readings_copy(point[sl], ts[sl], value[sl], quality[sl])
                await conn.copy_to_table(
                    "readings", source=_chunks(data), columns=["point_id", "ts", "value", "quality"], format="binary"
                )

    started = time.perf_counter()
    await asyncio.gather(*(copy(slices[w::WRITERS]) for w in range(WRITERS)))
    return len(point) / (time.perf_counter() - started)


async def _chunks(data: bytes) -> Any:
    yield data


async def naive(
    stack: Stack, info: dict[str, Any], pool: asyncpg.Pool[Any], payloads: list[bytes], points: dict[str, int]
) -> float:
    """One json.loads per message, one datetime parse and one INSERT (its own commit) per reading."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive")
    client.username_pw_set("sitewatch-admin", stack.secrets["mqtt_admin"])
    client.on_message = lambda _c, _u, msg: loop.call_soon_threadsafe(inbox.put_nowait, msg.payload)
    client.connect(info["mqtt"]["host"], info["mqtt"]["port"])
    client.subscribe("sw/bench/naive", 1)
    client.loop_start()
    await asyncio.sleep(0.5)
    expected = len(payloads) * PER_MESSAGE
    async with pool.acquire() as conn:
        started = time.perf_counter()
        for p in payloads:
            client.publish("sw/bench/naive", p, qos=1)
        done = 0
        while done < expected:
            doc = json.loads(await inbox.get())
            for r in doc["readings"]:
                ts = r["ts"]
                when = (
                    dt.datetime.fromisoformat(ts)
                    if isinstance(ts, str)
                    else dt.datetime.fromtimestamp(ts / 1000, dt.UTC)
                )
                await conn.execute(
                    "INSERT INTO readings (point_id, ts, value, quality) VALUES ($1, $2, $3, 0)",
                    points[r["point"]],
                    when,
                    float(r["value"]),
                )
                done += 1
        rate = expected / (time.perf_counter() - started)
    client.loop_stop()
    client.disconnect()
    return rate


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sitewatch-bench-") as tmp:
        os.chmod(tmp, 0o755)
        stack = Stack(Path(tmp) / "var")
        try:
            info = await asyncio.to_thread(stack.up)
            async with httpx.AsyncClient(
                base_url=info["api"], timeout=60, headers={"Authorization": f"Bearer {info['token']}"}
            ) as api:
                for site in ("BENCH-E2E", "BENCH-COPY", "BENCH-NAIVE"):
                    (await api.put("/api/v1/catalog", json=catalog(site))).raise_for_status()
            pool = await asyncpg.create_pool(stack.dsn, min_size=1, max_size=WRITERS)
            ids = {
                site: {
                    r["code"]: r["id"]
                    for r in await pool.fetch(
                        "SELECT p.code, p.id FROM points p JOIN sites s ON s.id = p.site_id WHERE s.code = $1", site
                    )
                }
                for site in ("BENCH-COPY", "BENCH-NAIVE")
            }
            t0 = int(time.time() * 1000) - 3_600_000
            print(f"generating {args.messages} messages of {PER_MESSAGE} readings ...", flush=True)
            payloads = messages(args.messages, t0)
            e2e = await end_to_end(stack, info, payloads, "BENCH-E2E", Path(tmp))
            published = len(payloads) * PER_MESSAGE
            await asyncio.sleep(1.0)
            stored_e2e = await stored(pool, "BENCH-E2E")
            copy = await raw_copy(pool, payloads, ids["BENCH-COPY"])
            slow = await naive(stack, info, pool, payloads[: args.naive_messages], ids["BENCH-NAIVE"])
            await pool.close()
        finally:
            await asyncio.to_thread(stack.down)
    return {
        "machine": machine(),
        "messages": args.messages,
        "readings_per_message": PER_MESSAGE,
        "published": published,
        "stored": stored_e2e,
        "end_to_end_readings_per_s": round(e2e),
        "raw_copy_rows_per_s": round(copy),
        "naive_readings_per_s": round(slow),
        "ratio_to_raw_copy": round(e2e / copy, 3),
        "ratio_to_naive": round(e2e / slow, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=6000, help="500-reading messages end to end")
    parser.add_argument("--naive-messages", type=int, default=40, help="messages for the naive baseline")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(f"machine      {result['machine']}")
    print(
        f"end to end   {result['end_to_end_readings_per_s']:>10,} readings/s  "
        f"({result['published']:,} published, {result['stored']:,} stored)"
    )
    print(
        f"raw COPY     {result['raw_copy_rows_per_s']:>10,} rows/s      "
        f"end to end / raw COPY = {result['ratio_to_raw_copy']:.2f}"
    )
    print(
        f"naive        {result['naive_readings_per_s']:>10,} readings/s  "
        f"end to end / naive = {result['ratio_to_naive']:.1f}x"
    )
    if result["stored"] != result["published"]:
        raise SystemExit(f"LOSS: published {result['published']} but stored {result['stored']}")


if __name__ == "__main__":
    main()
