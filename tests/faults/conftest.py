"""The fault matrix's own stack (faults must not disturb the other tests' stack) and the baseline
run every fault is compared with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults import harness


def own_stack(tmp_path_factory: pytest.TempPathFactory, name: str, workers: int = 1) -> Iterator[harness.FaultStack]:
    """A stack of the module's own, stopped at its end."""
    stack = harness.FaultStack(tmp_path_factory.mktemp(name), workers=workers)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.FaultStack]:
    yield from own_stack(tmp_path_factory, "fault-stack")


@pytest.fixture(scope="module")
def baseline(fault_stack: harness.FaultStack) -> harness.Result:
    result = harness.run(fault_stack, WORKLOAD, None)
    assert result.problems(None) == []
    return result


WORKLOAD = harness.Workload(duration_s=8.0, rate_hz=20.0)
