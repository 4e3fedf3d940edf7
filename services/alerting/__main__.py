"""`python -m services.alerting`: run the evaluator with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

from services.alerting.metrics import AlertingMetrics
from services.alerting.service import AlertingService
from sitewatch import shards
from sitewatch.settings import Settings


async def serve(settings: Settings) -> None:
    """One service for every site, or (SITEWATCH_SHARDS > 1) worker SITEWATCH_WORKER's shards."""
    metrics = AlertingMetrics()
    metrics.serve(settings.port, settings.metrics_host)
    await shards.run_service("alerting", settings, lambda shard: AlertingService(settings, shard, metrics))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Settings.from_env()))


if __name__ == "__main__":
    main()
