"""Deterministic signals for simulated points, computed with numpy in simulated event time.

Randomness is counter-based: the noise of sample k of a point is a hash of (the point's key, k),
so a seed gives the same readings however a run is cut into steps, and a step costs no state.
Plans that are drawn once (a worker's shift, a valve's operations in an hour, a shower) use a
numpy Generator seeded from the same keys.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
EPOCH_MS = 1_704_038_400_000  # 2024-01-01T00:00+08:00: where cumulative quantities (displacement) start

_U64 = np.uint64
_C1, _C2, _C3 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = _U64(30), _U64(27), _U64(31), _U64(11)


def key_of(*parts: object) -> int:
    """A stable 63-bit key for names and numbers (Python's `hash` of a str changes per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: consecutive inputs give independent-looking outputs (wrapping
    arithmetic modulo 2^64 is the point, so numpy's overflow warnings are off)."""
    with np.errstate(over="ignore"):
        z = x + _C1
        z = (z ^ (z >> _S30)) * _C2
        z = (z ^ (z >> _S27)) * _C3
        return z ^ (z >> _S31)


def uniform(key: int | npt.NDArray[np.int64], k: I64, salt: int = 0) -> F64:
    """Uniform [0, 1) numbers for samples k of the stream(s) `key`, one per purpose `salt`."""
    keys = np.asarray(key, dtype=np.int64).astype(np.uint64)
    h = _mix(_mix(keys ^ _U64(salt)) ^ np.asarray(k, dtype=np.int64).astype(np.uint64))
    return (h >> _S11).astype(np.float64) * (1.0 / (1 << 53))


def normal(key: int | npt.NDArray[np.int64], k: I64, salt: int = 0) -> F64:
    """Standard normal numbers (Box–Muller on two uniform streams)."""
    u1 = uniform(key, k, 2 * salt + 101)
    u2 = uniform(key, k, 2 * salt + 102)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def rng(*parts: object) -> np.random.Generator:
    """A Generator for a plan drawn once, seeded by names and numbers."""
    return np.random.default_rng(key_of(*parts))


@dataclass(frozen=True, slots=True)
class Samples:
    """The samples of one point a step produces: their times, their indices, and the site clock."""

    ts: I64  # epoch ms
    k: I64  # sample index since the point started (the counter of its noise)
    key: int  # the point's noise stream
    utc_offset_ms: int  # the site's offset from UTC, for daily cycles


Signal = Callable[[Samples], F64]
"""A point's normal behaviour: values for its samples."""


@dataclass(frozen=True, slots=True)
class Analog:
    """base + a daily cycle peaking at `peak_h` local time + a slow process swing + a saw-tooth
    (filter loading between cleanings) + a trend from EPOCH_MS + Gaussian noise, clipped to
    [lo, hi] and rounded to `decimals` as the transmitter would."""

    base: float
    noise: float
    daily: float = 0.0
    peak_h: float = 14.0
    slow: float = 0.0
    slow_period_h: float = 7.0
    saw: float = 0.0
    saw_period_s: float = 900.0
    trend_per_day: float = 0.0
    lo: float = -math.inf
    hi: float = math.inf
    decimals: int = 2

    def __call__(self, s: Samples) -> F64:
        return AnalogBank([self]).values(np.zeros(len(s.ts), np.int64), s.ts, s.k, np.full(len(s.ts), s.key),
                                         s.utc_offset_ms)  # fmt: skip


class AnalogBank:
    """Many points' `Analog` signals as parameter arrays, evaluated together for any rows."""

    def __init__(self, signals: list[Analog]) -> None:
        def column(name: str) -> F64:
            return np.array([getattr(a, name) for a in signals], np.float64)

        self.base, self.noise, self.daily, self.peak_h = (column(n) for n in ("base", "noise", "daily", "peak_h"))
        self.slow, self.slow_ms = column("slow"), column("slow_period_h") * HOUR_MS
        self.saw, self.saw_ms = column("saw"), column("saw_period_s") * 1000
        self.trend, self.lo, self.hi = column("trend_per_day"), column("lo"), column("hi")
        self.scale = 10.0 ** column("decimals")

    def values(self, row: I64, ts: I64, k: I64, key: I64, utc_offset_ms: int) -> F64:
        """Values of samples (ts, k) of the points `row` (indices into the bank) with noise `key`."""
        t = ts.astype(np.float64)
        hour = ((ts + utc_offset_ms) % DAY_MS) / HOUR_MS
        v = self.base[row] + self.daily[row] * np.cos(2 * np.pi * (hour - self.peak_h[row]) / 24.0)
        v += self.slow[row] * np.sin(2 * np.pi * (t / self.slow_ms[row] + (key % 1000) / 1000.0))
        saw = self.saw_ms[row]
        v += self.saw[row] * (((t + key % 100_000) % saw) / saw - 0.5)
        v += self.trend[row] * (t - EPOCH_MS) / DAY_MS
        v += self.noise[row] * normal(key, k)
        scale = self.scale[row]
        return np.round(np.clip(v, self.lo[row], self.hi[row]) * scale) / scale


def constant(value: float) -> Signal:
    """A digital state or a detector that reports one value (a fan running, no sparks)."""

    def signal(s: Samples) -> F64:
        return np.full(len(s.ts), float(value))

    return signal


def intervals(ts: I64, starts: I64, ends: I64) -> npt.NDArray[np.bool_]:
    """Whether each time lies in one of the sorted, disjoint [start, end) intervals."""
    i = np.searchsorted(starts, ts, side="right") - 1
    inside = i >= 0
    return inside & (ts < ends[np.maximum(i, 0)])
