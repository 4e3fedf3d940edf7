"""Prometheus helpers shared by the services.

Each service keeps its metrics in its own registry, named `sitewatch_<service>_*`, and serves it
on a loopback port; the API's `/metrics` concatenates those with its own, so one scrape shows the
whole stack while each family still has exactly one owner.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ready = Gauge(f"sitewatch_{service}_ready", "1 once the service is serving", registry=self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve the registry on host:port (0 picks a free port; beyond loopback only when told, as
        in a container Prometheus scrapes); returns the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_address[1])
