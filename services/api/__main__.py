"""`python -m services.api`: serve the API with uvicorn on 127.0.0.1:$SITEWATCH_PORT, over HTTPS when
$SITEWATCH_API_CERTFILE and $SITEWATCH_API_KEYFILE name a certificate chain and its key."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

from services.api.app import create_app
from sitewatch.settings import Settings
from sitewatch.tls import TlsFiles, server_context

GRACEFUL_SHUTDOWN_S = 2


def main() -> None:
    settings = Settings.from_env()
    host = os.environ.get("SITEWATCH_API_HOST", "127.0.0.1")
    certfile, keyfile = os.environ.get("SITEWATCH_API_CERTFILE"), os.environ.get("SITEWATCH_API_KEYFILE")
    # proxy_headers off: X-Forwarded-For is believed only from SITEWATCH_TRUSTED_PROXIES (services.api.audit),
    # not from every loopback peer as uvicorn would by default
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=settings.port,
        log_level="info",
        access_log=False,
        proxy_headers=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        # SSE streams never end by themselves: without a bound a stop waits for every open board
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    config.load()
    if certfile and keyfile:  # uvicorn's own context allows what OpenSSL allows: ours is TLS 1.2+, AEAD only
        config.ssl = server_context(TlsFiles(Path(certfile), Path(keyfile)))
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # as uvicorn.run: a server that could not start exits non-zero
        sys.exit(3)


if __name__ == "__main__":
    main()
