"""The streaming evaluator's throughput and alert latency, each beside its baseline in the same run.

    .venv/bin/python bench/evaluator.py                 # both parts
    .venv/bin/python bench/evaluator.py --part engine   # batch evaluator vs per-reading Python
    .venv/bin/python bench/evaluator.py --part latency  # publish → alert on MQTT under ingest load

engine:  a realistic rule mix of all five domains (gas, tank level/temperature/pressure, dust
         differential pressure and hopper temperature thresholds with hysteresis, on-delays and
         latching; slope displacement and rainfall; valves with command and feedback; interlock
         bypass; sparks; airlocks and fans; power; personnel positions), streamed in 20,000-reading
         batches through the vectorised families and through the per-reading reference families;
         both must emit identical signals. Reported for the threshold-type mix alone and for the
         whole mix, on one core.
latency: a temporary stack under a background load of 100,000 readings/s (mosquitto_pub), while a
         probe gateway publishes threshold crossings; the time from publish to the alert arriving
         on sw/v1/{site}/alerts, p50/p95/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.gateway import Gateway
from simulators.load import mosquitto_pub
from sitewatch.catalog.models import Catalog
from sitewatch.protocol import TelemetryColumns
from sitewatch.rules.base import Family, RuleCatalog, Signal
from sitewatch.rules.engine import Evaluator, default_families
from sitewatch.rules.reference.families import families as reference_families
from sitewatch.rules.reference.threshold import Threshold as ReferenceThreshold
from sitewatch.rules.threshold import Threshold
from sitewatch.stack import Stack

BATCH = 20_000
THRESHOLD_KINDS = ("gas_lel", "tank_level", "tank_temperature", "tank_pressure", "dust_dp", "hopper_temperature")


def mix_catalog(sites: int, points_per_kind: int) -> dict[str, Any]:
    """Sites of every kind, each with `points_per_kind` of each threshold kind and the other domains."""
    doc: dict[str, Any] = {
        "enterprises": [{"code": "E", "name": "bench"}],
        "sites": [],
        "zones": [],
        "points": [],
        "tags": [],
    }
    for s in range(sites):
        site = f"S{s:03d}"
        doc["sites"].append(
            {
                "code": site,
                "enterprise": "E",
                "name": site,
                "kind": "tank_farm",
                "state": "stopped" if s % 5 == 0 else "operating",
                "power_baseline_kw": 50,
            }
        )
        units = {
            "gas_lel": "%LEL",
            "tank_level": "%",
            "tank_temperature": "°C",
            "tank_pressure": "MPa",
            "dust_dp": "Pa",
            "hopper_temperature": "°C",
        }
        for kind in THRESHOLD_KINDS:
            for i in range(points_per_kind):
                point: dict[str, Any] = {
                    "code": f"{kind}-{i}",
                    "site": site,
                    "kind": kind,
                    "unit": units[kind],
                    "period_s": 1,
                }
                if i % 3 == 1:  # a third with an on-delay, a third latching beside the kind defaults
                    point["rules"] = [{"rule": "threshold", "above": [60, 80], "deadband": 2, "for_s": 5}]
                doc["points"].append(point)
        for i in range(4):
            doc["points"] += [
                {"code": f"SL-{i}", "site": site, "kind": "slope_displacement", "unit": "mm", "period_s": 60},
                {"code": f"VC-{i}", "site": site, "kind": "valve_command", "period_s": 1},
                {"code": f"VF-{i}", "site": site, "kind": "valve_feedback", "period_s": 1, "pair": f"VC-{i}"},
                {"code": f"SP-{i}", "site": site, "kind": "spark", "period_s": 1},
                {"code": f"FAN-{i}", "site": site, "kind": "fan_running", "period_s": 1},
                {"code": f"AL-{i}", "site": site, "kind": "airlock_running", "period_s": 1, "pair": f"FAN-{i}"},
                {"code": f"IB-{i}", "site": site, "kind": "interlock_bypass", "period_s": 1},
                {"code": f"PW-{i}", "site": site, "kind": "power_kw", "unit": "kW", "period_s": 1},
            ]
        doc["points"].append({"code": "RAIN", "site": site, "kind": "rainfall", "unit": "mm/h", "period_s": 60})
        doc["zones"].append({"code": "WF", "site": site, "risk": "high"})
    return doc


def stream(catalog: RuleCatalog, n: int, t0: int, only: Callable[[str], bool]) -> list[TelemetryColumns]:
    """`n` readings over the points whose kind passes `only`: normal values with rare excursions."""
    rng = np.random.default_rng(7)
    points = [p for p in catalog.points.values() if only(p.kind)]
    ids = np.array([p.id for p in points], dtype=np.int32)
    base = np.array(
        [{"gas_lel": 5, "dust_dp": 900, "power_kw": 40, "slope_displacement": 0}.get(p.kind, 20) for p in points],
        dtype=np.float64,
    )
    binary = np.array(
        [
            p.kind in ("valve_command", "valve_feedback", "spark", "fan_running", "airlock_running", "interlock_bypass")
            for p in points
        ]
    )
    which = rng.integers(0, len(points), n)
    value = base[which] + rng.normal(0, 2, n)
    value[rng.random(n) < 0.001] += 70  # excursions
    value = np.where(binary[which], (rng.random(n) < 0.01).astype(np.float64), value)
    slope = np.array([p.kind == "slope_displacement" for p in points])[which]
    value[slope] = np.abs(value[slope]) * 0.01
    ts = t0 + np.arange(n, dtype=np.int64) // 20  # 20 readings per millisecond
    out = []
    for lo in range(0, n, BATCH):
        sl = slice(lo, lo + BATCH)
        out.append(TelemetryColumns(0, ids[which[sl]], ts[sl], value[sl], np.zeros(len(ts[sl]), np.int16), []))
    return out


def run_engine(
    families: list[Family], catalog: RuleCatalog, batches: list[TelemetryColumns], now: int
) -> tuple[float, list[Signal]]:
    evaluator = Evaluator(families)
    evaluator.load(catalog)
    signals: list[Signal] = []
    site = next(iter(catalog.sites))
    started = time.process_time()
    for i, batch in enumerate(batches):
        signals += evaluator.readings([(site, "GW", batch)], now)
        if i % 5 == 4:
            signals += evaluator.tick(int(batch.ts_ms[-1]))
    return time.process_time() - started, signals


def engine(args: argparse.Namespace) -> dict[str, Any]:
    catalog = RuleCatalog.from_catalog(Catalog.model_validate(mix_catalog(args.sites, args.points)))
    now = int(time.time() * 1000)
    results: dict[str, Any] = {}
    for name, only, fast, slow in (
        ("threshold_mix", lambda k: k in THRESHOLD_KINDS, lambda: [Threshold()], lambda: [ReferenceThreshold()]),
        ("all_domains", lambda k: True, default_families, reference_families),
    ):
        batches = stream(catalog, args.readings, now - 60_000, only)
        n = sum(len(b.ts_ms) for b in batches)
        fast_s, fast_signals = run_engine(fast(), catalog, batches, now)
        ref_batches = batches[: max(1, len(batches) * args.reference_share // 100)]
        ref_n = sum(len(b.ts_ms) for b in ref_batches)
        slow_s, slow_signals = run_engine(slow(), catalog, ref_batches, now)
        _, fast_prefix = run_engine(fast(), catalog, ref_batches, now)
        if fast_prefix != slow_signals:
            raise SystemExit(f"{name}: the vectorised and the reference families disagree")
        results[name] = {
            "readings": n,
            "signals": len(fast_signals),
            "vectorised_readings_per_s": round(n / fast_s),
            "reference_readings_per_s": round(ref_n / slow_s),
            "ratio": round((n / fast_s) / (ref_n / slow_s), 1),
            "identical_signals_checked_on": ref_n,
        }
    return results


# -- latency ---------------------------------------------------------------------------------------
def latency(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sitewatch-bench-") as tmp:
        os.chmod(tmp, 0o755)
        stack = Stack(Path(tmp) / "var")
        try:
            return asyncio.run(_latency(stack, Path(tmp), args))
        finally:
            stack.down()


async def _latency(stack: Stack, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    info = await asyncio.to_thread(stack.up)
    doc = {
        "enterprises": [{"code": "E", "name": "bench"}],
        "sites": [
            {"code": "LOAD", "enterprise": "E", "name": "load", "kind": "tank_farm"},
            {"code": "PROBE", "enterprise": "E", "name": "probe", "kind": "tank_farm"},
        ],
        "gateways": [
            {"code": "GW-L", "site": "LOAD", "password": "bench-password"},
            {"code": "GW-P", "site": "PROBE", "password": "bench-password"},
        ],
        "points": [
            {
                "code": f"P{i:04d}",
                "site": "LOAD",
                "kind": "generic",
                "period_s": 1,
                "rules": [{"rule": "threshold", "above": [1000]}],
            }
            for i in range(1000)
        ]
        + [
            {
                "code": "X",
                "site": "PROBE",
                "kind": "generic",
                "period_s": 1,
                "rules": [{"rule": "threshold", "above": [50]}],
            }
        ],
    }
    async with httpx.AsyncClient(base_url=info["api"], headers={"Authorization": f"Bearer {info['token']}"}) as c:
        (await c.put("/api/v1/catalog", json=doc, timeout=60)).raise_for_status()
    rate, seconds = args.load_rate, args.load_seconds
    per_message = 500
    messages = rate * seconds // per_message
    encoder = msgspec.json.Encoder()
    t0 = int(time.time() * 1000)
    lines = []
    for m in range(messages):
        ts = t0 + m * 1000 * per_message // rate
        lines.append(
            encoder.encode(
                {
                    "seq": m + 1,
                    "readings": [
                        {"point": f"P{(m * per_message + i) % 1000:04d}", "ts": ts, "value": 1.0}
                        for i in range(per_message)
                    ],
                }
            )
        )
    # the probe: crossings every 100 ms, timed from publish to the alert on MQTT
    arrived: dict[int, float] = {}
    listener = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-listener")
    listener.username_pw_set("PROBE/GW-P", "bench-password")
    listener.on_message = lambda _c, _u, msg: arrived.setdefault(
        int(json.loads(msg.payload)["value"]), time.perf_counter()
    )
    listener.connect(info["mqtt"]["host"], info["mqtt"]["port"])
    listener.subscribe("sw/v1/PROBE/alerts", 1)
    listener.loop_start()
    probe = Gateway(info["mqtt"]["host"], info["mqtt"]["port"], "PROBE", "GW-P", "bench-password").connect()
    await asyncio.sleep(0.5)
    sent: dict[int, float] = {}
    load = await mosquitto_pub(
        info["mqtt"]["host"], info["mqtt"]["port"], "LOAD", "GW-L", "bench-password", stdin=asyncio.subprocess.PIPE
    )
    feeder = asyncio.create_task(_feed(load, lines, rate // per_message))
    started = time.perf_counter()
    k = 0
    while time.perf_counter() - started < seconds:
        k += 1
        value = 100 + k  # each crossing carries its own value, so the alert names its probe
        sent[value] = time.perf_counter()
        probe.telemetry([{"point": "X", "ts": int(time.time() * 1000), "value": float(value)}])
        await asyncio.sleep(0.05)
        probe.telemetry([{"point": "X", "ts": int(time.time() * 1000), "value": 0.0}])
        await asyncio.sleep(0.05)
    await feeder
    await load.wait()
    await asyncio.sleep(2)
    probe.close()
    listener.loop_stop()
    lat = np.array([(arrived[v] - sent[v]) * 1000 for v in sent if v in arrived])
    return {
        "load_readings_per_s": rate,
        "seconds": seconds,
        "probes": len(sent),
        "alerts": len(lat),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


async def _feed(proc: asyncio.subprocess.Process, lines: list[bytes], per_second: int) -> None:
    """Write the load to mosquitto_pub's stdin at `per_second` messages a second, in 10 ms steps."""
    assert proc.stdin is not None
    started = time.perf_counter()
    for i in range(0, len(lines), max(1, per_second // 100)):
        chunk = lines[i : i + max(1, per_second // 100)]
        proc.stdin.write(b"\n".join(chunk) + b"\n")
        await proc.stdin.drain()
        delay = started + (i + len(chunk)) / per_second - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    proc.stdin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("engine", "latency", "both"), default="both")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--points", type=int, default=30, help="points of each threshold kind per site")
    parser.add_argument("--readings", type=int, default=2_000_000)
    parser.add_argument("--reference-share", type=int, default=10, help="%% of the batches the reference runs")
    parser.add_argument("--load-rate", type=int, default=100_000)
    parser.add_argument("--load-seconds", type=int, default=20)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.part in ("engine", "both"):
        result["engine"] = engine(args)
    if args.part in ("latency", "both"):
        result["latency"] = latency(args)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
