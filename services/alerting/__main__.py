"""`python -m services.alerting`: run the evaluator with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

from services.alerting.service import AlertingService
from sitewatch.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(AlertingService(Settings.from_env()).run())


if __name__ == "__main__":
    main()
