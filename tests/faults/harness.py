"""The fault harness: a deterministic workload published through a stack of its own while one
fault strikes, then the books checked against what was published and against an undisturbed run.

Used by `tests/faults/` (short outages, `make test`) and `bench/faults.py` (realistic ones,
`make soak`). One run:

1. a fresh site (its own code, so runs on one stack never see each other) with threshold points
   and a high-risk zone is loaded through the API;
2. a gateway publishes the `Workload` at a steady rate, with event times near now: a telemetry
   message per step (one reading per point) and a position event now and then; its incidents are
   known (a threshold raise, escalation, clear and re-trigger, a second point raising, a crowded
   zone reaching red and clearing);
3. the fault strikes mid-stream and ends (a process killed with SIGKILL comes back through the
   stack's supervisor; a stopped component through `stack up`);
4. recovery time is measured from the fault's end until every reading published before it is
   stored, the evaluator has judged (and stored the alerts of) everything sent before it, and the
   component answers again;
5. once the workload is done and settled: readings per point (count, sum of values, sum of
   timestamps) published vs stored, positions, and the alert state per (source, rule) compared
   with a baseline run of the same workload without a fault.

Why a baseline run rather than rules re-implemented here: it compares the complete alert state
(severity, count, peak, cleared, raise time, deadline, the ordered steps) as the product computes
it, so the check cannot drift from the rules; the workload's incidents are also asserted
(`EXPECTED_STEPS`) so a baseline that raised nothing would not pass. Event times are relative to
each run's start, so the baseline's alert times compare as offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.gateway import Gateway
from sitewatch.alerts import end_of_day_ms

SITEWATCH = str(Path(sys.executable).with_name("sitewatch"))
TIMEZONE = "Asia/Shanghai"
PASSWORD = "fault-gw-secret"
ZONE = "Z-1"
LEVELS = {"rule": "threshold", "above": [50, 80], "deadband": 5}
# The incidents of the workload, as (source, rule) → the ordered alert changes.
EXPECTED_STEPS = {
    ("point", "P0", "threshold"): ["raise", "severity", "clear", "retrigger", "clear"],
    ("point", "P1", "threshold"): ["raise"],
    ("zone", ZONE, "headcount"): ["raise", "severity", "clear"],
}


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(what: str, check: Callable[[], bool], timeout: float, poll_s: float = 0.1) -> float:
    """Poll `check` until it holds; the seconds it took. Raises TimeoutError with `what`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll_s)
    return time.monotonic() - started


# -- the workload -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    at_s: float  # when to publish, from the run's start
    channel: str  # telemetry | positions
    items: list[dict[str, Any]]
    readings: int


@dataclass(frozen=True, slots=True)
class Workload:
    """`duration_s` of steps at `rate_hz`, `points` points, one reading per point per step."""

    duration_s: float = 10.0
    rate_hz: float = 20.0
    points: int = 5
    tags: int = 11

    @property
    def steps(self) -> int:
        return int(self.duration_s * self.rate_hz)

    def value(self, point: int, k: int) -> float:
        """Multiples of 0.5 (sums are exact in float64); P0 and P1 carry the threshold incidents."""
        f = k / self.steps
        quiet = 20.0 + (k * 7 + point * 3) % 11 * 0.5
        if point == 0:
            for start, end, level in ((0.15, 0.25, 60.0), (0.25, 0.35, 85.0), (0.55, 0.70, 65.0)):
                if start <= f < end:
                    return level + (k % 3) * 0.5
        if point == 1 and f >= 0.6:
            return 55.0 + (k % 3) * 0.5
        return quiet

    def plan(self, t0_ms: int) -> list[Step]:
        """What is published, in order; event times from `t0_ms`, one step apart."""
        step_ms = 1000.0 / self.rate_hz
        n = self.steps
        enter = {int(n * (0.30 + i * 0.025)): i for i in range(self.tags)}  # the 8th → yellow, 10th → red
        leave = {int(n * (0.75 + i * 0.01)): i for i in range(self.tags)}
        out = []
        for k in range(n):
            ts = t0_ms + int(k * step_ms)
            readings = [{"point": f"P{p}", "ts": ts, "value": self.value(p, k)} for p in range(self.points)]
            out.append(Step(k / self.rate_hz, "telemetry", readings, len(readings)))
            for moves, kind in ((enter, "locate"), (leave, "exit")):
                if k in moves:
                    event = {"tag": f"T-{moves[k]:02d}", "ts": ts + 1, "kind": kind}
                    if kind == "locate":
                        event["zone"] = ZONE
                    out.append(Step(k / self.rate_hz, "positions", [event], 0))
        return out

    def catalog(self, site: str) -> dict[str, Any]:
        return {
            "enterprises": [{"code": "ENT-FAULT", "name": "fault matrix"}],
            "sites": [
                {
                    "code": site,
                    "enterprise": "ENT-FAULT",
                    "name": f"fault run {site}",
                    "kind": "underground_mine",
                    "timezone": TIMEZONE,
                    "state": "operating",
                    "shift_capacity": 50,
                }
            ],
            "gateways": [{"code": "GW-1", "site": site, "password": PASSWORD}],
            "zones": [{"code": ZONE, "site": site, "name": "采场", "risk": "high", "max_people": 9}],
            "points": [
                {
                    "code": f"P{i}",
                    "site": site,
                    "kind": "generic",
                    "unit": "",
                    "period_s": 3600,  # never offline while a run lasts
                    "rules": [LEVELS],
                }
                for i in range(self.points)
            ],
            "tags": [{"code": f"T-{i:02d}", "site": site, "person": f"worker {i}"} for i in range(self.tags)],
        }


