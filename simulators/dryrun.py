"""Simulated sites through the product's own evaluator in-process, in simulated time: hours of a
site in seconds, without a stack.

The messages go through the same decoders as ingest and alerting (`sitewatch.protocol`), the
evaluator gets them with "now" the simulated time, timers are ticked at every step, and the
alert tracker turns signals into the changes the alerting service would publish. A gateway's
last will is fed as the broker would deliver it. What this cannot show (the broker, timing,
storage) the runner shows against a real stack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from simulators.sites.base import Batch, Message, SiteSim, merge_catalogs
from simulators.truth import Step, Steps
from sitewatch import protocol
from sitewatch.alerts import AlertTracker
from sitewatch.catalog import Existing, validate_catalog
from sitewatch.rules.base import RuleCatalog, Signal
from sitewatch.rules.engine import Evaluator, default_families

RETENTION_MS = 90 * 86_400_000
MAX_FUTURE_MS = 3_600_000


class DryRun:
    def __init__(self, sims: Sequence[SiteSim]) -> None:
        catalog, problems = validate_catalog(merge_catalogs([s.catalog() for s in sims]), Existing())
        if catalog is None:
            raise ValueError("; ".join(map(str, problems)))
        self.sims = list(sims)
        self.rules = RuleCatalog.from_catalog(catalog)
        self.evaluator = Evaluator(default_families())
        self.evaluator.load(self.rules)
        self.tracker = AlertTracker({s.id: (s.code, s.timezone) for s in self.rules.sites.values()})
        self._points = {
            site.id: {p.code: p.id for p in self.rules.points.values() if p.site_id == site.id}
            for site in self.rules.sites.values()
        }
        self._zones = {s: {code for site_id, code in self.rules.zones if site_id == s} for s in self.rules.sites}
        self._steps = Steps()
        self.steps: list[Step] = []
        self.messages = 0

    def run(self, start_ms: int, end_ms: int, step_s: float = 5.0) -> list[Step]:
        """Step every site from `start_ms` to `end_ms`; returns the alert steps of the run.

        Each step's messages are evaluated together, as the service evaluates what arrived
        within its batching window, then the timers are ticked."""
        first = len(self.steps)
        step_ms = round(step_s * 1000)
        self._apply(self.evaluator.tick(start_ms))  # the service's first tick after a catalog load
        t = start_ms
        while t <= end_ms:
            self.feed([(sim.code, message) for sim in self.sims for message in sim.step(t)], t)
            self._apply(self.evaluator.tick(t))
            t += step_ms
        return self.steps[first:]

    def feed(self, messages: list[tuple[str, Message]], now_ms: int) -> None:
        """Evaluate (site, message) pairs that arrived together at `now_ms`."""
        bounds = {"min_ts_ms": now_ms - RETENTION_MS, "max_ts_ms": now_ms + MAX_FUTURE_MS}
        readings: list[tuple[int, str, protocol.TelemetryColumns]] = []
        positions: list[tuple[int, protocol.PositionColumns]] = []
        signals: list[Signal] = []
        for site, message in messages:
            site_id = self.rules.site_ids[site]
            self.messages += 1
            if not isinstance(message, Batch):
                signals += self.evaluator.status(site_id, message.gateway, message.up, message.ts_ms)
                continue
            key = "readings" if message.channel == "telemetry" else "events"
            payload = json.dumps({"seq": self.messages, key: message.items}).encode()
            decoded: protocol.TelemetryColumns | protocol.PositionColumns | protocol.Reject
            if message.channel == "telemetry":
                decoded = protocol.decode_telemetry(payload, self._points[site_id], **bounds)
                if isinstance(decoded, protocol.TelemetryColumns):
                    readings.append((site_id, message.gateway, decoded))
            else:
                decoded = protocol.decode_positions(payload, self._zones[site_id], **bounds)
                if isinstance(decoded, protocol.PositionColumns):
                    positions.append((site_id, decoded))
            if isinstance(decoded, protocol.Reject) or decoded.rejects:
                raise ValueError(f"{site}: ingest would reject what the simulator sent: {decoded}")
        signals += self.evaluator.readings(readings, now_ms)
        signals += self.evaluator.positions(positions, now_ms)
        self._apply(signals)

    def _apply(self, signals: list[Signal]) -> None:
        for signal in sorted(signals, key=lambda s: s.ts_ms):
            change = self.tracker.apply(signal)
            if change is not None:
                step = self._steps.observe(change.body, change.at_ms)
                if step is not None:
                    self.steps.append(step)
