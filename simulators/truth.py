"""Ground truth and how observed alerts are judged against it.

An incident declares the alerts that must follow it as `Expected` entries: the alert of a source
and rule reaching a severity within `by_s` seconds of the incident's start. What is observed is
a `Step`: an alert reaching a severity it had not reached before (its raise, each escalation, or
a re-trigger above its earlier peak), taken from the alert messages on `sw/v1/{site}/alerts`.
`judge` pairs them: each expected entry with the first step of the same key, on time or late,
the rest missing; steps of the watched sites that nothing expected are unexpected. "And nothing
else" is the empty `unexpected` list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str, str, str, int]
"""(site, source type, source code, rule, severity)."""

STEP_CHANGES = frozenset({"raise", "severity", "retrigger"})


@dataclass(frozen=True, slots=True)
class Expected:
    """An alert that must reach `severity` within `by_s` seconds after the incident starts."""

    site: str
    source_type: str  # point, zone, site, tag or gateway
    source_code: str
    rule: str
    severity: int
    by_s: float

    @property
    def key(self) -> Key:
        return (self.site, self.source_type, self.source_code, self.rule, self.severity)

    def __str__(self) -> str:
        return f"{self.site} {self.source_type} {self.source_code} {self.rule} severity {self.severity}"


@dataclass(frozen=True, slots=True)
class Step:
    """An observed alert reaching a new severity, at `at_ms` (received, or evaluated in a dry run)."""

    site: str
    source_type: str
    source_code: str
    rule: str
    severity: int
    at_ms: int
    alert_id: str
    kind: str | None = None
    message: str = ""

    @property
    def key(self) -> Key:
        return (self.site, self.source_type, self.source_code, self.rule, self.severity)

    def __str__(self) -> str:
        kind = f" ({self.kind})" if self.kind else ""
        return f"{self.site} {self.source_type} {self.source_code} {self.rule}{kind} severity {self.severity}"


class Steps:
    """Turns alert messages into steps: only a new highest severity of an alert is a step."""

    def __init__(self) -> None:
        self._peak: dict[str, int] = {}

    def observe(self, alert: Mapping[str, Any], at_ms: int) -> Step | None:
        if alert.get("change") not in STEP_CHANGES:
            return None
        alert_id, severity = str(alert["id"]), int(alert["severity"])
        if severity <= self._peak.get(alert_id, 0):
            return None
        self._peak[alert_id] = severity
        source = alert["source"]
        return Step(
            alert["site"],
            source["type"],
            source["code"],
            alert["rule"],
            severity,
            at_ms,
            alert_id,
            alert.get("kind"),
            alert.get("message", ""),
        )


@dataclass(frozen=True, slots=True)
class Match:
    expected: Expected
    step: Step
    latency_s: float  # incident start → the step

    @property
    def on_time(self) -> bool:
        return self.latency_s <= self.expected.by_s


@dataclass(slots=True)
class Report:
    """How the observed alerts of some sites compare with their ground truth."""

    matched: list[Match] = field(default_factory=list)  # on time
    late: list[Match] = field(default_factory=list)  # the right alert, after its deadline
    missing: list[Expected] = field(default_factory=list)
    unexpected: list[Step] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return len(self.matched) + len(self.late) + len(self.missing)

    @property
    def recall(self) -> float:
        """On-time ground-truth alerts / ground-truth alerts (1 when nothing was expected)."""
        return len(self.matched) / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        """Steps that are ground truth / all steps of the watched sites (1 when there were none)."""
        seen = len(self.matched) + len(self.late) + len(self.unexpected)
        return (len(self.matched) + len(self.late)) / seen if seen else 1.0

    @property
    def ok(self) -> bool:
        return not (self.late or self.missing or self.unexpected)

    def __add__(self, other: Report) -> Report:
        return Report(
            self.matched + other.matched,
            self.late + other.late,
            self.missing + other.missing,
            self.unexpected + other.unexpected,
        )

    def summary(self) -> str:
        latencies = sorted(m.latency_s for m in self.matched + self.late)
        lat = f", latency max {latencies[-1]:.1f} s" if latencies else ""
        return (
            f"{len(self.matched)}/{self.expected} ground-truth alerts on time, {len(self.late)} late, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected: "
            f"precision {self.precision:.2f}, recall {self.recall:.2f}{lat}"
        )


def judge(expected: Iterable[Expected], start_ms: int, steps: Iterable[Step], sites: Iterable[str]) -> Report:
    """Compare the steps of `sites` at or after `start_ms` (the incident's start; steps before it
    count as unexpected when they fall in the caller's window) with the ground truth."""
    watched = set(sites)
    pending = list(expected)
    report = Report()
    for step in sorted(steps, key=lambda s: s.at_ms):
        if step.site not in watched:
            continue
        found = next((e for e in pending if e.key == step.key), None)
        if found is None:
            report.unexpected.append(step)
            continue
        pending.remove(found)
        match = Match(found, step, (step.at_ms - start_ms) / 1000)
        (report.matched if match.on_time else report.late).append(match)
    report.missing = pending
    return report
