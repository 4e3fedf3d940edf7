"""Alerts: the object of PROTOCOL §4, the same-day due time, and the tracker that turns rule
signals into alert changes with one open alert per (site, source, rule)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sitewatch.rules.base import Signal

Action = Literal["raise", "severity", "retrigger", "update", "clear"]
Key = tuple[int, str, str, str]


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def end_of_day_ms(ts_ms: int, timezone: str) -> int:
    """The end of the raise's calendar day in the site's time zone (the same-day deadline).

    Computed on the local date and converted back through zoneinfo, so a DST change that day
    moves the deadline with the wall clock.
    """
    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(ts_ms / 1000, tz)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return int(midnight.timestamp() * 1000)


def iso(ms: int | None, timezone: str) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, zone(timezone)).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Alert:
    id: str
    site_id: int
    site: str
    timezone: str
    source_type: str
    source_code: str
    rule: str
    kind: str | None
    severity: int
    value: float | None
    peak: float | None
    message: str
    raised_at: int
    due_at: int
    state: str = "open"
    cleared: bool = False
    count: int = 1
    overdue: bool = False
    acknowledged_at: int | None = None
    handled_at: int | None = None
    closed_at: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    shelved_until: int | None = None

    @property
    def key(self) -> Key:
        return (self.site_id, self.source_type, self.source_code, self.rule)

    def to_json(self) -> dict[str, Any]:
        """The alert object of PROTOCOL §4, times in the site's time zone."""
        tz = self.timezone
        return {
            "id": self.id,
            "site": self.site,
            "source": {"type": self.source_type, "code": self.source_code},
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "state": self.state,
            "cleared": self.cleared,
            "value": self.value,
            "peak": self.peak,
            "count": self.count,
            "message": self.message,
            "details": self.details,
            "raised_at": iso(self.raised_at, tz),
            "due_at": iso(self.due_at, tz),
            "overdue": self.overdue,
            "acknowledged_at": iso(self.acknowledged_at, tz),
            "handled_at": iso(self.handled_at, tz),
            "closed_at": iso(self.closed_at, tz),
            "shelved": self.shelved_until is not None,
            "shelved_until": iso(self.shelved_until, tz),
        }


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    alert: Alert
    at_ms: int
    body: dict[str, Any] = field(default_factory=dict)  # the alert object as of this change

    @classmethod
    def of(cls, action: Action, alert: Alert, at_ms: int) -> Change:
        return cls(action, alert, at_ms, {**alert.to_json(), "change": action})


def _peak(alert: Alert, value: float | None) -> float | None:
    if value is None:
        return alert.peak
    if alert.peak is None:
        return value
    return min(alert.peak, value) if alert.kind == "low" else max(alert.peak, value)


_ALERT_IDS = uuid.UUID("5d1c7a1e-8d2b-4c1e-9a57-51e3a7c40000")


def alert_id(signal: Signal) -> str:
    """The id of the alert a signal raises, derived from what raised it: a worker that takes over
    a shard and evaluates again the readings its predecessor had not yet stored raises the same
    alert, not a second one (the database upserts by id; a subscriber sees the same id twice)."""
    site, source_type, source_code, rule = signal.key
    return str(uuid.uuid5(_ALERT_IDS, f"{site}/{source_type}/{source_code}/{rule}/{signal.ts_ms}"))


class AlertTracker:
    """In-memory open alerts by key; `apply` decides what a signal changes.

    A signal for a key whose alert is open and active at the same or a higher severity changes
    nothing, which is also what makes a restart idempotent: the open alerts are loaded first and
    re-derived conditions do not raise them again.
    """

    def __init__(self, sites: dict[int, tuple[str, str]]) -> None:
        self.sites = sites  # site id → (code, time zone)
        self.open: dict[Key, Alert] = {}

    def load(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.open[alert.key] = alert

    def forget(self, key: Key) -> None:
        """The alert was closed by a person: the next signal raises a new one."""
        self.open.pop(key, None)

    def apply(self, signal: Signal) -> Change | None:
        alert = self.open.get(signal.key)
        if signal.severity == 0:
            if alert is None or alert.cleared:
                return None
            alert.cleared = True
            alert.value = signal.value
            return Change.of("clear", alert, signal.ts_ms)
        if alert is None:
            code, tz = self.sites.get(signal.site_id, (str(signal.site_id), "Asia/Shanghai"))
            alert = Alert(
                alert_id(signal),
                signal.site_id,
                code,
                tz,
                signal.source_type,
                signal.source_code,
                signal.rule,
                signal.kind,
                signal.severity,
                signal.value,
                signal.value,
                signal.message,
                signal.ts_ms,
                end_of_day_ms(signal.ts_ms, tz),
                details=dict(signal.details or {}),
            )
            self.open[signal.key] = alert
            return Change.of("raise", alert, signal.ts_ms)
        action: Action
        if alert.cleared:
            action = "retrigger"
            alert.cleared = False
            alert.count += 1
        elif signal.severity > alert.severity:
            action = "severity"
        elif signal.details and signal.details != alert.details:
            action = "update"  # same severity, fresh details (a slope's failure forecast)
        else:
            return None
        alert.severity = max(alert.severity, signal.severity)
        alert.value = signal.value
        alert.peak = _peak(alert, signal.value)
        alert.message = signal.message
        alert.kind = signal.kind or alert.kind
        if signal.details:
            alert.details.update(signal.details)
        return Change.of(action, alert, signal.ts_ms)