# -- the stack --------------------------------------------------------------------------------
def traversable(path: Path) -> None:
    """Under root PostgreSQL runs as 'postgres', which must reach the data dir."""
    for p in (path, *path.parents):
        if p == Path(tempfile.gettempdir()) or p == Path("/"):
            break
        p.chmod(p.stat().st_mode | 0o711)


class FaultStack:
    """A stack of its own, driven through the `sitewatch` CLI as an operator would."""

    def __init__(self, data_dir: Path, workers: int = 1) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        traversable(data_dir)
        self.up(workers=workers)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            [SITEWATCH, *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sitewatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def up(self, env: dict[str, str] | None = None, workers: int | None = None) -> None:
        more = ["--workers", str(workers)] if workers else []
        info = json.loads(self.cli("stack", "up", "--no-simulators", *more, "--json", env=env))
        self.api, self.token = info["api"], info["token"]
        self.mqtt_host, self.mqtt_port = info["mqtt"]["host"], info["mqtt"]["port"]
        self.dsn: str = self.status()["components"]["postgres"]["dsn"]

    def down(self, *components: str) -> None:
        self.cli("stack", "down", *components)

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.cli("stack", "status", "--json")))

    def component(self, name: str) -> dict[str, Any]:
        return dict(json.loads(Path(self.data_dir / "stack.json").read_text()).get("services", {}).get(name, {}))

    def pid(self, name: str) -> int:
        state = json.loads(Path(self.data_dir / "stack.json").read_text())
        entry = state["services"][name] if name in state.get("services", {}) else state[name]
        return int(entry["pid"])

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def ready(self, name: str) -> bool:
        """Whether a service answers as ready (api: /readyz, ingest and alerting: their metric)."""
        port = self.component(name).get("port")
        try:
            if name == "api":
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            module = name.split("-")[0]  # worker "alerting-1" runs the alerting service
            return f"sitewatch_{module}_ready 1.0" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        except httpx.HTTPError:
            return False

    def metric(self, service: str, name: str) -> float | None:
        port = self.component(service).get("port")
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.down()


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One query on a fresh connection (the harness is synchronous; the database may be away)."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


