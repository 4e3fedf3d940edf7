"""Webhooks: an enterprise's alert changes POSTed to its endpoint, signed, retried after a failure,
with every attempt in the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import StackHandle, site_catalog, unique

SECRET = "webhook-secret-0123456789"


class Receiver:
    """A local endpoint that refuses its first request with 500, then accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                ok = receiver.calls > 1
                if ok:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_alert_changes_are_posted_signed_and_retried(stack: StackHandle) -> None:
    receiver = Receiver()
    enterprise, site = unique("ENT-WH"), unique("WH")
    doc = site_catalog(site, enterprise=enterprise, points=1)
    doc["enterprises"][0]["webhooks"] = [{"url": receiver.url, "secret": SECRET}]
    doc["points"][0].update(period_s=3600, rules=[{"rule": "threshold", "above": [50]}])
    assert stack.load_catalog(doc).status_code == 200
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    gw.flush([gw.telemetry([{"point": "P0", "ts": int(time.time() * 1000), "value": 70.0}])])
    gw.close()
    deadline = time.monotonic() + 15
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    receiver.close()
    assert receiver.received, "no webhook delivered"
    headers, body = receiver.received[0]
    event = json.loads(body)
    assert event["change"] == "raise" and event["site"] == site and event["event_id"] > 0
    expected = hmac.new(
        SECRET.encode(), headers["X-Sitewatch-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Sitewatch-Signature"] == f"sha256={expected}"
    with stack.http() as c:
        log = [d for d in c.get("/api/v1/webhooks/deliveries").json()["deliveries"] if d["enterprise"] == enterprise]
    assert [(d["attempt"], d["status"], d["delivered"]) for d in reversed(log)] == [(1, 500, False), (2, 200, True)]
    other = stack.token_for("operator", "--sites", "NO-SUCH-SITE")
    with stack.http(other) as c:
        assert c.get("/api/v1/webhooks/deliveries").json()["deliveries"] == []
