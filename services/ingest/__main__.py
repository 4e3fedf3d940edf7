"""`python -m services.ingest`: run the ingest service with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

from services.ingest.service import IngestService
from sitewatch.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(IngestService(Settings.from_env()).run())


if __name__ == "__main__":
    main()