# -- observers ---------------------------------------------------------------------------------
class MqttAlerts:
    """The site's alert changes on `sw/v1/{site}/alerts`, as its gateway receives them."""

    def __init__(self, stack: FaultStack, site: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        # a persistent session, as an enterprise system's: what comes while the broker restarts is kept
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fault-listener-{site}",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        client.username_pw_set(f"{site}/GW-1", PASSWORD)
        client.on_message = lambda _c, _u, msg: self._add(json.loads(msg.payload))
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_connect = lambda c, *_: c.subscribe(f"sw/v1/{site}/alerts", 1)
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.connect(stack.mqtt_host, stack.mqtt_port)
        client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("no SUBACK for the alert listener")
        self._client = client

    def _add(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)

    def seen(self, key: tuple[str, str, str], change: str) -> bool:
        with self._lock:
            return any(_key(m) == key and m.get("change") == change for m in self.messages)

    def steps(self) -> dict[tuple[str, str, str], list[str]]:
        """The ordered changes per alert, repeats of a step counted once: MQTT is at least once
        (a QoS 1 redelivery; a change published, then re-derived by an evaluator restarted before
        it stored it)."""
        with self._lock:
            return _steps(self.messages, dedup=True)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class SseAlerts:
    """An SSE client of `/api/v1/alerts/stream` that reconnects with `Last-Event-ID`, as the
    dispatch room's browser does."""

    def __init__(self, stack: FaultStack, site: str, after: int) -> None:
        self.stack, self.site, self.last = stack, site, after
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(5, read=30)) as c,
                    c.stream(
                        "GET",
                        f"{self.stack.api}/api/v1/alerts/stream",
                        headers={"Authorization": f"Bearer {self.stack.token}", "Last-Event-ID": str(self.last)},
                    ) as r,
                ):
                    event_id = None
                    for line in r.iter_lines():
                        if self._stop.is_set():
                            return
                        if line.startswith("id: "):
                            event_id = int(line[4:])
                        elif line.startswith("data: ") and event_id is not None:
                            body = json.loads(line[6:])
                            self.last = event_id
                            if body.get("site") == self.site:
                                self.events.append((event_id, body))
            except (httpx.HTTPError, OSError):
                pass
            self.reconnects += 1
            self._stop.wait(0.5)  # the server's `retry:` is 2 s; a test need not wait that long

    def ids(self) -> list[int]:
        return [i for i, _ in self.events]

    def close(self) -> None:
        self._stop.set()


def _key(m: dict[str, Any]) -> tuple[str, str, str]:
    return (m["source"]["type"], m["source"]["code"], m["rule"])


def _steps(messages: list[dict[str, Any]], *, dedup: bool) -> dict[tuple[str, str, str], list[str]]:
    out: dict[tuple[str, str, str], list[str]] = {}
    seen: set[str] = set()
    for m in messages:
        ident = json.dumps([_key(m), m["change"], m["severity"], m["count"], m["cleared"]])
        if dedup and ident in seen:
            continue
        seen.add(ident)
        out.setdefault(_key(m), []).append(m["change"])
    return out


# -- publishing --------------------------------------------------------------------------------
@dataclass
class Publisher:
    """Publishes a plan at its pace on its own thread; counts what it handed to the client."""

    gateway: Gateway
    plan: list[Step]
    published_readings: int = 0
    published_ts: int = 0  # the event time of the last step handed over
    infos: list[paho.MQTTMessageInfo] = field(default_factory=list)
    reached: dict[int, threading.Event] = field(default_factory=dict)

    def at(self, index: int) -> threading.Event:
        return self.reached.setdefault(index, threading.Event())

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        started = time.monotonic()
        pace = threading.Event()
        for i, step in enumerate(self.plan):
            pace.wait(max(0.0, started + step.at_s - time.monotonic()))  # a steady rate, not a wait for state
            send = self.gateway.telemetry if step.channel == "telemetry" else self.gateway.positions
            self.infos.append(send(step.items))
            self.published_readings += step.readings
            self.published_ts = max(int(item["ts"]) for item in step.items)
            if i in self.reached:
                self.reached[i].set()

    def acknowledged(self) -> bool:
        """Every publish acknowledged by the broker (those sent while it was away included)."""
        # not is_published(): it raises for a message handed over while the broker was away,
        # which paho sends once it is back
        return len(self.infos) == len(self.plan) and all(info._published for info in self.infos)


# -- a run -------------------------------------------------------------------------------------
@dataclass
class Fault:
    """What strikes mid-stream: `inject` starts it, after `outage_s` `end` ends it (nothing to do
    when the supervisor brings the component back); `component` must answer again."""

    name: str
    inject: Callable[[FaultStack, RunContext], None]
    end: Callable[[FaultStack, RunContext], None] = lambda _s, _c: None
    outage_s: float = 0.0
    component: str | None = None
    at: float = 0.4  # when it strikes, as a fraction of the workload
    after_change: tuple[tuple[str, str, str], str] | None = None  # …or right after this alert change
    setup: Callable[[FaultStack], None] = lambda _s: None
    teardown: Callable[[FaultStack], None] = lambda _s: None
    # alerts the fault itself rightly causes, beyond the workload's: (source, rule) → steps
    extra: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)


