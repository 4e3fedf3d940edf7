"""`python -m services.ingest`: run the ingest service with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

from services.ingest.metrics import IngestMetrics
from services.ingest.service import IngestService
from sitewatch import priority, shards
from sitewatch.settings import Settings


async def serve(settings: Settings) -> None:
    """One service for every site, or (SITEWATCH_SHARDS > 1) worker SITEWATCH_WORKER's shards."""
    priority.lower_own(settings.nice)
    metrics = IngestMetrics()
    metrics.serve(settings.port, settings.metrics_host)
    await shards.run_service("ingest", settings, lambda shard: IngestService(settings, shard, metrics))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Settings.from_env()))


if __name__ == "__main__":
    main()
