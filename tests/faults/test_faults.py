"""The fault matrix, short: each fault strikes while a gateway publishes a known workload; after
recovery every reading is stored exactly once and the alert state is the undisturbed run's.
`bench/faults.py` (`make soak`) runs the same faults with realistic outages."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.faults import harness
from tests.faults.conftest import WORKLOAD

OUTAGE_S = 4.0
SPOOL_MAX_BYTES = 4096
FAULTS = harness.faults(OUTAGE_S, SPOOL_MAX_BYTES)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name.split(" (")[0] for f in FAULTS])
def test_fault_loses_nothing_doubles_nothing_and_alerts_as_undisturbed(
    fault_stack: harness.FaultStack, baseline: harness.Result, fault: harness.Fault
) -> None:
    result = harness.run(fault_stack, WORKLOAD, fault)
    assert result.problems(baseline) == []
    assert result.readings_doubled == 0 and result.readings_stored == result.readings_published
    assert result.recovery_s is not None and result.recovery_s < 30
    if fault.component in ("ingest", "alerting", "api"):  # back by the supervisor, not by `stack up`
        assert fault_stack.pid(fault.component) != result.notes["killed_pid"]
        log = (fault_stack.data_dir / "logs" / "supervisor.log").read_text()
        assert f"{fault.component} was not running (pid {result.notes['killed_pid']}): restarted it" in log
    if fault.component == "api":
        assert result.notes["sse_reconnects"] >= 1  # the stream broke and resumed from Last-Event-ID
    if "spool" in fault.name:
        assert result.notes["spool_peak_bytes"] > 0
    if "overload" in fault.name:
        states = result.notes["states"]
        harness.wait_until("/status back to ok", lambda: states[-1] == "ok/normal", timeout=60)
        # deferred to the spool and said so; drained; back to normal — and alerting never behind
        assert "overloaded/overloaded" in states and states[-1] == "ok/normal", states
        assert states.index("overloaded/overloaded") < len(states) - 1
        assert result.notes["max_alerting_delay_s"] < 1.0
        assert (fault_stack.metric("ingest", "sitewatch_ingest_deferred_readings_total") or 0) > 0


def test_down_of_one_component_is_not_undone_by_the_supervisor(fault_stack: harness.FaultStack) -> None:
    fault_stack.down("api")
    try:
        killed = fault_stack.pid("alerting")
        os.kill(killed, signal.SIGKILL)  # the supervisor's next round restarts this, and only this
        harness.wait_until(
            "alerting restarted",
            lambda: fault_stack.pid("alerting") != killed and fault_stack.ready("alerting"),
            timeout=30,
        )
        status = fault_stack.status()
        assert not status["components"]["api"]["running"]
        assert json.loads((fault_stack.data_dir / "stack.json").read_text())["stopped"] == ["api"]
    finally:
        fault_stack.up()
    status = fault_stack.status()
    assert status["running"] and status["supervisor"]["running"]