@dataclass
class RunContext:
    site: str
    workload: Workload
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlertState:
    """Per (source type, source, rule): the alert rows and the ordered steps of the event log."""

    alerts: dict[tuple[str, str, str], list[dict[str, Any]]]
    steps: dict[tuple[str, str, str], list[str]]
    event_ids: list[int]

    def comparable(self) -> dict[tuple[str, str, str], Any]:
        return {key: (rows, self.steps.get(key)) for key, rows in self.alerts.items()}


@dataclass
class Result:
    fault: str
    site: str
    readings_published: int
    readings_stored: int
    readings_doubled: int
    points_mismatched: list[str]
    positions_published: int
    positions_stored: int
    alert_steps_expected: int
    alert_steps_seen: int
    state: AlertState
    mqtt_steps: dict[tuple[str, str, str], list[str]]
    sse_ids: list[int]
    deadlines_ok: bool
    recovery_s: float | None
    notes: dict[str, Any] = field(default_factory=dict)
    extra: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def problems(self, baseline: Result | None) -> list[str]:
        """Everything that differs from a clean run (empty: the fault cost nothing), but the
        alerts the fault itself causes (`Fault.extra`), which must be exactly those."""
        out = []
        for key, steps in self.extra.items():
            if self.state.steps.get(key) != steps:
                out.append(f"{key}: the fault's own alert steps {self.state.steps.get(key)} != {steps}")
            self.state.steps.pop(key, None)
            self.state.alerts.pop(key, None)
            self.mqtt_steps.pop(key, None)
        if self.notes.get("spool_over_bound"):
            out.append(f"the spool passed its bound: {self.notes['spool_over_bound']}")
        if self.readings_stored != self.readings_published or self.points_mismatched:
            out.append(
                f"readings: published {self.readings_published}, stored {self.readings_stored}, "
                f"mismatched points {self.points_mismatched}"
            )
        if self.positions_stored != self.positions_published:
            out.append(f"positions: published {self.positions_published}, stored {self.positions_stored}")
        if {k: v for k, v in self.state.steps.items()} != EXPECTED_STEPS:
            out.append(f"alert steps stored {self.state.steps} != expected {EXPECTED_STEPS}")
        if self.mqtt_steps != EXPECTED_STEPS:
            out.append(f"alert steps on MQTT {self.mqtt_steps} != expected {EXPECTED_STEPS}")
        if baseline is not None and self.state.comparable() != baseline.state.comparable():
            out.append(f"alert state {self.state.comparable()} != baseline {baseline.state.comparable()}")
        if any(len(rows) != 1 for rows in self.state.alerts.values()):
            out.append(f"an alert raised twice: {self.state.alerts}")
        if not self.deadlines_ok:
            out.append("a due_at is not the end of its raise's local day")
        if self.sse_ids != self.state.event_ids:
            out.append(f"SSE saw events {self.sse_ids}, the log holds {self.state.event_ids}")
        return out

    def row(self) -> str:
        recovery = "–" if self.recovery_s is None else f"{self.recovery_s:.1f} s"
        return (
            f"| {self.fault} | {self.readings_published} | {self.readings_stored} | {self.readings_doubled} "
            f"| {self.alert_steps_expected} | {self.alert_steps_seen} | {recovery} |"
        )


TABLE_HEADER = (
    "| fault | readings published | stored | doubled | alert steps expected | seen | recovery |\n"
    "|---|---|---|---|---|---|---|"
)


