"""API tokens: random bearer secrets stored only as SHA-256 hashes, each with a role and a scope."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

Role = Literal["admin", "operator", "enterprise"]
ROLES: tuple[Role, ...] = ("admin", "operator", "enterprise")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `sites` is None when the role reaches every site it may see."""

    token_id: int
    name: str
    role: Role
    enterprise: str | None
    sites: frozenset[str] | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def create_token(
    conn: asyncpg.Connection[Any],
    role: str,
    *,
    name: str = "",
    enterprise: str | None = None,
    sites: list[str] | None = None,
) -> str:
    """Store a new token and return its only plaintext copy."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "enterprise" and not enterprise:
        raise ValueError("an enterprise token needs --enterprise")
    if enterprise is not None:
        exists = await conn.fetchval("SELECT 1 FROM enterprises WHERE code = $1", enterprise)
        if not exists:
            raise ValueError(f"enterprise {enterprise!r} is not in the catalog")
    token = "sw_" + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_tokens (token_hash, name, role, enterprise, sites) VALUES ($1, $2, $3, $4, $5)",
        hash_token(token),
        name,
        role,
        enterprise,
        sites,
    )
    return token


async def lookup(conn: asyncpg.Connection[Any] | asyncpg.Pool[Any], token: str) -> Principal | None:
    row = await conn.fetchrow(
        "SELECT id, name, role, enterprise, sites FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        hash_token(token),
    )
    if row is None:
        return None
    sites = frozenset(row["sites"]) if row["sites"] is not None else None
    return Principal(row["id"], row["name"], row["role"], row["enterprise"], sites)
