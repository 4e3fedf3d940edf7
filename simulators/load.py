"""Bulk publishing for load tests: Mosquitto's own C client publishing one message per stdin line,
so the load generator costs the machine little beside what it measures."""

from __future__ import annotations

import asyncio
from typing import IO, Any


async def mosquitto_pub(
    host: str,
    port: int,
    site: str,
    gateway: str,
    password: str,
    *,
    stdin: IO[bytes] | int,
    client_id: str | None = None,
    cafile: str | None = None,
) -> asyncio.subprocess.Process:
    """Start `mosquitto_pub -l` as gateway `site/gateway` on its telemetry topic, QoS 1, with up
    to 1,000 messages in flight; each line of `stdin` is one telemetry batch. With `cafile`, over
    TLS to a broker whose certificate that CA signed."""
    args: list[Any] = [
        "mosquitto_pub",
        "-h",
        host,
        "-p",
        str(port),
        "-u",
        f"{site}/{gateway}",
        "-P",
        password,
        "-i",
        client_id or f"load-{site}-{gateway}",
        "-q",
        "1",
        "-M",
        "1000",
        "-t",
        f"sw/v1/{site}/{gateway}/telemetry",
        "-l",
    ]
    if cafile:
        args += ["--cafile", cafile]  # libmosquitto offers TLS 1.2 and 1.3 only
    return await asyncio.create_subprocess_exec(*args, stdin=stdin)