def alert_state(dsn: str, site: str) -> tuple[AlertState, bool]:
    """The stored alert state of `site`, times as offsets from the run's t0 (in `notes`), and
    whether every deadline is the end of its raise's local day."""
    rows = query(
        dsn,
        "SELECT a.source_type, a.source_code, a.rule, a.severity, a.count, a.peak, a.cleared, a.overdue,"
        " (extract(epoch FROM a.raised_at) * 1000)::bigint AS raised_ms,"
        " (extract(epoch FROM a.due_at) * 1000)::bigint AS due_ms"
        " FROM alerts a JOIN sites s ON s.id = a.site_id WHERE s.code = $1 ORDER BY a.raised_at",
        site,
    )
    events = query(
        dsn,
        "SELECT e.id, e.body FROM alert_events e JOIN sites s ON s.id = e.site_id WHERE s.code = $1 ORDER BY e.id",
        site,
    )
    alerts: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    deadlines_ok = True
    for r in rows:
        deadlines_ok &= r["due_ms"] == end_of_day_ms(r["raised_ms"], TIMEZONE)
        alerts.setdefault((r["source_type"], r["source_code"], r["rule"]), []).append(
            {
                "severity": r["severity"],
                "count": r["count"],
                "peak": r["peak"],
                "cleared": r["cleared"],
                "overdue": r["overdue"],
                "raised_ms": r["raised_ms"],
                "due_ms": r["due_ms"],
            }
        )
    bodies = [json.loads(e["body"]) if isinstance(e["body"], str) else e["body"] for e in events]
    state = AlertState(alerts, _steps(bodies, dedup=False), [int(e["id"]) for e in events])
    return state, bool(deadlines_ok)


def relative(state: AlertState, t0_ms: int) -> AlertState:
    """Times as offsets from the run's start; the deadline as the day it falls on, relative too."""
    alerts = {}
    for key, rows in state.alerts.items():
        alerts[key] = [
            {
                **row,
                "raised_ms": row["raised_ms"] - t0_ms,
                "due_ms": "end of the raise's local day"
                if row["due_ms"] == end_of_day_ms(row["raised_ms"], TIMEZONE)
                else row["due_ms"],
            }
            for row in rows
        ]
    return AlertState(alerts, state.steps, state.event_ids)


def stored_readings(dsn: str, site: str) -> dict[str, tuple[int, float, int]]:
    rows = query(
        dsn,
        "SELECT p.code, count(*) AS n, sum(r.value) AS v, sum((extract(epoch FROM r.ts) * 1000)::bigint) AS t"
        " FROM readings r JOIN points p ON p.id = r.point_id JOIN sites s ON s.id = p.site_id"
        " WHERE s.code = $1 GROUP BY p.code",
        site,
    )
    return {r["code"]: (int(r["n"]), float(r["v"]), int(r["t"])) for r in rows}


def published_readings(plan: list[Step]) -> dict[str, tuple[int, float, int]]:
    out: dict[str, tuple[int, float, int]] = {}
    for step in plan:
        for r in step.items if step.channel == "telemetry" else []:
            n, v, t = out.get(r["point"], (0, 0.0, 0))
            out[r["point"]] = (n + 1, v + r["value"], t + r["ts"])
    return out


def count_stored(dsn: str, site: str) -> tuple[int, int]:
    """(readings, positions) stored for `site`."""
    row = query(
        dsn,
        "SELECT (SELECT count(*) FROM readings r JOIN points p ON p.id = r.point_id WHERE p.site_id = s.id) AS r,"
        " (SELECT count(*) FROM positions WHERE site_id = s.id) AS p FROM sites s WHERE s.code = $1",
        site,
    )[0]
    return int(row["r"]), int(row["p"])


def checkpoint(dsn: str, site: str) -> int:
    """How far alerting has evaluated `site`: its shard's checkpoint when workers are sharded."""
    value = query(
        dsn,
        "SELECT value FROM storage_info WHERE key = coalesce('alerting_checkpoint_ms:s' || ("
        " SELECT ss.shard::text FROM site_shards ss JOIN sites s ON s.id = ss.site_id WHERE s.code = $1"
        " AND (SELECT value::int FROM storage_info WHERE key = 'shards') > 1), 'alerting_checkpoint_ms')",
        site,
    )
    return int(value[0]["value"]) if value else 0


def owner(dsn: str, service: str, site: str) -> str:
    """The worker ("alerting", "alerting-1", …) whose shard holds `site`, by the shard's number."""
    shard = query(dsn, "SELECT ss.shard FROM site_shards ss JOIN sites s ON s.id = ss.site_id WHERE s.code = $1", site)
    n = int(shard[0]["shard"]) if shard else 0
    return f"{service}-{n}" if n else service


def lease_holder(dsn: str, service: str, shard: int) -> str | None:
    rows = query(dsn, "SELECT owner FROM shard_leases WHERE service = $1 AND shard = $2", service, shard)
    return str(rows[0]["owner"]) if rows else None


