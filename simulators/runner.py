"""Run simulated sites against a running stack in real time, and check its alerts against the
ground truth of the scenarios.

Everything goes through PROTOCOL.md: the catalog through `PUT /api/v1/catalog` (with an admin
token), readings and positions through MQTT with each gateway's own credentials (a gateway's
`seq` starts from the clock, so a rerun is never taken for a redelivery), alerts from
`sw/v1/{site}/alerts`, and the simulated dispatcher closes a round's alerts through the alert
API. Time is the wall clock: timestamps are now, so the same-day logic, offline timers and
on-delays run as they would at a site.

- `Runner`: loads sites' catalogs, connects their gateways, steps every site each `tick_s` and
  publishes what it sends; a gateway's outage is a real dropped connection (its last will).
- `Checker`: subscribes to alert topics and turns alert messages into `Step`s.
- `play`: the `sitewatch simulate` session: quiet sites, scenarios in turn (or in a loop), each
  ground-truth alert reported as it arrives, and a final precision/recall.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.gateway import Gateway
from simulators.scenarios import SCENARIOS, Incident, make
from simulators.sites import KINDS, Batch, SiteSim, merge_catalogs
from simulators.truth import Expected, Report, Step, Steps, judge
from sitewatch.tls import client_context, verify

TICK_S = 0.25
DISPATCHER = "模拟调度员 simulator"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Target:
    """A running stack: its API with an admin token, and its broker."""

    api: str
    token: str
    mqtt_host: str
    mqtt_port: int
    mqtt_cafile: str | None = None  # TLS (`stack up --tls`): the CA of the broker's and the API's certificates

    @classmethod
    def of(cls, status: dict[str, Any]) -> Target:
        """The target a `stack up --json` or `stack status --json` describes."""
        mqtt = status["mqtt"]
        return cls(status["api"], status["token"], mqtt["host"], mqtt["port"], mqtt.get("cafile"))


class Api:
    """The few API calls a simulation needs: load a catalog, close a site's alerts."""

    def __init__(self, target: Target) -> None:
        self._http = httpx.Client(
            base_url=f"{target.api}/api/v1",
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=60,
            verify=verify(target.mqtt_cafile),
        )

    def load(self, doc: dict[str, Any]) -> dict[str, Any]:
        r = self._http.put("/catalog", json=doc)
        if r.status_code == 422:
            problems = r.json().get("detail", {}).get("problems", [])
            raise ValueError("the catalog was refused: " + "; ".join(f"{p['path']}: {p['message']}" for p in problems))
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def close_alerts(self, site: str) -> int:
        """Handle and close every alert of `site` not closed yet, as the dispatch seat does after a
        drill (closing also resets a latched gas alarm). Returns how many were closed."""
        closed = 0
        for state in ("open", "acknowledged", "handled"):
            r = self._http.get("/alerts", params={"site": site, "state": state, "limit": 1000})
            if r.status_code == 404:
                return closed
            r.raise_for_status()
            for alert in r.json()["alerts"]:
                body = {"by": DISPATCHER, "note": "模拟演练结束 drill over"}
                if state != "handled":
                    self._http.post(f"/alerts/{alert['id']}/handle", json=body).raise_for_status()
                self._http.post(f"/alerts/{alert['id']}/close", json=body).raise_for_status()
                closed += 1
        return closed

    def close(self) -> None:
        self._http.close()


