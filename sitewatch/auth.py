"""API tokens: random bearer secrets stored only as salted hashes, each with a role, a scope, an
optional expiry and a revocation time.

A token reads `sw_{id}.{secret}`: the id finds its row, the secret (32 random bytes) proves it.
The row keeps `hash` = HMAC-SHA256(key = a random 32-byte salt of its own, message = SHA-256 of the
whole token). A token carries 256 random bits, so no guessing can match a hash and a slow KDF
would only slow every request; the salt makes each stored hash unique, so a copy of the table
cannot be matched against a list of known tokens. Tokens issued before migration 008 (`sw_`
plus the secret, no id) were stored as the bare SHA-256, which that migration re-keyed into the
same form: they keep working, found among the `legacy` rows (see docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from sitewatch.store import db

Role = Literal["admin", "operator", "enterprise"]
ROLES: tuple[Role, ...] = ("admin", "operator", "enterprise")
PREFIX = "sw_"
SALT_BYTES = 32
_NEW_FORMAT = re.compile(r"sw_([1-9][0-9]{0,8})\.([A-Za-z0-9_-]{16,128})")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_UNIT = {
    "s": dt.timedelta(seconds=1),
    "m": dt.timedelta(minutes=1),
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
}
_COLUMNS = "id, name, role, enterprise, sites, created_at, expires_at, revoked_at, salt, hash"


def token_hash(salt: bytes, token: str) -> bytes:
    """What is stored for `token`: HMAC-SHA256 keyed by its salt over the token's SHA-256."""
    return hmac.new(salt, hashlib.sha256(token.encode()).digest(), hashlib.sha256).digest()


def token_id(token: str) -> int | None:
    """The id a token names (`sw_{id}.{secret}`); None for one issued before ids (or not a token)."""
    match = _NEW_FORMAT.fullmatch(token)
    return int(match[1]) if match else None


def parse_duration(value: str) -> dt.timedelta:
    """`90s`, `30m`, `8h`, `30d` or `2w`."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"expires-in: expected a duration such as 90s, 30m, 8h, 30d or 2w, got {value!r}")
    return int(match[1]) * _UNIT[match[2]]


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


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token without its secret: what `token list` and `GET /tokens` show."""

    id: int
    name: str
    role: Role
    enterprise: str | None
    sites: list[str] | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def state(self, now: dt.datetime) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self) -> Principal:
        sites = frozenset(self.sites) if self.sites is not None else None
        return Principal(self.id, self.name, self.role, self.enterprise, sites)

    def to_json(self, now: dt.datetime | None = None) -> dict[str, Any]:
        def iso(ts: dt.datetime | None) -> str | None:
            return None if ts is None else ts.isoformat(timespec="seconds")

        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "enterprise": self.enterprise,
            "sites": self.sites,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "state": self.state(now or dt.datetime.now(dt.UTC)),
        }


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        row["id"],
        row["name"],
        row["role"],
        row["enterprise"],
        list(row["sites"]) if row["sites"] is not None else None,
        row["created_at"],
        row["expires_at"],
        row["revoked_at"],
    )


class TokenRejected(Exception):
    """A bearer token that does not authenticate: unknown, expired or revoked. `token` is the
    stored token when the secret matched one (an expired or revoked token), else None."""

    def __init__(self, reason: str, token: TokenInfo | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token


async def create_token(
    conn: db.Conn,
    role: str,
    *,
    name: str = "",
    enterprise: str | None = None,
    sites: list[str] | None = None,
    expires_in: dt.timedelta | None = None,
) -> str:
    """Store a new token and return its only plaintext copy."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "enterprise" and not enterprise:
        raise ValueError("an enterprise token needs --enterprise")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise ValueError("expires-in must be positive")
    if enterprise is not None:
        exists = await conn.fetchval("SELECT 1 FROM enterprises WHERE code = $1", enterprise)
        if not exists:
            raise ValueError(f"enterprise {enterprise!r} is not in the catalog")
    token_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('api_tokens', 'id'))")
    token = f"{PREFIX}{token_id}.{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(SALT_BYTES)
    await conn.execute(
        "INSERT INTO api_tokens (id, salt, hash, name, role, enterprise, sites, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)",
        token_id,
        salt,
        token_hash(salt, token),
        name,
        role,
        enterprise,
        sites,
        expires_in,
    )
    return token


# Verified legacy tokens (by their SHA-256) → their row id, so each is searched for once per process.
_LEGACY_IDS: OrderedDict[bytes, int] = OrderedDict()
_LEGACY_CACHE = 256


async def _candidates(conn: db.Queryable, token: str) -> list[Any]:
    numbered = token_id(token)
    if numbered is not None:
        return await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = $1", numbered)
    known = _LEGACY_IDS.get(hashlib.sha256(token.encode()).digest())
    if known is not None:
        return await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = $1 AND legacy", known)
    if not token.startswith(PREFIX) or len(token) > 128:
        return []
    return await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens WHERE legacy ORDER BY id")


async def authenticate(conn: db.Queryable, token: str) -> Principal:
    """The principal of a valid token; raises TokenRejected saying why a token is not valid."""
    for row in await _candidates(conn, token):
        if not hmac.compare_digest(token_hash(bytes(row["salt"]), token), bytes(row["hash"])):
            continue
        if token_id(token) is None:
            _LEGACY_IDS[hashlib.sha256(token.encode()).digest()] = row["id"]
            while len(_LEGACY_IDS) > _LEGACY_CACHE:
                _LEGACY_IDS.popitem(last=False)
        info = _info(row)
        if info.revoked_at is not None:
            raise TokenRejected(f"token {info.id} was revoked at {info.revoked_at.isoformat(timespec='seconds')}", info)
        if info.expires_at is not None and info.expires_at <= dt.datetime.now(dt.UTC):
            raise TokenRejected(f"token {info.id} expired at {info.expires_at.isoformat(timespec='seconds')}", info)
        return info.principal()
    raise TokenRejected("unknown token")


async def lookup(conn: db.Queryable, token: str) -> Principal | None:
    """The principal of a valid token, None for an unknown, expired or revoked one."""
    try:
        return await authenticate(conn, token)
    except TokenRejected:
        return None


async def list_tokens(conn: db.Queryable) -> list[TokenInfo]:
    return [_info(r) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY id")]


async def get_token(conn: db.Queryable, token_id: int) -> TokenInfo | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = $1", token_id)
    return None if row is None else _info(row)


async def resolve(conn: db.Queryable, id_or_name: str) -> TokenInfo:
    """The token with this id, or the one token not revoked yet with this name; LookupError otherwise."""
    if id_or_name.isascii() and id_or_name.isdigit():
        found = await get_token(conn, int(id_or_name))
        if found is None:
            raise LookupError(f"no token {id_or_name}")
        return found
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE name = $1 AND revoked_at IS NULL ORDER BY id", id_or_name
    )
    if not rows:
        raise LookupError(f"no token named {id_or_name!r} that is not revoked")
    if len(rows) > 1:
        ids = ", ".join(str(r["id"]) for r in rows)
        raise LookupError(f"{len(rows)} tokens are named {id_or_name!r} (ids {ids}): revoke one by its id")
    return _info(rows[0])


async def revoke(conn: db.Queryable, token_id: int) -> TokenInfo | None:
    """Revoke a token from now on (a revoked one keeps its first revocation time); None if unknown."""
    row = await conn.fetchrow(
        f"UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_COLUMNS}", token_id
    )
    return None if row is None else _info(row)
