"""The spool at its bound: writers wait (the broker keeps the rest), none slips past the bound
while another is writing into the last free space, and a batch larger than the bound goes in alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from services.ingest.spool import Spool, encode
from sitewatch.store.writer import Batch


def batch(readings: int) -> Batch:
    b = Batch()
    msg = b.add_message(1, "GW-1", readings, 1, readings, 0)
    b.add_readings(
        msg,
        np.zeros(readings, dtype=np.int32),
        np.arange(readings, dtype=np.int64),
        np.ones(readings),
        np.zeros(readings, dtype=np.int16),
    )
    return b


async def test_concurrent_writers_never_pass_the_bound_and_wait_for_replay(tmp_path: Path) -> None:
    size = len(encode(batch(10)))
    spool = Spool(tmp_path, max_bytes=3 * size)
    await spool.append(batch(10))
    await spool.append(batch(10))
    writers = [asyncio.create_task(spool.append(batch(10))) for _ in range(3)]  # room for one
    await asyncio.wait_for(writers[0], 5)
    assert len(spool) == 3 and spool.bytes <= spool.max_bytes
    assert not writers[1].done() and not writers[2].done()  # back-pressure, nothing dropped
    oldest = await spool.claim()
    assert oldest is not None
    await spool.remove(oldest[0])
    done, _ = await asyncio.wait(writers[1:], timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and len(spool) == 3 and spool.bytes <= spool.max_bytes
    for _ in range(3):
        oldest = await spool.claim()
        assert oldest is not None
        await spool.remove(oldest[0])
    await asyncio.wait_for(asyncio.gather(*writers), 5)
    assert len(spool) == 1


async def test_a_batch_larger_than_the_bound_goes_in_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    await asyncio.wait_for(spool.append(batch(50)), 5)
    assert len(spool) == 1 and spool.bytes > spool.max_bytes
    second = asyncio.create_task(spool.append(batch(1)))
    await asyncio.sleep(0)
    assert not second.done()
    oldest = await spool.claim()
    assert oldest is not None
    await spool.remove(oldest[0])
    await asyncio.wait_for(second, 5)
    assert len(spool) == 1


async def test_replayers_claim_distinct_batches_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for n in (1, 2, 3):
        await spool.append(batch(n))
    first, second = await spool.claim(), await spool.claim()
    assert first is not None and second is not None
    assert (first[1].n_readings, second[1].n_readings) == (1, 2)
    spool.release(first[0])  # its commit failed: it is the oldest again
    again = await spool.claim()
    assert again is not None and again[0] == first[0]
    await spool.remove(second[0])
    third = await spool.claim()
    assert third is not None and third[1].n_readings == 3
    assert await spool.claim() is None  # all three held or gone
