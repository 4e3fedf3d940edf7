"""The fault matrix with realistic durations (`make soak`): each fault in turn on a temporary stack
while a gateway publishes a known workload, then the results table of docs/reliability.md.

    .venv/bin/python bench/faults.py [--duration 150] [--outage 60] [--rate 50] [--points 20]
                                     [--spool-kib 64] [--only NAME ...] [--data-dir DIR]

The harness is `tests/faults/harness.py` (the short variant runs in `make test`): a baseline run
without a fault, then each fault striking at 40 % of the workload; every run is checked (readings
per point counted and summed, alert state against the baseline). Exits 1 if any run differs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults import harness


def machine() -> str:
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()}: {cpu}, {cpus} CPUs, {mem:.0f} GiB, {platform.platform()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of workload per run")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds PostgreSQL / Mosquitto stay away")
    parser.add_argument("--rate", type=float, default=50.0, help="telemetry messages per second")
    parser.add_argument("--points", type=int, default=20, help="readings per message (one per point)")
    parser.add_argument("--spool-kib", type=int, default=64, help="the spool bound of the spool fault")
    parser.add_argument("--only", nargs="*", default=[], help="run only faults whose name contains one of these")
    parser.add_argument("--data-dir", type=Path, help="the stack's data dir (default: a temporary one)")
    args = parser.parse_args()

    workload = harness.Workload(duration_s=args.duration, rate_hz=args.rate, points=args.points)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="sitewatch-faults-"))
    started = time.monotonic()
    print(f"machine: {machine()}")
    print(
        f"workload: {args.duration:.0f} s at {args.rate:.0f} messages/s × {args.points} readings"
        f" ({workload.steps * args.points} readings), outages {args.outage:.0f} s, data dir {data_dir}",
        flush=True,
    )
    stack = harness.FaultStack(data_dir)
    failed = False
    try:
        baseline = harness.run(stack, workload, None)
        rows = [baseline.row()]
        print(f"baseline ({harness.elapsed(started)}): {baseline.problems(None) or 'ok'}", flush=True)
        failed |= bool(baseline.problems(None))
        for fault in harness.faults(args.outage, args.spool_kib * 1024):
            if args.only and not any(name.lower() in fault.name.lower() for name in args.only):
                continue
            try:
                result = harness.run(stack, workload, fault)
            except Exception as exc:  # one fault's failure must not hide the others'
                failed = True
                rows.append(f"| {fault.name} | failed: {exc} | | | | | |")
                print(f"{fault.name} ({harness.elapsed(started)}): FAILED {exc!r}", flush=True)
                stack.up()  # whatever the failure left stopped
                continue
            problems = result.problems(baseline)
            failed |= bool(problems)
            rows.append(result.row())
            notes = {k: v for k, v in result.notes.items() if k != "spool_watch_done"}
            print(f"{fault.name} ({harness.elapsed(started)}): {problems or 'ok'} {notes}", flush=True)
    finally:
        stack.close()
    print()
    print(harness.TABLE_HEADER)
    print("\n".join(rows))
    print(f"\ncommand: {' '.join(sys.argv)}; total {harness.elapsed(started)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
