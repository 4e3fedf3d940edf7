"""Site-sharded workers on this machine: the same paced load through stacks of N = 1, 2, …
ingest and alerting workers, each on a stack of its own.

    .venv/bin/python bench/shards.py [--workers 1,2,3] [--sites 60] [--points 100] [--rate 15] [--duration 30]

For each N it prints what the stack carried (stored and evaluated readings/s over the run), the
evaluator's worst lag and the alert latency (p50/p99, probe crossing → alert on MQTT), loss, and
the ratio of the evaluated rate and of p99 against N = 1 measured in the same run. The offered load
should be beyond what one worker of each carries, so that the ratio says what more workers buy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from simulators import loadtest as lt
from sitewatch.stack import Stack


def run(workers: int, plan: lt.LoadPlan) -> lt.Report:
    with tempfile.TemporaryDirectory(prefix=f"sitewatch-shards-{workers}-") as tmp:
        Path(tmp).chmod(0o755)  # the postgres user must reach its cluster inside
        stack = Stack(Path(tmp) / "var")
        stack.use_workers(workers)
        try:
            info = stack.up()
            return asyncio.run(lt.run(plan, info, stack.dsn))
        finally:
            stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--sites", type=int, default=60)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    plan = lt.LoadPlan(args.sites, args.points, args.rate, args.duration, prefix="SHB")
    print(f"{os.cpu_count()} cores; offered {plan.readings_per_s:,.0f} readings/s for {args.duration:g} s")
    print(f"{'N':>3} {'stored/s':>10} {'evaluated/s':>12} {'max lag':>8} {'p50':>7} {'p99':>7} {'lost':>5}  ratio")
    first: lt.Report | None = None
    for n in (int(w) for w in args.workers.split(",")):
        report = run(n, plan)
        evaluated = sum(s.evaluated_per_s for s in report.samples) / max(len(report.samples), 1)
        p50, p99 = report.latency_ms["p50"] or 0.0, report.latency_ms["p99"] or 0.0
        if first is None:
            first, base_eval, base_p99 = report, evaluated, p99
        print(
            f"{n:>3} {report.ingest_rate:>10,.0f} {evaluated:>12,.0f} {report.max_lag_s:>7.2f}s"
            f" {p50:>5.0f}ms {p99:>5.0f}ms {report.lost:>5}  evaluated ×{evaluated / base_eval:.2f},"
            f" p99 ×{p99 / max(base_p99, 1e-9):.2f}"
        )


if __name__ == "__main__":
    main()
