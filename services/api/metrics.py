"""The API's own metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from sitewatch.metrics import ServiceMetrics


class ApiMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("api")
        self.requests = Counter(
            "sitewatch_api_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sitewatch_api_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.catalog_loads = Counter(
            "sitewatch_api_catalog_loads", "Catalog documents loaded", ["result"], registry=self.registry
        )


API_METRICS = ApiMetrics()
