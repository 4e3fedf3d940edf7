"""An underground mine: gas at the working faces, CO and ventilation, power, and a workforce whose
tags are located by zone readers as three crews work eight-hour shifts.

A crew goes down through the shaft and the ramp to its working face, now and then goes back to
the ramp, and leaves before its shift ends, so nobody is underground for 10 h (overtime); every
tag on site is located at least once a minute (a tag lost takes 15 min); at most `per_face`
people work one face (6: below the warning at 8 of a high-risk zone); only the two shot-firers
on the magazine's allow-list enter it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.signals import HOUR_MS, MINUTE_MS, Analog, constant, key_of, rng, uniform
from simulators.sites.base import Batch, Item, Message, PointSim, SiteSim

SHIFT_MS = 8 * HOUR_MS
CREWS = 3
POSITIONS = "GW-POS"
SHAFT, RAMP, MAGAZINE = "SHAFT", "RAMP", "MAG"

Move = tuple[int, str, str | None]
"""(event time, tag, zone it is located in; None: it leaves the site)."""


@dataclass(frozen=True, slots=True)
class Worker:
    tag: str
    crew: int  # works the shifts n with n % CREWS == crew
    home: str  # the zone it works in


class UndergroundMine(SiteSim):
    kind = "underground_mine"
    label = "地下矿山"
    power_baseline_kw = 300.0

    def __init__(
        self,
        code: str,
        *,
        faces: int = 4,
        crew_size: int = 30,
        per_face: int = 6,
        heartbeat_s: float = 60.0,
        **kw: Any,
    ) -> None:
        super().__init__(code, **kw)
        if per_face * faces > crew_size:
            raise ValueError("a crew must be large enough to staff every face")
        self.faces = [f"WF-{f}" for f in range(1, faces + 1)]
        self.heartbeat_ms = round(heartbeat_s * 1000)
        self.shift_capacity = 2 * crew_size
        self.zones = [
            {"code": SHAFT, "name": "主井井口", "risk": "normal"},
            {"code": RAMP, "name": "主斜坡道", "risk": "normal"},
            *({"code": f, "name": f"{f} 采场", "risk": "high"} for f in self.faces),
            {"code": MAGAZINE, "name": "井下炸药库", "risk": "restricted", "allow": ["BL-1", "BL-2"]},
        ]
        self.workers: list[Worker] = []
        for crew in range(CREWS):
            for j in range(crew_size):
                home = self.faces[j // per_face] if j < per_face * faces else RAMP
                self.workers.append(Worker(f"T-{crew + 1}{j + 1:02d}", crew, home))
        self.workers += [Worker("BL-1", 1, MAGAZINE), Worker("BL-2", 1, MAGAZINE)]
        self.tags = [{"code": w.tag, "person": f"矿工 {w.tag}"} for w in self.workers]
        for f, face in enumerate(self.faces):
            gas = Analog(2.5 + 0.4 * f, 0.3, daily=0.6, peak_h=10, lo=0.1, hi=100, decimals=1)
            self.add(PointSim(f"CH4-{face}", "gas_lel", "%LEL", 5, "GW-ENV", gas))
        self.add(PointSim("CO-RAMP", "gas_toxic", "%OEL", 5, "GW-ENV", Analog(12, 1.5, daily=3, lo=0.5, decimals=1)))
        self.add(PointSim("WS-MAIN", "generic", "m/s", 10, "GW-ENV", Analog(3.2, 0.1)))
        self.add(PointSim("FAN-MAIN", "fan_running", "", 5, "GW-ENV", constant(1), digital=True))
        self.gateway(POSITIONS)
        self.add(PointSim("PM-1", "power_kw", "kW", 10, "GW-PWR", Analog(1100, 15, daily=150, peak_h=11, decimals=1)))
        self.add(PointSim("PM-2", "power_kw", "kW", 10, "GW-PWR", Analog(260, 5, decimals=1)))
        self._plans: dict[int, list[Move]] = {}
        self._extra: list[Move] = []
        self.zone_of: dict[str, str | None] = {}
        self._phases: dict[str, int] = {}
        self._begun = False

    # -- the shift plan --------------------------------------------------------------------------
    def shift_of(self, t_ms: int) -> int:
        """The index of the local eight-hour shift (00–08, 08–16, 16–24) holding t."""
        return (t_ms + self.utc_offset_ms(t_ms)) // SHIFT_MS

    def shift_start(self, n: int) -> int:
        local = n * SHIFT_MS
        return local - self.utc_offset_ms(local)

    def plan(self, worker: Worker, n: int) -> list[tuple[int, str | None]]:
        """Where the worker goes during shift n (empty when its crew is off)."""
        if n % CREWS != worker.crew:
            return []
        start = self.shift_start(n)
        end = start + SHIFT_MS
        g = rng(self.seed, self.code, worker.tag, n)

        def minutes(a: float, b: float) -> int:
            return round(g.uniform(a, b) * MINUTE_MS)

        errand = SHAFT if worker.home == RAMP else RAMP
        t = start + minutes(0, 20)
        moves: list[tuple[int, str | None]] = [(t, SHAFT)]
        t += minutes(1, 4)
        moves.append((t, RAMP))
        t += minutes(2, 6)
        moves.append((t, worker.home))
        leave = end - minutes(30, 45)
        while True:
            stay = minutes(40, 120)
            if t + stay + 20 * MINUTE_MS > leave:
                break
            t += stay
            moves.append((t, errand))
            t += minutes(5, 15)
            moves.append((t, worker.home))
        moves += [(leave, RAMP), (end - minutes(12, 20), SHAFT), (end - minutes(1, 8), None)]
        return moves

    def _shift_moves(self, n: int) -> list[Move]:
        if n not in self._plans:
            moves = [(t, w.tag, zone) for w in self.workers for t, zone in self.plan(w, n)]
            self._plans[n] = sorted(moves, key=lambda m: m[0])
            for old in [m for m in self._plans if m < n - 2]:
                del self._plans[old]
        return self._plans[n]

    def schedule(self, moves: list[Move]) -> None:
        """Extra movements (a visiting crew, an incident), on top of the shift plan."""
        self._extra = sorted([*self._extra, *moves], key=lambda m: m[0])

    def where(self, tag: str, t_ms: int) -> str | None:
        """The zone the plan puts a tag in at t (None: off site)."""
        zone: str | None = None
        for n in (self.shift_of(t_ms) - 1, self.shift_of(t_ms)):
            for ts, moved, z in [*self._shift_moves(n), *self._extra]:
                if moved == tag and ts <= t_ms:
                    zone = z
        return zone

    # -- positioning events ----------------------------------------------------------------------
    def position_events(self, since_ms: int, until_ms: int) -> list[tuple[str, Item]]:
        events: list[Item] = []
        if not self._begun:
            # the site as the plan has it now: everyone on shift located, everyone else out
            self._begun = True
            for w in self.workers:
                zone = self.where(w.tag, until_ms)
                self.zone_of[w.tag] = zone
                events.append(_event(w.tag, until_ms, zone))
            return [(POSITIONS, e) for e in events]
        moves = [
            m
            for n in range(self.shift_of(since_ms) - 1, self.shift_of(until_ms) + 1)
            for m in self._shift_moves(n)
            if since_ms < m[0] <= until_ms
        ]
        moves += [m for m in self._extra if since_ms < m[0] <= until_ms]
        beats = [(t, tag, "") for tag, t in self._heartbeats(since_ms, until_ms)]
        for ts, tag, zone in heapq.merge(sorted(moves, key=lambda m: m[0]), sorted(beats), key=lambda m: m[0]):
            if zone == "":  # a heartbeat: located again where it is
                here = self.zone_of.get(tag)
                if here is not None:
                    events.append(_event(tag, ts, here))
                continue
            self.zone_of[tag] = zone
            events.append(_event(tag, ts, zone))
        return [(POSITIONS, e) for e in events]

    def _beat_phase(self, tag: str) -> int:
        if tag not in self._phases:
            u = uniform(key_of(self.seed, self.code, tag), np.zeros(1, np.int64))
            self._phases[tag] = int(u[0] * self.heartbeat_ms)
        return self._phases[tag]

    def _heartbeats(self, since_ms: int, until_ms: int) -> list[tuple[str, int]]:
        """Each tag on site is located again every heartbeat, at its own phase."""
        hb = self.heartbeat_ms
        beats = []
        for tag, zone in self.zone_of.items():
            if zone is not None:
                phase = self._beat_phase(tag)
                first, last = (since_ms - phase) // hb + 1, (until_ms - phase) // hb
                beats += [(tag, phase + k * hb) for k in range(first, last + 1)]
        return beats

    def shutdown(self, t_ms: int) -> list[Message]:
        """The simulation stops: the tags still on site are taken out, so none is left to get lost."""
        on_site = [tag for tag, zone in self.zone_of.items() if zone is not None]
        self.zone_of = dict.fromkeys(self.zone_of)
        return [Batch(POSITIONS, "positions", [_event(tag, t_ms, None) for tag in on_site])] if on_site else []


def _event(tag: str, ts: int, zone: str | None) -> Item:
    if zone is None:
        return {"tag": tag, "ts": ts, "kind": "exit"}
    return {"tag": tag, "ts": ts, "kind": "locate", "zone": zone}
