"""Every state-changing API request in the audit log, allowed or refused, before its answer leaves.

An ASGI middleware sees each POST, PUT, PATCH and DELETE under `/api/v1`. The token dependency
tells it who calls (`identify`), an endpoint may add what it did (`note`), and the entry is written
when the answer starts, so a client never holds an answer whose request is not in the log; a
request that fails with an exception is written with status 500. GETs pass straight through.

The summary never holds a secret: of the request body only the size and a few named fields
(`SAFE_FIELDS`, e.g. who acts, `by`) are kept, never a catalog (gateway passwords, webhook secrets)
and never a response (a new token).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sitewatch import auth
from sitewatch.store import audit as audit_store

log = logging.getLogger("sitewatch.api.audit")

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/api/v1"
KEY = "sitewatch.audit"
SAFE_FIELDS = ("by", "alert_id", "site", "source", "until", "found_at", "at", "role", "name", "enterprise", "sites")
MAX_PARSED = 64 << 10  # bodies up to this size are searched for SAFE_FIELDS
MAX_TEXT = 200
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def identify(request: Request, principal: auth.Principal) -> None:
    """Record the caller of an audited request (no-op for others)."""
    ctx = request.scope.get(KEY)
    if ctx is not None:
        ctx["principal"] = principal


def note(request: Request, **fields: Any) -> None:
    """Add what the request did to its audit summary (no-op for a request that is not audited)."""
    ctx = request.scope.get(KEY)
    if ctx is not None:
        ctx["summary"].update(fields)


def networks(specs: Iterable[str]) -> list[Network]:
    """Trusted proxies: addresses or CIDR networks; ValueError for anything else."""
    return [ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec.strip()]


def _trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str | None:
    """The client: the connection's peer, unless that is a trusted proxy sending X-Forwarded-For;
    then the nearest address in it that is not a trusted proxy itself (right to left)."""
    if peer is None or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:MAX_TEXT]
    return hops[0][:MAX_TEXT] if hops else peer


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list):
        return [_clip(v) for v in value[:50]]
    return value if value is None or isinstance(value, bool | int | float) else str(value)[:MAX_TEXT]


def body_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """The SAFE_FIELDS of a JSON object body."""
    if not content_type.startswith("application/json"):
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return {k: _clip(doc[k]) for k in SAFE_FIELDS if isinstance(doc, dict) and k in doc}


class AuditMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted = networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] not in WRITES or not (path + "/").startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        at = dt.datetime.now(dt.UTC)
        ctx: dict[str, Any] = {"principal": None, "summary": {}}
        scope[KEY] = ctx
        body = bytearray()
        size = 0
        written = False

        async def receive_counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_PARSED:
                    body.extend(chunk)
            return message

        async def write(status: int, error: str | None = None) -> None:
            nonlocal written
            if written:
                return
            written = True
            await self._record(scope, at, status, ctx, size, bytes(body) if size <= MAX_PARSED else b"", error)

        async def send_audited(message: Message) -> None:
            if message["type"] == "http.response.start":
                await write(message["status"])
            await send(message)

        try:
            await self.app(scope, receive_counted, send_audited)
        except BaseException as exc:
            await write(500, type(exc).__name__)
            raise

    async def _record(
        self, scope: Scope, at: dt.datetime, status: int, ctx: dict[str, Any], size: int, body: bytes, error: str | None
    ) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        peer = scope["client"][0] if scope.get("client") else None
        client = client_address(peer, headers.get("x-forwarded-for"), self.trusted)
        declared = headers.get("content-length", "")
        summary: dict[str, Any] = {"bytes": max(size, int(declared) if declared.isdigit() else 0)}
        if scope.get("path_params"):
            summary["params"] = {k: _clip(v) for k, v in scope["path_params"].items()}
        fields = body_fields(body, headers.get("content-type", "")) if body else {}
        if fields:
            summary["body"] = fields
        if client != peer:
            summary["peer"] = peer
        if error:
            summary["error"] = error
        principal: auth.Principal | None = ctx["principal"]
        query = scope.get("query_string", b"").decode("latin-1")
        entry = audit_store.Entry(
            at=at,
            method=scope["method"],
            path=(scope["path"] + (f"?{query}" if query else ""))[:2000],
            status=status,
            route=getattr(scope.get("route"), "path", None),
            client=client,
            token_id=principal.token_id if principal else None,
            token_name=principal.name if principal else None,
            role=principal.role if principal else None,
            summary={**summary, **ctx["summary"]},
        )
        try:
            await audit_store.record(scope["app"].state.pool, entry)
        except Exception:  # the database is down: the service's log keeps the entry
            log.exception("audit entry not stored: %s", entry)
