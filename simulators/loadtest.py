"""`sitewatch loadtest`: a paced load of N sites × M points × R readings/s through the real stack,
measured end to end.

Each site has two gateways with their own credentials: `GW-LOAD` publishes telemetry batches of up
to 500 readings at the requested rate through Mosquitto's C client, and `GW-PROBE` (paho) publishes
the probes and is subscribed to its own `sw/v1/{site}/alerts` as an enterprise's system would be.
The load points carry a threshold nobody reaches; one probe point per site carries
a threshold at 50, and the probes cross it at known instants (round robin over the sites, each
crossing with its own value): those crossings are the ground truth. From them come

- the end-to-end alert latency, publish of the crossing → its alert on MQTT, p50/p95/p99;
- precision (activations seen that match a crossing / all activations seen on the load sites) and
  recall (crossings whose alert arrived / crossings);
- readings lost: published minus stored, counted in PostgreSQL over the run's time range once
  ingest has drained (it must be 0), and doubled: stored beyond published.

Ingest rate and evaluator lag come from the services' Prometheus counters (`/metrics`): the lag is
the readings published but not yet evaluated, in seconds at the publish rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import numpy.typing as npt
from prometheus_client.parser import text_string_to_metric_families

from simulators.gateway import Gateway
from simulators.load import mosquitto_pub
from sitewatch.stack import Stack
from sitewatch.tls import verify

ENTERPRISE = "LOADTEST"
LOADER = "GW-LOAD"  # the bulk load, through mosquitto_pub
PROBER = "GW-PROBE"  # the probes and the alert subscription, through paho
PROBE = "PROBE"
PROBE_LIMIT = 50.0
PER_MESSAGE = 500
PROBED_MAX = 100
TICK_S = 0.05
ACTIVATIONS = ("raise", "retrigger")
STORED = "sitewatch_ingest_readings_stored"
EVALUATED = "sitewatch_alerting_readings"


@dataclass(frozen=True, slots=True)
class LoadPlan:
    sites: int
    points_per_site: int
    rate: float  # readings per second per point
    duration: float  # seconds of publishing
    probes_per_s: float = 5.0
    prefix: str = "LT"
    drain_timeout: float = 120.0
    # (factor of `rate`, seconds) in turn, e.g. ((1.5, 60), (0.5, 60)) for an overload and its
    # aftermath; empty: `rate` for `duration`
    profile: tuple[tuple[float, float], ...] = ()
    flush_s: float = TICK_S  # each load gateway publishes what is due this often (a gateway's batching)

    @property
    def readings_per_s(self) -> float:
        """The mean planned rate over the run."""
        return float(self.sites * self.points_per_site * self.rate * self._cum[1][-1] / max(self.seconds, 1e-9))

    @property
    def probed(self) -> list[int]:
        """The sites that carry probes: all of them up to PROBED_MAX, else PROBED_MAX spread evenly
        (each probe gateway is a paho client with its thread in this process)."""
        step = max(1, math.ceil(self.sites / PROBED_MAX))
        return list(range(0, self.sites, step))

    @property
    def seconds(self) -> float:
        return float(self._cum[0][-1])

    @property
    def _cum(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Breakpoints of the profile: elapsed seconds, and readings per point due by then / rate."""
        phases = self.profile or ((1.0, self.duration),)
        t = np.concatenate([[0.0], np.cumsum([s for _, s in phases])])
        return t, np.concatenate([[0.0], np.cumsum([f * s for f, s in phases])])

    def due(self, t: float) -> float:
        """Readings per point due by `t` seconds into the run (before each point's phase)."""
        times, counts = self._cum
        return float(np.interp(t, times, counts)) * self.rate

    def when(self, n: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The instants (seconds into the run) at which `n` readings per point are due: `due`'s inverse."""
        times, counts = self._cum
        return np.interp(n / self.rate, counts, times)

    def factor(self, t: float) -> float:
        """The profile's factor at `t` seconds."""
        times, _ = self._cum
        phases = self.profile or ((1.0, self.duration),)
        return phases[min(int(np.searchsorted(times, t, side="right")) - 1, len(phases) - 1)][0]

    def site_code(self, i: int) -> str:
        return f"{self.prefix}-{i:04d}"

    def catalog(self, password: str) -> dict[str, Any]:
        """The load sites: generic points with a threshold out of reach (they load, they never
        alert) and a probe with a plain threshold at 50, no offline or frozen rule (the load
        stops at the end of the run; that must not raise alerts)."""
        codes = [self.site_code(i) for i in range(self.sites)]
        period = max(1, round(1 / self.rate)) if self.rate > 0 else 60
        return {
            "enterprises": [{"code": ENTERPRISE, "name": "Load test"}],
            "sites": [
                {"code": c, "enterprise": ENTERPRISE, "name": f"负载测试 {c}", "kind": "tank_farm"} for c in codes
            ],
            "gateways": [{"code": g, "site": c, "password": password} for c in codes for g in (LOADER, PROBER)],
            "points": [
                {
                    "code": f"P{j:04d}",
                    "site": c,
                    "kind": "generic",
                    "period_s": period,
                    "rules": [{"rule": "threshold", "above": [1e12]}],
                }
                for c in codes
                for j in range(self.points_per_site)
            ]
            + [
                {
                    "code": PROBE,
                    "site": c,
                    "kind": "generic",
                    "period_s": 60,
                    "rules": [{"rule": "threshold", "above": [PROBE_LIMIT]}],
                }
                for c in codes
            ],
        }


@dataclass(slots=True)
class Sample:
    """One second of the run, for the progress line and the plot."""

    t: float
    published_per_s: float
    stored_per_s: float
    evaluated_per_s: float
    lag_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    status: str = "?"  # the stack's /status: ok, catching_up, overloaded, degraded
    spool_mb: float = 0.0  # ingest's deferred backlog on disk
    factor: float = 1.0  # the profile's factor of the rate at this second


@dataclass(slots=True)
class Report:
    plan: dict[str, Any]
    started_at: str
    seconds: float
    published: int
    stored: int
    lost: int
    doubled: int
    publish_rate: float
    ingest_rate: float
    max_lag_s: float
    probes: int
    alerts_matched: int
    alerts_unexpected: int
    precision: float
    recall: float
    latency_ms: dict[str, float | None]
    sustained: bool
    samples: list[Sample] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # the /status values seen, in turn
    final_status: str = "?"  # /status once everything was stored
    caught_up_s: float | None = None  # end of publishing → everything stored

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lat, plan = self.latency_ms, self.plan
        verdict = "SUSTAINED" if self.sustained else "NOT SUSTAINED"
        return "\n".join(
            [
                f"load test {self.started_at}: {verdict}",
                f"  plan        {plan['sites']} sites × {plan['points_per_site']} points × {plan['rate']:g}/s"
                + (
                    f" × {', '.join(f'{f:g} for {t:g} s' for f, t in plan['profile'])}"
                    f" = {plan['readings_per_s']:,.0f} readings/s on average"
                    if plan.get("profile")
                    else f" for {plan['duration']:g} s = {plan['readings_per_s']:,.0f} readings/s"
                ),
                f"  published   {self.published:,} readings at {self.publish_rate:,.0f}/s",
                f"  stored      {self.stored:,}   lost {self.lost:,}   doubled {self.doubled:,}",
                f"  ingest      {self.ingest_rate:,.0f} readings/s   max evaluator lag {self.max_lag_s:.2f} s",
                f"  alerts      {self.alerts_matched}/{self.probes} probes matched, {self.alerts_unexpected} unexpected"
                f"   precision {self.precision:.3f} recall {self.recall:.3f}",
                f"  latency     p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  p99 {_ms(lat['p99'])}"
                f"  max {_ms(lat['max'])}  (publish → alert on MQTT)",
                f"  status      {' → '.join(self.statuses) or '-'}; after the drain: {self.final_status}"
                + (
                    f" (caught up {self.caught_up_s:.1f} s after publishing ended)"
                    if self.caught_up_s is not None
                    else ""
                ),
            ]
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def percentiles(latencies_ms: list[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return dict.fromkeys(("p50", "p95", "p99", "max"), None)
    arr = np.asarray(latencies_ms)
    return {
        "p50": round(float(np.percentile(arr, 50)), 1),
        "p95": round(float(np.percentile(arr, 95)), 1),
        "p99": round(float(np.percentile(arr, 99)), 1),
        "max": round(float(arr.max()), 1),
    }


def clock_seq() -> int:
    """A first `seq` above any earlier run's, so that a rerun is never taken for a redelivery."""
    return int(time.time() * 1000) * 1000


class AlertLedger:
    """Probe crossings sent and alert activations received, matched by (site, value)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: dict[tuple[str, float], float] = {}
        self.arrived: dict[tuple[str, float], float] = {}
        self.unexpected = 0
        self._all_answered = threading.Event()

    def crossing(self, site: str, value: float, at: float) -> None:
        with self._lock:
            self.sent[(site, value)] = at

    def on_alert(self, payload: bytes) -> None:
        now = time.monotonic()
        try:
            alert = json.loads(payload)
        except ValueError:
            return
        if alert.get("change") not in ACTIVATIONS:
            return
        key = (str(alert.get("site")), float(alert.get("value") or 0.0))
        with self._lock:
            if key in self.sent and key not in self.arrived:
                self.arrived[key] = now
                if len(self.arrived) == len(self.sent):
                    self._all_answered.set()
            else:
                self.unexpected += 1

    async def answered(self, timeout: float) -> None:
        """Wait until every crossing (all sent by now) has its alert, or `timeout` passes."""
        with self._lock:
            if len(self.arrived) >= len(self.sent):
                return
            self._all_answered.clear()
        await asyncio.to_thread(self._all_answered.wait, timeout)

    def latencies_ms(self, since: float = 0.0) -> list[float]:
        with self._lock:
            return [(self.arrived[k] - s) * 1000 for k, s in self.sent.items() if k in self.arrived and s >= since]


class Publisher:
    """Paces the load in 50 ms ticks. Each point publishes at `rate` with its own phase and exact
    timestamps; a site's due readings go out in messages of up to 500 through its own
    `mosquitto_pub` (Mosquitto's C client: the load generator must cost the machine little beside
    what it measures). The probes cross the threshold on schedule through the sites' paho gateways
    and come back below it two ticks later."""

    def __init__(
        self,
        plan: LoadPlan,
        loaders: list[asyncio.subprocess.Process],
        probes: dict[int, Gateway],
        ledger: AlertLedger,
    ) -> None:
        self.plan, self.loaders, self.probes, self.ledger = plan, loaders, probes, ledger
        self.published = 0
        self.t_start_ms = 0
        self.t_end_ms = 0
        self._codes = [f"P{j:04d}" for j in range(plan.points_per_site)]
        self._phase = np.random.default_rng(7).random((plan.sites, plan.points_per_site))
        self._rng = np.random.default_rng(11)
        self._seq = [clock_seq()] * plan.sites
        self._stop = asyncio.Event()
        self._probed = sorted(probes)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        plan = self.plan
        t0, wall0 = time.monotonic(), time.time() * 1000
        self.t_start_ms = int(wall0)
        every = 1 / plan.probes_per_s if plan.probes_per_s > 0 else math.inf
        next_probe, k = 0.0, 0
        returns: dict[int, float] = {}  # site → when its probe goes back below the limit
        infos: list[Any] = []
        sent = 0.0  # the load is published up to this instant
        while not self._stop.is_set():
            now = min(time.monotonic() - t0, plan.seconds)
            if now - sent >= plan.flush_s or now >= plan.seconds:  # a gateway's batching interval
                lo = np.floor(plan.due(sent) + self._phase)
                hi = np.floor(plan.due(now) + self._phase)
                for s, proc in enumerate(self.loaders):
                    lines = self._lines(s, lo[s], hi[s], wall0)
                    if lines:
                        assert proc.stdin is not None
                        proc.stdin.write(b"\n".join(lines) + b"\n")
                sent = now
            wall_ms = int(time.time() * 1000)
            for s in [s for s, when in returns.items() if when <= now]:
                del returns[s]
                infos.append(self._probe(s, 0.0, wall_ms))
            while next_probe <= now < plan.seconds:
                s = self._probed[k % len(self._probed)]
                if s not in returns:
                    value = 100.0 + k  # its own value: the alert names the crossing it answers
                    self.ledger.crossing(self.probes[s].site, value, time.monotonic())
                    infos.append(self._probe(s, value, wall_ms))
                    returns[s] = now + 2 * TICK_S
                k += 1
                next_probe += every
            await asyncio.gather(*(p.stdin.drain() for p in self.loaders if p.stdin is not None))
            if now >= plan.seconds and not returns:
                break
            await asyncio.sleep(max(0.0, t0 + now + TICK_S - time.monotonic()))
        for proc in self.loaders:  # closing stdin: mosquitto_pub exits once the broker acked it all
            assert proc.stdin is not None
            proc.stdin.close()
        codes = await asyncio.gather(*(p.wait() for p in self.loaders))
        await asyncio.to_thread(lambda: [i.wait_for_publish(60) for i in infos])
        self.t_end_ms = int(time.time() * 1000)
        if any(codes):
            raise RuntimeError(
                f"mosquitto_pub failed for {sum(1 for c in codes if c)} site(s): exit codes {set(codes)}"
            )

    def _probe(self, site: int, value: float, ts_ms: int) -> Any:
        self.published += 1
        return self.probes[site].telemetry([{"point": PROBE, "ts": ts_ms, "value": value}])

    def _lines(self, site: int, lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], wall0: float) -> list[bytes]:
        """One site's readings due in (prev, now], at their scheduled times, in messages of ≤ 500."""
        counts = (hi - lo).astype(np.int64)
        idx = np.repeat(np.arange(len(counts)), counts)
        if not len(idx):
            return []
        phase = self._phase[site]
        nth = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts) + 1
        ts = (wall0 + self.plan.when(lo[idx] + nth - phase[idx]) * 1000).astype(np.int64).tolist()
        values = np.round(self._rng.normal(20.0, 2.0, len(idx)), 2).tolist()
        points = idx.tolist()
        codes = self._codes
        lines = []
        for start in range(0, len(points), PER_MESSAGE):
            end = start + PER_MESSAGE
            body = ",".join(
                f'{{"point":"{codes[j]}","ts":{t},"value":{v}}}'
                for j, t, v in zip(points[start:end], ts[start:end], values[start:end], strict=True)
            )
            seq, self._seq[site] = self._seq[site], self._seq[site] + 1
            self.published += len(points[start:end])
            lines.append(f'{{"seq":{seq},"readings":[{body}]}}'.encode())
        return lines


class Counters:
    """The services' Prometheus counters, read through the API's `/metrics`, and its `/status`."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def status(self) -> tuple[str, float]:
        """The stack's state and ingest's spooled bytes (summed over workers)."""
        body = (await self.client.get("/status", timeout=10)).json()
        spooled = sum(float(v.get("spool_bytes", 0.0)) for v in body["services"].values())
        return str(body["status"]), spooled

    async def read(self) -> dict[str, float]:
        text = (await self.client.get("/metrics", timeout=10)).text
        out = dict.fromkeys((STORED, EVALUATED), 0.0)
        for family in text_string_to_metric_families(text):
            if family.name in out:  # summed over workers when the services are sharded
                out[family.name] += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return out


async def _stored(conn: asyncpg.Connection[Any], plan: LoadPlan, lo_ms: int, hi_ms: int) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id JOIN sites s ON s.id = p.site_id"
            " WHERE s.code = ANY($1) AND r.ts >= to_timestamp($2 / 1000.0) AND r.ts <= to_timestamp($3 / 1000.0)",
            [plan.site_code(i) for i in range(plan.sites)],
            lo_ms,
            hi_ms,
        )
    )


def _connect_probes(plan: LoadPlan, mqtt: dict[str, Any], password: str, ledger: AlertLedger) -> dict[int, Gateway]:
    first_seq = clock_seq()
    gateways = {}
    for i in plan.probed:
        gw = Gateway(
            mqtt["host"], mqtt["port"], plan.site_code(i), PROBER, password,
            first_seq=first_seq, client_id=f"loadtest-probe-{plan.site_code(i)}", cafile=mqtt.get("cafile"),
        )  # fmt: skip
        gw.connect()
        gw.subscribe_alerts(ledger.on_alert)
        gateways[i] = gw
    return gateways


async def _start_loaders(plan: LoadPlan, mqtt: dict[str, Any], password: str) -> list[asyncio.subprocess.Process]:
    return [
        await mosquitto_pub(
            mqtt["host"],
            mqtt["port"],
            plan.site_code(i),
            LOADER,
            password,
            stdin=asyncio.subprocess.PIPE,
            client_id=f"loadtest-load-{plan.site_code(i)}",
            cafile=mqtt.get("cafile"),
        )
        for i in range(plan.sites)
    ]


async def run(
    plan: LoadPlan, info: dict[str, Any], dsn: str, on_sample: Callable[[Sample], None] | None = None
) -> Report:
    """Load the catalog, publish the plan, sample every second, drain, count and match."""
    password = secrets.token_urlsafe(12)
    ledger = AlertLedger()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    headers = {"Authorization": f"Bearer {info['token']}"}
    async with httpx.AsyncClient(
        base_url=info["api"], headers=headers, verify=verify(info["mqtt"].get("cafile"))
    ) as api:
        (await api.put("/api/v1/catalog", json=plan.catalog(password), timeout=120)).raise_for_status()
        gateways = await asyncio.to_thread(_connect_probes, plan, info["mqtt"], password, ledger)
        loaders = await _start_loaders(plan, info["mqtt"], password)
        counters = Counters(api)
        conn = await asyncpg.connect(dsn)
        try:
            publisher = Publisher(plan, loaders, gateways, ledger)
            base = await counters.read()
            job = asyncio.create_task(publisher.run())
            samples = await _sample(plan, publisher, ledger, counters, base, job, on_sample)
            await job
            stored = await _drain(conn, plan, publisher)
            caught_up = time.time() - publisher.t_end_ms / 1000 if stored >= publisher.published else None
            final_status = await _settled_status(counters)
            end = await counters.read()
            await asyncio.sleep(min(2.0, plan.seconds))  # the last probes' alerts, and any unexpected one
            await ledger.answered(timeout=60.0)  # an evaluator behind answers late: late is not lost
        finally:
            publisher.stop()
            await conn.close()
            for gw in gateways.values():
                gw.close()
            for proc in loaders:
                if proc.returncode is None:
                    proc.kill()
    seconds = max((publisher.t_end_ms - publisher.t_start_ms) / 1000, 1e-3)
    latencies = ledger.latencies_ms()
    matched, probes = len(ledger.arrived), len(ledger.sent)
    seen = matched + ledger.unexpected
    report = Report(
        plan={**asdict(plan), "readings_per_s": plan.readings_per_s},
        started_at=started_at,
        seconds=round(seconds, 2),
        published=publisher.published,
        stored=stored,
        lost=max(0, publisher.published - stored),
        doubled=max(0, stored - publisher.published),
        publish_rate=round(publisher.published / seconds, 1),
        ingest_rate=round((end[STORED] - base[STORED]) / seconds, 1),
        max_lag_s=round(max((s.lag_s for s in samples), default=0.0), 3),
        probes=probes,
        alerts_matched=matched,
        alerts_unexpected=ledger.unexpected,
        precision=round(matched / seen, 4) if seen else 1.0,
        recall=round(matched / probes, 4) if probes else 1.0,
        latency_ms=percentiles(latencies),
        sustained=False,
        samples=samples,
        statuses=_distinct([s.status for s in samples]),
        final_status=final_status,
        caught_up_s=round(caught_up, 1) if caught_up is not None else None,
    )
    report.sustained = (
        report.lost == 0
        and report.doubled == 0
        and report.publish_rate >= 0.95 * plan.readings_per_s
        and report.recall == 1.0
        and report.precision == 1.0
        and (report.latency_ms["p99"] or 0.0) < 1000.0
        and report.final_status == "ok"
    )
    return report


def _distinct(states: list[str]) -> list[str]:
    """`states` without consecutive repeats."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


async def _settled_status(counters: Counters, timeout: float = 30.0) -> str:
    """/status once the deferred backlog drained: "ok" unless something is still wrong."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            state, _ = await counters.status()
            if state == "ok" or time.monotonic() > deadline:
                return state
        await asyncio.sleep(0.5)


async def _sample(
    plan: LoadPlan,
    publisher: Publisher,
    ledger: AlertLedger,
    counters: Counters,
    base: dict[str, float],
    job: asyncio.Task[None],
    on_sample: Callable[[Sample], None] | None,
) -> list[Sample]:
    """Once a second while publishing: rates, lag and the latency of the second's probes."""
    samples: list[Sample] = []
    t0 = time.monotonic()
    last_t, last_pub, last = t0, 0, dict(base)
    while not job.done():
        await asyncio.wait({job}, timeout=1.0)
        now = time.monotonic()
        try:
            cur = await counters.read()
            status, spooled = await counters.status()
        except httpx.HTTPError:
            continue
        span = max(now - last_t, 1e-3)
        pub = publisher.published
        window = percentiles(ledger.latencies_ms(since=last_t - 2.0))
        rate = (pub - last_pub) / span
        behind = pub - (cur[EVALUATED] - base[EVALUATED])
        target = plan.sites * plan.points_per_site * plan.rate * plan.factor(now - t0)
        sample = Sample(
            t=round(now - t0, 2),
            published_per_s=round(rate, 1),
            stored_per_s=round((cur[STORED] - last[STORED]) / span, 1),
            evaluated_per_s=round((cur[EVALUATED] - last[EVALUATED]) / span, 1),
            lag_s=round(max(0.0, behind) / max(target, 1.0), 3),
            latency_p50_ms=window["p50"],
            latency_p99_ms=window["p99"],
            status=status,
            spool_mb=round(spooled / 1e6, 2),
            factor=plan.factor(now - t0),
        )
        samples.append(sample)
        if on_sample is not None:
            on_sample(sample)
        last_t, last_pub, last = now, pub, cur
    return samples


async def _drain(conn: asyncpg.Connection[Any], plan: LoadPlan, publisher: Publisher) -> int:
    """Readings stored over the run's time range, once ingest has caught up (or stopped moving
    for 30 s, or `drain_timeout` passed)."""
    lo, hi = publisher.t_start_ms - 1000, publisher.t_end_ms + 1000
    deadline = time.monotonic() + plan.drain_timeout
    stored, moved = -1, time.monotonic()
    while True:
        now_stored = await _stored(conn, plan, lo, hi)
        if now_stored != stored:
            stored, moved = now_stored, time.monotonic()
        if stored >= publisher.published or time.monotonic() > deadline or time.monotonic() - moved > 30:
            return stored
        await asyncio.sleep(0.5)


@contextlib.contextmanager
def target_stack(data_dir: Path) -> Iterator[tuple[dict[str, Any], str, bool]]:
    """The stack of `data_dir` when it is up; otherwise a temporary one, stopped and removed at the
    end. Yields its summary (api, mqtt, token), its DSN and whether it is temporary."""
    stack = Stack(data_dir)
    status = stack.status()
    if status["running"]:
        yield status, stack.dsn, False
        return
    with tempfile.TemporaryDirectory(prefix="sitewatch-loadtest-") as tmp:
        Path(tmp).chmod(0o755)  # the postgres user must reach its cluster inside
        temp = Stack(Path(tmp) / "var")
        try:
            yield temp.up(), temp.dsn, True
        finally:
            temp.down()


def plot(report: Report, path: Path) -> None:
    """Rates and latency over the run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in report.samples]
    profiled = bool(report.plan.get("profile"))
    fig, axes = plt.subplots(3 if profiled else 2, 1, figsize=(10, 9 if profiled else 6.5), sharex=True)
    top, bottom = axes[0], axes[1]
    top.plot(t, [s.published_per_s for s in report.samples], label="published")
    top.plot(t, [s.stored_per_s for s in report.samples], label="stored (ingest)")
    top.plot(t, [s.evaluated_per_s for s in report.samples], label="evaluated (alerting)", linestyle="--")
    per_point = report.plan["sites"] * report.plan["points_per_site"] * report.plan["rate"]
    top.plot(t, [s.factor * per_point for s in report.samples], color="grey", linewidth=0.8, label="target")
    top.set_ylabel("readings/s")
    top.legend(loc="lower right")
    top.set_title(
        f"{report.plan['sites']} sites × {report.plan['points_per_site']} points × {report.plan['rate']:g}/s"
        f" — lost {report.lost}, p99 {_ms(report.latency_ms['p99'])}"
    )
    bottom.plot(t, [s.latency_p50_ms for s in report.samples], label="alert latency p50 (ms)")
    bottom.plot(t, [s.latency_p99_ms for s in report.samples], label="alert latency p99 (ms)")
    bottom.plot(t, [s.lag_s * 1000 for s in report.samples], label="evaluator lag (ms)", linestyle=":")
    bottom.set_ylabel("ms")
    bottom.legend(loc="upper right")
    if profiled:
        backlog = axes[2]
        stored, evaluated, last = 0.0, 0.0, 0.0
        behind_storage, behind_alerting = [], []
        for s in report.samples:  # published minus stored / evaluated, integrated over the run
            span, last = s.t - last, s.t
            stored += (s.published_per_s - s.stored_per_s) * span
            evaluated += (s.published_per_s - s.evaluated_per_s) * span
            behind_storage.append(max(0.0, stored) / 1e6)
            behind_alerting.append(max(0.0, evaluated) / 1e6)
        backlog.plot(t, behind_storage, color="tab:orange", label="not yet stored (M readings)")
        backlog.plot(t, behind_alerting, color="tab:green", linestyle="--", label="not yet evaluated (M readings)")
        backlog.plot(t, [s.spool_mb / 100 for s in report.samples], color="tab:purple", label="spool (100 MB)")
        colours = {"ok": "tab:green", "catching_up": "tab:blue", "overloaded": "tab:orange", "degraded": "tab:red"}
        for s in report.samples:
            backlog.axvspan(s.t - 1, s.t, color=colours.get(s.status, "grey"), alpha=0.12, linewidth=0)
        backlog.set_ylabel("backlog  (band: /status)")
        backlog.legend(loc="upper right", title=" ".join(f"{k}={v[4:]}" for k, v in colours.items()), fontsize=8)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(report: Report, out: Path) -> dict[str, Path]:
    """report.json, report.txt and report.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "text": out / "report.txt", "plot": out / "report.png"}
    paths["json"].write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    paths["text"].write_text(report.text() + "\n")
    plot(report, paths["plot"])
    return paths
