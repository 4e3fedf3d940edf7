"""`python -m services.api`: serve the API with uvicorn on 127.0.0.1:$SITEWATCH_PORT."""

from __future__ import annotations

import os

import uvicorn

from services.api.app import create_app
from sitewatch.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    host = os.environ.get("SITEWATCH_API_HOST", "127.0.0.1")
    # proxy_headers off: X-Forwarded-For is believed only from SITEWATCH_TRUSTED_PROXIES (services.api.audit),
    # not from every loopback peer as uvicorn would by default
    uvicorn.run(
        create_app(settings), host=host, port=settings.port, log_level="info", access_log=False, proxy_headers=False
    )


if __name__ == "__main__":
    main()
