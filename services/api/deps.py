"""Request dependencies: the database pool, the caller's token and what it may see."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api import audit
from sitewatch import auth
from sitewatch.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="`sitewatch token create --role ROLE` prints a token")


if TYPE_CHECKING:
    PgPool = asyncpg.Pool[Any]
else:  # asyncpg's classes are generic only in its stubs
    PgPool = asyncpg.Pool


def get_pool(request: Request) -> PgPool:
    pool: PgPool = request.app.state.pool
    return pool


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Pool = Annotated[PgPool, Depends(get_pool)]


async def get_principal(
    request: Request, pool: Pool, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> auth.Principal:
    """The caller of a valid token; 401 saying why otherwise (missing, unknown, expired, revoked)."""
    if credentials is None:
        audit.note(request, auth="missing bearer token")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        principal = await auth.authenticate(pool, credentials.credentials)
    except auth.TokenRejected as exc:
        if exc.token is not None:  # the secret matched: an expired or revoked token is named
            audit.identify(request, exc.token.principal())
        audit.note(request, auth=exc.reason)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, exc.reason, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    audit.identify(request, principal)
    return principal


Principal = Annotated[auth.Principal, Depends(get_principal)]


def require_admin(principal: Principal) -> auth.Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin token")
    return principal


Admin = Annotated[auth.Principal, Depends(require_admin)]


async def visible_sites(pool: asyncpg.Pool[Any], principal: auth.Principal) -> dict[str, int] | None:
    """Site code → id of the sites `principal` may see, or None for every site (admin, global operator)."""
    if principal.role != "enterprise" and principal.sites is None:
        return None
    rows = await pool.fetch(
        "SELECT code, id FROM sites WHERE ($1::text IS NULL OR enterprise = $1)"
        " AND ($2::text[] IS NULL OR code = ANY($2))",
        principal.enterprise if principal.role == "enterprise" else None,
        sorted(principal.sites) if principal.sites is not None else None,
    )
    return {r["code"]: r["id"] for r in rows}


async def visible_codes(pool: asyncpg.Pool[Any], principal: auth.Principal) -> list[str] | None:
    """The codes of the sites `principal` may see, sorted, or None for every site: the filter the
    store's queries take."""
    sites = await visible_sites(pool, principal)
    return None if sites is None else sorted(sites)


def not_found(kind: str, key: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} {key} not found")


def require_uuid(kind: str, key: str) -> None:
    """A malformed id names nothing: 404 like an unknown one, before it reaches a query."""
    try:
        uuid.UUID(key)
    except ValueError:
        raise not_found(kind, key) from None