def caught_up(stack: FaultStack, site: str, readings: int, ts_ms: int, component: str | None) -> bool:
    """Every reading up to `readings` stored, the evaluator's alerts stored past `ts_ms`, the
    component answering."""
    if component in ("ingest", "alerting", "api") and not stack.ready(component):
        return False
    try:
        return count_stored(stack.dsn, site)[0] >= readings and checkpoint(stack.dsn, site) >= ts_ms
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


@contextlib.contextmanager
def observers(stack: FaultStack, site: str) -> Iterator[tuple[MqttAlerts, SseAlerts]]:
    after = int(query(stack.dsn, "SELECT coalesce(max(id), 0) AS m FROM alert_events")[0]["m"])
    mqtt, sse = MqttAlerts(stack, site), SseAlerts(stack, site, after)
    try:
        yield mqtt, sse
    finally:
        mqtt.close()
        sse.close()


def run(stack: FaultStack, workload: Workload, fault: Fault | None, *, prefix: str = "FLT") -> Result:
    """Publish `workload` on a fresh site while `fault` strikes; the books afterwards."""
    site = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with stack.http() as c:
        r = c.put("/api/v1/catalog", json=workload.catalog(site))
        assert r.status_code == 200, r.text
    ctx = RunContext(site, workload)
    if fault is not None:
        fault.setup(stack)
    try:
        return _run(stack, workload, fault, ctx)
    finally:
        if fault is not None:
            fault.teardown(stack)


def _run(stack: FaultStack, workload: Workload, fault: Fault | None, ctx: RunContext) -> Result:
    site = ctx.site
    t0 = now_ms()
    plan = workload.plan(t0)
    recovery = None
    with observers(stack, site) as (mqtt, sse):
        gw = Gateway(
            stack.mqtt_host, stack.mqtt_port, site, "GW-1", PASSWORD, client_id=f"fault-gw-{site}", first_seq=1
        )
        gw._client.reconnect_delay_set(min_delay=1, max_delay=2)  # a gateway retrying every second or two
        gw.connect()
        publisher = Publisher(gw, plan)
        strike = publisher.at(int(len(plan) * (fault.at if fault else 0)))
        thread = publisher.start()
        if fault is not None:
            if fault.after_change is not None:
                key, change = fault.after_change
                wait_until(
                    f"{change} of {key} on MQTT",
                    lambda: mqtt.seen(key, change),
                    timeout=workload.duration_s + 60,
                    poll_s=0.01,
                )
            else:
                assert strike.wait(workload.duration_s + 60), "the publisher never reached the fault"
            fault.inject(stack, ctx)
            if fault.outage_s:
                threading.Event().wait(fault.outage_s)  # the outage itself: its length is the point
            fault.end(stack, ctx)
            end_readings, end_ts = publisher.published_readings, publisher.published_ts
            component = fault.component
            recovery = wait_until(
                f"recovery from {fault.name}",
                lambda: caught_up(stack, site, end_readings, end_ts, component),
                timeout=300,
            )
        thread.join(workload.duration_s + 120)
        wait_until("the broker acknowledged every publish", publisher.acknowledged, timeout=120)
        gw.close()  # a clean DISCONNECT: no last will
        total = sum(s.readings for s in plan)
        positions = sum(len(s.items) for s in plan if s.channel == "positions")
        last_ts = max(int(item["ts"]) for s in plan for item in s.items)
        wait_until(
            "everything stored and evaluated",
            lambda: caught_up(stack, site, total, last_ts, None) and count_stored(stack.dsn, site)[1] >= positions,
            timeout=180,
        )
        state, deadlines_ok = alert_state(stack.dsn, site)
        with contextlib.suppress(TimeoutError):
            wait_until("SSE caught up", lambda: sse.ids()[-len(state.event_ids) :] == state.event_ids, timeout=30)
            wait_until(
                "MQTT caught up", lambda: sum(map(len, mqtt.steps().values())) >= len(state.event_ids), timeout=10
            )
        mqtt_steps = mqtt.steps()
        sse_ids = sse.ids()
        ctx.notes["sse_reconnects"] = sse.reconnects
    published = published_readings(plan)
    stored = stored_readings(stack.dsn, site)
    n_stored, n_positions = count_stored(stack.dsn, site)
    doubled = sum(max(0, stored.get(p, (0, 0.0, 0))[0] - n) for p, (n, _v, _t) in published.items())
    return Result(
        fault=fault.name if fault else "none (baseline)",
        site=site,
        readings_published=total,
        readings_stored=n_stored,
        readings_doubled=doubled,
        points_mismatched=sorted(p for p in published if stored.get(p) != published[p]),
        positions_published=positions,
        positions_stored=n_positions,
        alert_steps_expected=sum(map(len, EXPECTED_STEPS.values())),
        alert_steps_seen=len(state.event_ids),
        state=relative(state, t0),
        mqtt_steps=mqtt_steps,
        sse_ids=sse_ids,
        deadlines_ok=deadlines_ok,
        recovery_s=recovery,
        notes=ctx.notes,
        extra=dict(fault.extra) if fault else {},
    )