class Checker:
    """Alert messages from the broker as `Step`s, kept in arrival order (thread-safe)."""

    def __init__(self, host: str, port: int, cafile: str | None = None) -> None:
        self.host, self.port, self.cafile = host, port, cafile
        self._clients: list[paho.Client] = []
        self._steps = Steps()
        self._lock = threading.Lock()
        self.steps: list[Step] = []
        self.fresh: queue.Queue[Step] = queue.Queue()

    def subscribe(self, username: str, password: str, topic: str, timeout: float = 10.0) -> None:
        """One more subscription: a site's gateway may read `sw/v1/{site}/alerts`; the stack's
        admin broker user may read `sw/v1/+/alerts`."""
        subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-checker-{len(self._clients)}-{now_ms()}")
        client.username_pw_set(username, password)
        if self.cafile:
            client.tls_set_context(client_context(self.cafile))
        client.on_message = lambda _c, _u, msg: self._on_message(msg.payload)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        client.connect(self.host, self.port)
        client.loop_start()
        self._clients.append(client)
        if not subscribed.wait(timeout):
            raise TimeoutError(f"no SUBACK for {topic} as {username}")

    def subscribe_sites(self, sims: Iterable[SiteSim]) -> None:
        for sim in sims:
            self.subscribe(f"{sim.code}/{sim.listener}", sim.password(sim.listener), f"sw/v1/{sim.code}/alerts")

    def _on_message(self, payload: bytes | bytearray) -> None:
        step = self._steps.observe(json.loads(payload), now_ms())
        if step is not None:
            with self._lock:
                self.steps.append(step)
            self.fresh.put(step)

    def of(self, sites: Iterable[str], since_ms: int = 0, until_ms: int | None = None) -> list[Step]:
        codes = set(sites)
        with self._lock:
            return [
                s
                for s in self.steps
                if s.site in codes and s.at_ms >= since_ms and (until_ms is None or s.at_ms <= until_ms)
            ]

    def close(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()


class Runner:
    """Steps simulated sites in real time and publishes what their gateways send."""

    def __init__(self, target: Target, *, tick_s: float = TICK_S) -> None:
        self.target = target
        self.tick_s = tick_s
        self.api = Api(target)
        self.sims: dict[str, SiteSim] = {}
        self._gateways: dict[tuple[str, str], Gateway] = {}
        self._seq: dict[tuple[str, str], int] = {}
        self.published = 0

    def load(self, sims: list[SiteSim]) -> None:
        """Put the sites' catalog into the stack (gateways get their broker credentials)."""
        self.api.load(merge_catalogs([s.catalog() for s in sims]))

    def start(self, sims: list[SiteSim]) -> None:
        """Connect the sites' gateways and send their first step at once (their points' offline
        timers run from the catalog load). A site replacing one of the same code keeps its
        connected gateways."""
        for sim in sims:
            for gw in sim.gateways:
                if (sim.code, gw) not in self._gateways:
                    self._connect(sim, gw)
            self.sims[sim.code] = sim
        t = now_ms()
        for sim in sims:
            self._publish(sim, t)

    def add(self, sims: list[SiteSim]) -> None:
        self.load(sims)
        self.start(sims)

    def _connect(self, sim: SiteSim, gw: str, attempts: int = 20) -> None:
        key = (sim.code, gw)
        seq = max(self._seq.get(key, 0), now_ms())
        for attempt in range(attempts):
            try:
                gateway = Gateway(
                    self.target.mqtt_host,
                    self.target.mqtt_port,
                    sim.code,
                    gw,
                    sim.password(gw),
                    first_seq=seq,
                    cafile=self.target.mqtt_cafile,
                )
                self._gateways[key] = gateway.connect()
                return
            except ConnectionRefusedError:  # the broker may still be reloading the credentials
                if attempt == attempts - 1:
                    raise
                time.sleep(0.25)

    def _publish(self, sim: SiteSim, t: int) -> None:
        for message in sim.step(t):
            key = (sim.code, message.gateway)
            if not isinstance(message, Batch):
                if message.up:
                    self._connect(sim, message.gateway)
                elif key in self._gateways:
                    gateway = self._gateways.pop(key)
                    self._seq[key] = gateway.seq
                    gateway.die()
                continue
            live = self._gateways.get(key)
            if live is None:
                continue
            if message.channel == "telemetry":
                live.telemetry(message.items)
            else:
                live.positions(message.items)
            self.published += 1

    def tick(self) -> None:
        t = now_ms()
        for sim in list(self.sims.values()):
            self._publish(sim, t)

    def run_until(self, t_ms: int, on_tick: Callable[[], None] | None = None) -> None:
        """Step every site each tick until the wall clock reaches `t_ms`."""
        while True:
            began = time.monotonic()
            self.tick()
            if on_tick is not None:
                on_tick()
            if now_ms() >= t_ms:
                return
            time.sleep(max(0.0, self.tick_s - (time.monotonic() - began)))

    def close(self) -> None:
        """Stop the sites: their workers leave, their gateways announce `offline` and disconnect."""
        t = now_ms()
        for sim in self.sims.values():
            for message in sim.shutdown(t):
                gateway = self._gateways.get((sim.code, message.gateway))
                if gateway is not None and isinstance(message, Batch):
                    gateway.flush([gateway.positions(message.items)])
        for gateway in self._gateways.values():
            gateway.leave()
        self._gateways.clear()
        self.api.close()


# -- a session of `sitewatch simulate` -------------------------------------------------------------
QUIET_NAMES = {"underground_mine": "MINE", "open_pit": "PIT", "tank_farm": "TANK", "dust_plant": "DUST"}


def quiet_sites(n: int, *, prefix: str = "SIM", seed: int = 0) -> list[SiteSim]:
    """`n` normal sites, the kinds in turn: PREFIX-MINE-1, PREFIX-PIT-2, …"""
    kinds = list(KINDS)
    sims = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        sims.append(KINDS[kind](f"{prefix}-{QUIET_NAMES[kind]}-{i + 1}", seed=seed))
    return sims


def scenario_site(name: str, prefix: str = "SIM") -> str:
    return f"{prefix}-{name.upper().replace('_', '-')}"


@dataclass(slots=True)
class Round:
    incident: Incident
    began_ms: int  # the site (re)started
    report: Report = field(default_factory=Report)


@dataclass(slots=True)
class Session:
    """What `play` did: each round with its report (judged over the whole time its site ran
    it, so an alert after the round's check is unexpected too), and the quiet sites' report."""

    rounds: list[Round] = field(default_factory=list)
    quiet: Report = field(default_factory=Report)

    @property
    def total(self) -> Report:
        report = self.quiet
        for r in self.rounds:
            report = report + r.report
        return report


def play(
    target: Target,
    scenarios: list[str],
    *,
    checker: Checker,
    sites: int = 0,
    seed: int = 0,
    prefix: str = "SIM",
    duration_s: float | None = None,
    loop: bool = False,
    out: Callable[[str], None] = print,
) -> Session:
    """Run `sites` quiet sites, and each scenario in turn on its own site; report each
    ground-truth alert as it arrives, and each round's precision and recall.

    Before a round the simulated dispatcher closes what its site left open (a rerun's latched
    gas alarm). With `loop`, the scenarios run again and again, each round once the site of the
    last one recovered, until `duration_s` has passed; without scenarios the quiet sites run
    for `duration_s`."""
    runner = Runner(target)
    session = Session()
    began = now_ms()
    ends = began + round(duration_s * 1000) if duration_s else None
    quiet = quiet_sites(sites, prefix=prefix, seed=seed)
    pending: list[tuple[Incident, Expected]] = []

    def announce() -> None:
        while True:
            try:
                step = checker.fresh.get_nowait()
            except queue.Empty:
                return
            found = next(((inc, e) for inc, e in pending if e.key == step.key), None)
            if found is not None:
                pending.remove(found)
                inc, e = found
                latency = (step.at_ms - inc.start_ms) / 1000
                verdict = "on time" if latency <= e.by_s else "LATE"
                out(f"  ✓ {e}  after {latency:.1f} s (due by {e.by_s:g} s, {verdict})")
            elif step.site in runner.sims:
                out(f"  ✗ unexpected: {step}  {step.message}")

    def run_round(name: str) -> None:
        nonlocal pending
        site = scenario_site(name, prefix)
        runner.api.close_alerts(site)
        round_ = Round(make(name, site, seed=seed, start_ms=now_ms()), now_ms())
        incident = round_.incident
        runner.add([incident.sim])
        session.rounds.append(round_)
        out(f"{name} on {site}: {SCENARIOS[name].summary}; incident in {SCENARIOS[name].lead_s:g} s")
        pending += [(incident, e) for e in incident.expected]
        checked = incident.start_ms + round(incident.check_s * 1000)
        runner.run_until(checked, announce)
        report = judge(incident.expected, incident.start_ms, checker.of([site], round_.began_ms), [site])
        pending = [(i, e) for i, e in pending if i is not incident]
        out(f"{name}: {report.summary()}")
        for e in report.missing:
            out(f"  MISSING {e} (due by {e.by_s:g} s)")
        if loop:
            runner.run_until(incident.start_ms + round(incident.recover_s * 1000), announce)

    try:
        if quiet:
            runner.add(quiet)
            out(f"{len(quiet)} quiet site(s): {', '.join(s.code for s in quiet)}")
        while scenarios:
            for name in scenarios:
                run_round(name)
            if not loop or (ends is not None and now_ms() >= ends):
                break
        if ends is not None and now_ms() < ends:
            runner.run_until(ends, announce)
        time.sleep(1.0)  # what is in flight
        announce()
    except KeyboardInterrupt:
        out("interrupted: stopping the sites")
    finally:
        finished = now_ms()
        for i, r in enumerate(session.rounds):
            site = r.incident.sim.code
            later = [n.began_ms for n in session.rounds[i + 1 :] if n.incident.sim.code == site]
            steps = checker.of([site], r.began_ms, later[0] if later else finished)
            r.report = judge(r.incident.expected, r.incident.start_ms, steps, [site])
        codes = [s.code for s in quiet]
        session.quiet = judge([], began, checker.of(codes, began, finished), codes)
        runner.close()
    return session
