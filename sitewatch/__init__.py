"""Sitewatch: telemetry ingestion and early warning for mines, tank farms and dust plants.

This package is the domain every service imports: protocol decoding, the catalog, storage,
settings and the local stack supervisor.
"""

__version__ = "0.1.0"
