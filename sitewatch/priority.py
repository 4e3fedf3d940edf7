"""CPU priority: bulk storage yields to alert evaluation when the machine is short of CPU.

A service started with `SITEWATCH_NICE=n` runs at niceness n, and so do the PostgreSQL sessions
it writes through when the database runs on this machine under a user it may renice (the local
stack's). The kernel then gives alerting the CPU first and storage what is left, so an overload
delays storage (which catches up from the spool) rather than alerts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "::1")


def lower_own(nice: int) -> None:
    if nice > 0:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        log.info("running at niceness %d", nice)


async def lower_session(conn: asyncpg.Connection[Any], nice: int) -> bool:
    """Renice the backend serving `conn`; False when it runs elsewhere or is not ours to renice."""
    if nice <= 0:
        return False
    row = await conn.fetchrow("SELECT pg_backend_pid() AS pid, host(inet_server_addr()) AS addr")
    assert row is not None
    if row["addr"] is not None and row["addr"] not in _LOOPBACK:
        return False
    return _renice_backend(int(row["pid"]), nice)


def _renice_backend(pid: int, nice: int) -> bool:
    try:
        # the same PID in another namespace (a container's port on loopback) is not our backend
        if b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
    except (PermissionError, ProcessLookupError, FileNotFoundError) as exc:
        log.info("cannot renice database session %d: %s", pid, exc)
        return False
    return True
