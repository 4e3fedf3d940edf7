"""Connections with the codecs every Sitewatch process expects (jsonb as Python objects)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
    """A connection, whether opened directly or acquired from a pool."""
    Queryable: TypeAlias = Conn | asyncpg.Pool[Any]
    """Anything that runs a single query (a pool picks a connection for it)."""


async def _init(conn: asyncpg.Connection[Any]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str, *, timeout: float = 5.0) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, timeout=timeout)
    await _init(conn)
    return conn


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool[Any]:
    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init, timeout=5.0
    )
    return pool


# Errors that mean "the database is not reachable right now", as opposed to a bad statement.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.PostgresConnectionError,
    # a connection the server dropped in the middle of an operation can be left in a state where
    # the next one fails on the client side ("another operation is in progress"): drop it too
    asyncpg.exceptions.InternalClientError,
    TimeoutError,
)

# ... and anything a query can raise, for callers that only need to know it failed.
FAILED: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError)
