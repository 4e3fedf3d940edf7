"""Micro-benchmark of `decode_telemetry` against a naive json + datetime decoder.

Run `.venv/bin/python bench/decode.py`. Messages are realistic 500-reading batches: half the
timestamps RFC 3339 with a +08:00 offset and milliseconds, half epoch-ms integers. Both
decoders must produce identical columns before anything is timed.
"""

import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone

from sitewatch.protocol import Reject, TelemetryColumns, decode_telemetry

READINGS = 500
MESSAGES = 50
ROUNDS = {"decode_telemetry": 40, "naive baseline": 10}  # rounds of MESSAGES decodes each
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
CST = timezone(timedelta(hours=8))
QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
START_MS = 1_763_774_102_120
WINDOW = (START_MS - 86_400_000, START_MS + 86_400_000)

Row = tuple[int, int, float, int]


def catalog(size: int = 2000) -> dict[str, int]:
    return {f"{('GT', 'DP', 'TL', 'VF')[i % 4]}-{i:04d}.pv": i for i in range(size)}


def message(rng: random.Random, seq: int, codes: list[str]) -> bytes:
    readings: list[dict[str, object]] = []
    for i in range(READINGS):
        ts_ms = START_MS + seq * 5000 + rng.randrange(5000)
        reading: dict[str, object] = {"point": rng.choice(codes)}
        if i % 2:
            reading["ts"] = ts_ms
        else:
            local = datetime.fromtimestamp(ts_ms / 1000, CST)
            reading["ts"] = local.isoformat(timespec="milliseconds")
        reading["value"] = round(rng.uniform(0, 100), 2) if i % 10 else rng.randrange(2)
        if i % 7 == 0:
            reading["quality"] = rng.choice(list(QUALITY))
        readings.append(reading)
    return json.dumps({"seq": seq, "readings": readings}).encode()


def naive(payload: bytes, points: Mapping[str, int]) -> list[Row]:
    """What one would write first: json.loads, then a datetime and a dict lookup per reading."""
    rows = []
    for reading in json.loads(payload)["readings"]:
        ts = reading["ts"]
        ts_ms = ts if isinstance(ts, int) else (datetime.fromisoformat(ts) - EPOCH) // MS
        quality = QUALITY[reading.get("quality", "good")]
        rows.append((points[reading["point"]], ts_ms, float(reading["value"]), quality))
    return rows


def fast(payload: bytes, points: Mapping[str, int]) -> TelemetryColumns:
    result = decode_telemetry(payload, points, min_ts_ms=WINDOW[0], max_ts_ms=WINDOW[1])
    assert not isinstance(result, Reject), result
    return result


def timings(
    decode: Callable[[bytes, Mapping[str, int]], object], payloads: list[bytes], points: dict[str, int], rounds: int
) -> list[float]:
    """Mean µs per message of each round; on a shared box the best round has the least noise."""
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for payload in payloads:
            decode(payload, points)
        means.append((time.perf_counter() - start) / len(payloads) * 1e6)
    return means


def main() -> int:
    rng = random.Random(42)
    points = catalog()
    codes = list(points)
    payloads = [message(rng, seq, codes) for seq in range(MESSAGES)]
    for payload in payloads:
        if fast(payload, points).rows() != naive(payload, points):
            print("MISMATCH between decode_telemetry and the naive decoder", file=sys.stderr)
            return 1
    median_kib = statistics.median(len(p) for p in payloads) / 1024
    print(f"{MESSAGES} messages × {READINGS} readings, median {median_kib:.1f} KiB; columns identical")
    best = {}
    for name, decode in (("decode_telemetry", fast), ("naive baseline", naive)):
        means = timings(decode, payloads, points, ROUNDS[name])
        best[name] = min(means)
        print(
            f"{name:>17}: {best[name]:7.1f} µs/message (median round {statistics.median(means):7.1f})"
            f"  {READINGS / best[name] * 1e6:11,.0f} readings/s"
        )
    print(f"{'speed-up':>17}: {best['naive baseline'] / best['decode_telemetry']:7.1f} ×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
