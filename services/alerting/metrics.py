"""Alerting metrics: evaluation rate and time, signals, alert changes, late readings, store backlog."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from sitewatch.metrics import ServiceMetrics


class AlertingMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("alerting")
        r = self.registry
        self.readings = Counter("sitewatch_alerting_readings", "Readings evaluated", registry=r)
        self.positions = Counter("sitewatch_alerting_positions", "Position events evaluated", registry=r)
        self.evaluate_seconds = Histogram(
            "sitewatch_alerting_evaluate_seconds",
            "Time to evaluate one batch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=r,
        )
        self.lag = Histogram(
            "sitewatch_alerting_lag_seconds",
            "Broker delivery to evaluated, oldest message of a batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.delay = Gauge(
            "sitewatch_alerting_delay_seconds",
            "Broker delivery to evaluated for the oldest message of the last batch: above 1 s alerting is behind",
            registry=r,
        )
        self.event_lag = Gauge(
            "sitewatch_alerting_event_lag_seconds",
            "Now minus the newest reading time of the last batch: with live gateways, how far evaluation is behind"
            " (a gateway replaying its buffer alone shows its age)",
            registry=r,
        )
        self.queued = Gauge("sitewatch_alerting_queued", "Deliveries received and not yet evaluated", registry=r)
        self.changes = Counter(
            "sitewatch_alerting_alert_changes", "Alert changes published", ["action", "rule"], registry=r
        )
        self.late = Gauge(
            "sitewatch_alerting_late_skipped", "Readings beyond the late window, not evaluated", registry=r
        )
        self.unstored = Gauge(
            "sitewatch_alerting_unstored_changes", "Alert changes waiting for the database", registry=r
        )
        self.open_alerts = Gauge("sitewatch_alerting_open_alerts", "Open alerts by severity", ["severity"], registry=r)
        self.overdue = Gauge(
            "sitewatch_alerting_overdue_alerts",
            "Alerts not closed by the end of their day (the same-day rule), by severity",
            ["severity"],
            registry=r,
        )
