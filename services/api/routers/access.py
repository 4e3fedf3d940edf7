"""Access administration, for admins only: API tokens (create, list, revoke) and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from services.api import audit
from services.api.deps import Admin, Pool, not_found
from services.api.timefmt import parse_time
from sitewatch import auth
from sitewatch.store import audit as audit_store

router = APIRouter(prefix="/api/v1", tags=["access"])


class NewToken(BaseModel):
    role: auth.Role
    name: str = Field(default="", max_length=200, description="who or what the token is for")
    enterprise: str | None = Field(default=None, description="the enterprise of an enterprise token")
    sites: list[str] | None = Field(default=None, description="the sites it is limited to; null: every site")
    expires_in: str | None = Field(default=None, description="e.g. 90s, 30m, 8h, 30d, 2w; null: never expires")


@router.get("/tokens")
async def list_tokens(pool: Pool, _admin: Admin) -> dict[str, Any]:
    """Every token, oldest first, without secrets: role, scope, expiry and state."""
    return {"tokens": [t.to_json() for t in await auth.list_tokens(pool)]}


@router.post("/tokens", status_code=201)
async def create_token(request: Request, pool: Pool, _admin: Admin, body: NewToken) -> dict[str, Any]:
    """A new token: the answer holds its only plaintext copy (`token`); only a salted hash is kept."""
    try:
        expires_in = auth.parse_duration(body.expires_in) if body.expires_in else None
        async with pool.acquire() as conn:
            token = await auth.create_token(
                conn, body.role, name=body.name, enterprise=body.enterprise, sites=body.sites, expires_in=expires_in
            )
            created = await auth.get_token(conn, auth.token_id(token) or 0)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    assert created is not None
    audit.note(request, token=created.id)
    return {**created.to_json(), "token": token}


@router.delete("/tokens/{token_id}")
async def revoke_token(request: Request, pool: Pool, _admin: Admin, token_id: str) -> dict[str, Any]:
    """Revoke a token at once: its next request answers 401. Revoking it again changes nothing."""
    numeric = token_id.isascii() and token_id.isdigit() and len(token_id) < 10  # "²" and "٣" are digits too
    revoked = await auth.revoke(pool, int(token_id)) if numeric else None
    if revoked is None:
        raise not_found("token", token_id)
    audit.note(request, token=revoked.id)
    return revoked.to_json()


@router.get("/audit")
async def audit_log(
    pool: Pool,
    _admin: Admin,
    since: Annotated[str | None, Query(description="at or after: RFC 3339 or epoch ms")] = None,
    until: Annotated[str | None, Query(description="before: RFC 3339 or epoch ms")] = None,
    actor: Annotated[str | None, Query(description="a token's name or id")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """State-changing requests, allowed or refused, newest first: when, which token (name, role),
    method and path, the answer's status, the client's address and a summary without secrets."""
    entries = await audit_store.query(
        pool,
        since=parse_time(since, "since") if since else None,
        until=parse_time(until, "until") if until else None,
        actor=actor,
        limit=limit,
    )
    return {"entries": entries}