# -- the faults --------------------------------------------------------------------------------
def kill(component: str) -> Callable[[FaultStack, RunContext], None]:
    def inject(stack: FaultStack, ctx: RunContext) -> None:
        pid = stack.pid(component)
        os.kill(pid, 9)
        ctx.notes["killed_pid"] = pid

    return inject


def stop(component: str) -> Callable[[FaultStack, RunContext], None]:
    return lambda stack, _ctx: stack.down(component)


def restart(stack: FaultStack, _ctx: RunContext) -> None:
    stack.up()


def spool_bound(max_bytes: int) -> tuple[Callable[[FaultStack], None], Callable[[FaultStack], None]]:
    """Setup and teardown that run ingest with a spool of `max_bytes`."""

    def setup(stack: FaultStack) -> None:
        stack.down("ingest")
        stack.up({"SITEWATCH_SPOOL_MAX_BYTES": str(max_bytes)})

    def teardown(stack: FaultStack) -> None:
        stack.down("ingest")
        stack.up()

    return setup, teardown


def spool_fill(max_bytes: int) -> Callable[[FaultStack, RunContext], None]:
    """Stop PostgreSQL and watch the spool fill: its bytes never pass the bound (plus the one
    batch in flight), and the broker keeps what does not fit."""

    def inject(stack: FaultStack, ctx: RunContext) -> None:
        stack.down("postgres")
        peak = 0.0

        def watch() -> None:
            nonlocal peak
            pace = threading.Event()
            while not ctx.notes.get("spool_watch_done"):
                spooled = stack.metric("ingest", "sitewatch_ingest_spool_bytes") or 0.0
                batches = stack.metric("ingest", "sitewatch_ingest_spool_batches") or 0.0
                peak = max(peak, spooled)
                ctx.notes["spool_peak_bytes"] = int(peak)
                if batches > 1 and spooled > max_bytes:  # only a batch alone may be larger
                    ctx.notes["spool_over_bound"] = f"{spooled:.0f} bytes in {batches:.0f} batches"
                pace.wait(0.05)  # sampling the metric

        threading.Thread(target=watch, daemon=True).start()

    return inject


def storage_stall() -> tuple[Callable[[FaultStack, RunContext], None], Callable[[FaultStack, RunContext], None]]:
    """Storage that cannot keep up: a session holds `readings` in SHARE mode (reads go on, writes
    wait), as a database saturated by more load than it can take would. Ingest must defer to its
    spool and say "overloaded" on `/status` while alerting stays live; once the lock goes, the
    spool drains ("catching_up") and the state returns to "ok". The states seen are noted."""
    release = threading.Event()
    holder: list[threading.Thread] = []

    def hold(dsn: str, locked: threading.Event) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                async with conn.transaction():
                    await conn.execute("LOCK TABLE readings IN SHARE MODE")
                    locked.set()
                    await asyncio.to_thread(release.wait, 120)
            finally:
                await conn.close()

        asyncio.run(run())

    def watch(stack: FaultStack, ctx: RunContext) -> None:
        seen: list[str] = ctx.notes.setdefault("states", [])
        pace = threading.Event()
        with stack.http() as c:
            while not ctx.notes.get("status_watch_done"):
                with contextlib.suppress(httpx.HTTPError):
                    body = c.get("/status", timeout=2).json()
                    state = f"{body['status']}/{body['services']['ingest'].get('load', '?')}"
                    if not seen or seen[-1] != state:
                        seen.append(state)
                    ctx.notes["max_alerting_delay_s"] = max(
                        ctx.notes.get("max_alerting_delay_s", 0.0), body["services"]["alerting"].get("delay_s", 0.0)
                    )
                    if seen[-1] == "ok/normal" and ctx.notes.get("stall_ended"):
                        return
                pace.wait(0.1)  # sampling /status

    def inject(stack: FaultStack, ctx: RunContext) -> None:
        release.clear()
        locked = threading.Event()
        holder[:] = [threading.Thread(target=hold, args=(stack.dsn, locked), daemon=True)]
        holder[0].start()
        assert locked.wait(10), "could not lock readings"
        threading.Thread(target=watch, args=(stack, ctx), daemon=True).start()

    def end(_stack: FaultStack, ctx: RunContext) -> None:
        release.set()
        holder[0].join(10)
        ctx.notes["stall_ended"] = True

    return inject, end


