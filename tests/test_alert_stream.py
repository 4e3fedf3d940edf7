"""GET /api/v1/alerts/stream: every alert change as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import httpx

from tests.conftest import StackHandle
from tests.test_alert_lifecycle import raise_alert


def read_events(
    stack: StackHandle,
    count: int,
    *,
    token: str | None = None,
    last_id: str | None = None,
    timeout: float = 10.0,
    site: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(id, body) of the first `count` events of `site` (all sites when None) on a fresh stream."""
    headers = {"Authorization": f"Bearer {token or stack.token}"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    events: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    with (
        contextlib.suppress(httpx.ReadTimeout),  # the stream never ends by itself: stop reading at `timeout`
        httpx.stream("GET", f"{stack.api}/api/v1/alerts/stream", headers=headers, timeout=timeout) as r,
    ):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event_id = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                body = json.loads(line[6:])
                if site is None or body["site"] == site:
                    events.append((str(event_id), body))
            if len(events) >= count or time.monotonic() > deadline:
                break
    return events


def test_stream_resumes_after_a_disconnect_with_exactly_the_missed_events(stack: StackHandle) -> None:
    site, alert, listener = raise_alert(stack)
    listener.close()
    # a screen that was connected before the raise: replay from the start of this test's site events
    raised = read_events(stack, 1, last_id="0", site=site)
    assert raised[0][1]["change"] == "raise" and raised[0][1]["id"] == alert["id"]
    seen_id = raised[0][0]
    with stack.http() as c:  # while the screen is disconnected
        url = f"/api/v1/alerts/{alert['id']}"
        assert c.post(f"{url}/acknowledge", json={"by": "调度员"}).status_code == 200
        assert c.post(f"{url}/handle", json={"by": "调度员", "note": "已处置"}).status_code == 200
    resumed = read_events(stack, 2, last_id=seen_id, site=site)
    assert [b["change"] for _, b in resumed] == ["acknowledge", "handle"]
    assert int(resumed[0][0]) > int(seen_id) and int(resumed[1][0]) > int(resumed[0][0])


def test_stream_shows_an_enterprise_only_its_own_sites(stack: StackHandle) -> None:
    theirs, _alert, listener = raise_alert(stack, enterprise="ENT-SSE-THEIRS")
    listener.close()
    ours, _own, listener = raise_alert(stack, enterprise="ENT-SSE-OURS")
    listener.close()
    token = stack.token_for("enterprise", "--enterprise", "ENT-SSE-OURS")
    events = read_events(stack, 50, token=token, last_id="0", timeout=3)
    sites = {b["site"] for _, b in events}
    assert ours in sites and theirs not in sites
