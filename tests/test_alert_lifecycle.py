"""The human side of alerts through HTTP and MQTT: acknowledge, handle (with a disposition), close,
invalid steps refused, concurrent clicks resolved to one step, scoping, and the evaluator told."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import AlertListener, StackHandle, site_catalog, threshold_site, unique

RULE = {"rule": "threshold", "above": [50], "deadband": 5}


def raise_alert(stack: StackHandle, enterprise: str = "ENT-L") -> tuple[str, dict[str, Any], AlertListener]:
    site = threshold_site(stack, "LC", enterprise=enterprise, rule=RULE)
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    gw.flush([gw.telemetry([{"point": "P0", "ts": int(time.time() * 1000), "value": 70.0}])])
    gw.close()
    alert = listener.wait(lambda m: len(m) >= 1)[0]
    with stack.http() as c:  # stored behind the publish
        for _ in range(50):
            if c.get(f"/api/v1/alerts/{alert['id']}").status_code == 200:
                break
            time.sleep(0.1)
    return site, alert, listener


def test_acknowledge_handle_close_with_history_and_pushes(stack: StackHandle) -> None:
    site, alert, listener = raise_alert(stack)
    url = f"/api/v1/alerts/{alert['id']}"
    with stack.http() as c:
        listed = c.get("/api/v1/alerts", params={"site": site}).json()
        assert listed["total"] == 1 and listed["alerts"][0]["id"] == alert["id"]
        assert c.post(f"{url}/close", json={"by": "张调度", "note": "done"}).status_code == 409
        ack = c.post(f"{url}/acknowledge", json={"by": "张调度"})
        assert ack.status_code == 200 and ack.json()["state"] == "acknowledged" and ack.json()["acknowledged_at"]
        assert c.post(f"{url}/acknowledge", json={"by": "张调度"}).status_code == 409
        no_note = c.post(f"{url}/handle", json={"by": "张调度", "note": "  "})
        assert no_note.status_code == 422 and "disposition" in no_note.json()["detail"]
        assert c.post(f"{url}/handle", json={"by": "张调度", "note": "停泵排查，泄漏点已封堵"}).status_code == 200
        closed = c.post(f"{url}/close", json={"by": "李值班", "note": "复测正常"})
        assert closed.status_code == 200 and closed.json()["state"] == "closed" and closed.json()["closed_at"]
        again = c.post(f"{url}/close", json={"by": "李值班"})
        assert again.status_code == 409 and "already closed" in again.json()["detail"]
        detail = c.get(url).json()
        deadline = time.monotonic() + 10  # ingest stores the reading beside alerting raising on it
        while not detail["readings"] and time.monotonic() < deadline:
            time.sleep(0.1)
            detail = c.get(url).json()
        assert [r["value"] for r in detail["readings"]] == [70.0]  # the source's readings around the raise
        assert [(h["action"], h["by"]) for h in detail["history"]] == [
            ("raise", "evaluator"),
            ("acknowledge", "张调度"),
            ("handle", "张调度"),
            ("close", "李值班"),
        ]
        assert detail["history"][2]["note"] == "停泵排查，泄漏点已封堵"
        assert c.get("/api/v1/alerts", params={"site": site, "state": "closed"}).json()["total"] == 1
        assert c.post("/api/v1/alerts/not-a-uuid/close", json={"by": "x"}).status_code == 404
    pushed = listener.wait(lambda m: any(x.get("change") == "close" for x in m))
    listener.close()
    assert [m["change"] for m in pushed] == ["raise", "acknowledge", "handle", "close"]


def test_after_closing_the_condition_raises_a_new_alert(stack: StackHandle) -> None:
    site, alert, listener = raise_alert(stack)
    url = f"/api/v1/alerts/{alert['id']}"
    with stack.http() as c:
        assert c.post(f"{url}/handle", json={"by": "a", "note": "reset the pump"}).status_code == 200
        assert c.post(f"{url}/close", json={"by": "a"}).status_code == 200
    time.sleep(0.5)  # the evaluator hears of it
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    t = int(time.time() * 1000)
    gw.flush([gw.telemetry([{"point": "P0", "ts": t, "value": 10.0}, {"point": "P0", "ts": t + 1, "value": 80.0}])])
    gw.close()
    raised = listener.wait(lambda m: len([x for x in m if x["change"] == "raise"]) >= 2)
    listener.close()
    ids = [x["id"] for x in raised if x["change"] == "raise"]
    assert len(set(ids)) == 2


def test_two_operators_closing_at_once_make_one_step(stack: StackHandle) -> None:
    _site, alert, listener = raise_alert(stack)
    listener.close()
    url = f"{stack.api}/api/v1/alerts/{alert['id']}"
    headers = {"Authorization": f"Bearer {stack.token}"}
    assert httpx.post(f"{url}/handle", json={"by": "a", "note": "fixed"}, headers=headers).status_code == 200
    codes: list[int] = []
    barrier = threading.Barrier(4)

    def click(who: str) -> None:
        barrier.wait()
        codes.append(httpx.post(f"{url}/close", json={"by": who}, headers=headers, timeout=30).status_code)

    threads = [threading.Thread(target=click, args=(f"op{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409, 409, 409]
    history = httpx.get(url, headers=headers).json()["history"]
    assert [h["action"] for h in history].count("close") == 1


@pytest.mark.parametrize("action", ["acknowledge", "handle", "close"])
def test_an_enterprise_cannot_touch_another_enterprises_alert(stack: StackHandle, action: str) -> None:
    _site, alert, listener = raise_alert(stack, enterprise="ENT-THEIRS-A")
    listener.close()
    stack.load_catalog(site_catalog(unique("OURS"), enterprise="ENT-OURS-A"))
    ours = stack.token_for("enterprise", "--enterprise", "ENT-OURS-A")
    with stack.http(ours) as c:
        assert c.get(f"/api/v1/alerts/{alert['id']}").status_code == 404
        assert c.post(f"/api/v1/alerts/{alert['id']}/{action}", json={"by": "x", "note": "y"}).status_code == 404
        assert all(a["id"] != alert["id"] for a in c.get("/api/v1/alerts").json()["alerts"])