def kill_owner(
    service: str,
) -> tuple[Callable[[FaultStack, RunContext], None], Callable[[FaultStack, RunContext], None]]:
    """Sharded workers: SIGKILL the worker that owns the run's site, with the supervisor first so
    that it stays dead; another worker must take its shard over (`takeover_s`, kill → lease held by
    another). The end is `stack up`: the worker is back and is handed its shard again
    (`handback_s`)."""

    def inject(stack: FaultStack, ctx: RunContext) -> None:
        name = owner(stack.dsn, service, ctx.site)
        shard = int(name.rpartition("-")[2]) if "-" in name else 0
        os.kill(stack.pid("supervisor"), 9)
        killed = time.monotonic()
        os.kill(stack.pid(name), 9)
        ctx.notes.update(killed=name, killed_pid=stack.pid(name), shard=shard)
        home = f"{service}-{shard}@"

        def taken_over() -> bool:
            holder = lease_holder(stack.dsn, service, shard)
            return holder is not None and not holder.startswith(home)

        wait_until(f"another worker runs {service} shard {shard}", taken_over, timeout=30, poll_s=0.05)
        ctx.notes["takeover_s"] = round(time.monotonic() - killed, 2)
        ctx.notes["taken_by"] = lease_holder(stack.dsn, service, shard)

    def end(stack: FaultStack, ctx: RunContext) -> None:
        back = time.monotonic()  # `up` restarts the worker (and the supervisor) and waits for it
        stack.up()
        home = f"{service}-{ctx.notes['shard']}@"
        wait_until(
            f"{ctx.notes['killed']} runs its shard again",
            lambda: (lease_holder(stack.dsn, service, ctx.notes["shard"]) or "").startswith(home),
            timeout=30,
            poll_s=0.05,
        )
        ctx.notes["handback_s"] = round(time.monotonic() - back, 2)

    return inject, end


def faults(outage_s: float, spool_max_bytes: int) -> list[Fault]:
    """The matrix: each fault in turn, outages of `outage_s`."""
    spool_setup, spool_teardown = spool_bound(spool_max_bytes)

    def end_spool(stack: FaultStack, ctx: RunContext) -> None:
        stack.up()
        ctx.notes["spool_watch_done"] = True

    stall, unstall = storage_stall()

    return [
        Fault("kill -9 ingest", kill("ingest"), component="ingest"),
        Fault(
            "kill -9 alerting",
            kill("alerting"),
            component="alerting",
            after_change=(("point", "P0", "threshold"), "retrigger"),
        ),
        Fault("kill -9 api", kill("api"), component="api", at=0.5),
        Fault(f"PostgreSQL stopped {outage_s:.0f} s", stop("postgres"), restart, outage_s=outage_s),
        Fault(
            f"Mosquitto restarted ({outage_s:.0f} s down)",
            stop("mosquitto"),
            restart,
            outage_s=outage_s,
            # the broker going away is every gateway dropping off: its last will raises one
            # gateway-offline alert, cleared when it is back
            extra={("gateway", "GW-1", "offline"): ["raise", "clear"]},
        ),
        Fault(
            f"spool full ({spool_max_bytes // 1024} KiB bound, PostgreSQL {outage_s:.0f} s away)",
            spool_fill(spool_max_bytes),
            end_spool,
            outage_s=outage_s,
            setup=spool_setup,
            teardown=spool_teardown,
        ),
        Fault(f"storage stalled {outage_s:.0f} s (overload)", stall, unstall, outage_s=outage_s),
    ]


def elapsed(since: float) -> str:
    return str(dt.timedelta(seconds=round(time.monotonic() - since)))
