"""Shelving (ISA-18.2): bounded, with a reason, audited, undone automatically; never SOS, headcount
or red alerts."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from sitewatch.lifecycle import TransitionError, check_shelve
from tests.conftest import AlertListener, StackHandle, site_catalog, unique


@pytest.mark.parametrize(
    ("rule", "severity", "state", "reason", "status"),
    [
        ("sos", 2, "open", "drill", 409),
        ("headcount", 2, "open", "sensor fault", 409),
        ("threshold", 4, "open", "known bad", 409),
        ("threshold", 2, "closed", "known bad", 409),
        ("threshold", 2, "open", " ", 422),
    ],
)
def test_what_may_never_be_shelved(rule: str, severity: int, state: str, reason: str, status: int) -> None:
    with pytest.raises(TransitionError) as err:
        check_shelve(rule, severity, state, "op", reason)
    assert err.value.status == status


def test_shelve_is_bounded_audited_and_expires_by_itself(stack: StackHandle) -> None:
    site = unique("SH")
    doc = site_catalog(site, points=2)
    doc["points"][0].update(period_s=3600, rules=[{"rule": "threshold", "above": [50], "severities": [2]}])
    doc["points"][1].update(period_s=3600, rules=[{"rule": "threshold", "above": [50], "severities": [4]}])
    assert stack.load_catalog(doc).status_code == 200
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    gw.flush(
        [
            gw.telemetry(
                [
                    {"point": "P0", "ts": int(time.time() * 1000), "value": 60.0},
                    {"point": "P1", "ts": int(time.time() * 1000), "value": 60.0},
                ]
            )
        ]
    )
    gw.close()
    raised = listener.wait(lambda m: len(m) >= 2)
    yellow = next(a for a in raised if a["severity"] == 2)
    red = next(a for a in raised if a["severity"] == 4)
    with stack.http() as c:
        for _ in range(50):
            if c.get(f"/api/v1/alerts/{red['id']}").status_code == 200:
                break
            time.sleep(0.1)
        assert c.post(f"/api/v1/alerts/{red['id']}/shelve", json={"by": "op", "note": "noisy"}).status_code == 409
        url = f"/api/v1/alerts/{yellow['id']}"
        assert c.post(f"{url}/shelve", json={"by": "op"}).status_code == 422  # no reason
        far = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
        bounded = c.post(f"{url}/shelve", json={"by": "op", "note": "sensor being replaced", "until": far}).json()
        until = dt.datetime.fromisoformat(bounded["shelved_until"])
        assert bounded["shelved"] and until <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=10, minutes=1)
        assert c.post(f"{url}/unshelve", json={"by": "op"}).json()["shelved"] is False
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
        assert c.post(f"{url}/shelve", json={"by": "op", "note": "chattering", "until": soon}).status_code == 200
    messages = listener.wait(lambda m: sum(1 for x in m if x.get("change") == "unshelve") >= 2, timeout=10)
    listener.close()
    assert [m["change"] for m in messages if m["id"] == yellow["id"]] == [
        "raise",
        "shelve",
        "unshelve",
        "shelve",
        "unshelve",
    ]
    with stack.http() as c:
        history = c.get(f"/api/v1/alerts/{yellow['id']}").json()["history"]
    assert [(h["action"], h["by"]) for h in history if "shelve" in h["action"]] == [
        ("shelve", "op"),
        ("unshelve", "op"),
        ("shelve", "op"),
        ("unshelve", "scheduler"),
    ]
