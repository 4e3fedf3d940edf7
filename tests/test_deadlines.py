"""The same-day rule: due at the end of the raise's local day (DST-safe), overdue at that moment
even if nothing else happens, pushed and escalated; red alerts nobody acknowledges escalate too."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from sitewatch.alerts import end_of_day_ms
from sitewatch.store import alerts as alert_store
from sitewatch.store.migrate import migrate
from tests.conftest import AlertListener, StackHandle, threshold_site, unique
from tests.test_storage import fresh_database


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("raised", "zone", "due"),
    [
        ("2026-11-22T23:59:30+08:00", "Asia/Shanghai", "2026-11-23T00:00:00+08:00"),
        ("2026-11-22T00:00:00+08:00", "Asia/Shanghai", "2026-11-23T00:00:00+08:00"),
        ("2026-03-08T12:00:00-04:00", "America/New_York", "2026-03-09T00:00:00-04:00"),  # a 23-hour day
        ("2026-11-01T12:00:00-05:00", "America/New_York", "2026-11-02T00:00:00-05:00"),  # a 25-hour day
    ],
)
def test_due_at_is_the_end_of_the_local_day(raised: str, zone: str, due: str) -> None:
    assert end_of_day_ms(ms(raised), zone) == ms(due)
    assert dt.datetime.fromtimestamp(end_of_day_ms(ms(raised), zone) / 1000, ZoneInfo(zone)).time() == dt.time(0)


@pytest.fixture
async def fresh(stack: StackHandle) -> AsyncIterator[asyncpg.Connection[Any]]:
    async for conn in fresh_database(stack):
        yield conn


NOW = dt.datetime.now(dt.UTC)
LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FAR_AHEAD = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


async def insert_alert(conn: asyncpg.Connection[Any], *, severity: int, raised: dt.datetime, due: dt.datetime) -> str:
    alert_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO alerts (id, site_id, source_type, source_code, rule, severity, raised_at, due_at)"
        " VALUES ($1, (SELECT id FROM sites WHERE code = 'S'), 'point', $2, 'threshold', $3, $4, $5)",
        alert_id,
        f"P-{alert_id[:4]}",
        severity,
        raised,
        due,
    )
    return alert_id


async def test_overdue_and_red_escalation_in_the_store(fresh: asyncpg.Connection[Any]) -> None:
    await migrate(fresh)
    await fresh.execute(
        "INSERT INTO enterprises (code, name, extra) VALUES ('E', 'e', $1)",
        {"escalation": {"2": ["安全总监 王五"], "3": ["应急管理局"]}},
    )
    await fresh.execute("INSERT INTO sites (code, enterprise, name, kind) VALUES ('S', 'E', 's', 'tank_farm')")
    due_soon = await insert_alert(fresh, severity=2, raised=NOW, due=LONG_AGO)
    later = await insert_alert(fresh, severity=2, raised=LONG_AGO, due=FAR_AHEAD)
    red = await insert_alert(fresh, severity=4, raised=LONG_AGO, due=FAR_AHEAD)
    steps = await alert_store.deadlines(fresh, unacknowledged_red_s=900, regulator_after_s=9e9)
    assert sorted((c, a.id) for c, a in steps) == sorted([("overdue", due_soon), ("escalate", red)])
    overdue = next(a for c, a in steps if c == "overdue")
    assert overdue.overdue and overdue.details["escalation"] == {
        "level": 2,
        "to": ["安全总监 王五"],
        "why": "not closed by the end of the day",
    }
    assert await alert_store.deadlines(fresh, unacknowledged_red_s=900, regulator_after_s=9e9) == []  # once
    regulator = await alert_store.deadlines(fresh, unacknowledged_red_s=900, regulator_after_s=3600)
    assert [(c, a.id, a.details["escalation"]["level"]) for c, a in regulator] == [("escalate", due_soon, 3)]
    assert regulator[0][1].details["escalation"]["to"] == ["应急管理局"]
    assert await alert_store.deadlines(fresh, unacknowledged_red_s=900, regulator_after_s=3600) == []
    untouched = await alert_store.get(fresh, later)
    assert untouched is not None and not untouched.overdue
    history = [h["action"] for h in await alert_store.history(fresh, due_soon)]
    assert history == ["overdue", "escalate", "escalate"]


def test_an_alert_not_closed_by_midnight_becomes_overdue_then_and_stays_late(stack: StackHandle) -> None:
    site = threshold_site(stack, "DL", enterprise=unique("ENT-DL"), escalation={"2": ["安全总监"]})
    listener = AlertListener(stack, site)
    gw = stack.gateway(site, "GW-1", "gw-secret-1")
    gw.flush([gw.telemetry([{"point": "P0", "ts": int(time.time() * 1000), "value": 70.0}])])
    gw.close()
    alert = listener.wait(lambda m: len(m) >= 1)[0]

    async def midnight_in_two_seconds() -> None:  # as if raised at 23:59:58 local
        conn = await asyncpg.connect(stack.dsn)
        try:
            for _ in range(50):
                if (
                    await conn.execute(
                        "UPDATE alerts SET due_at = now() + interval '2 seconds' WHERE id = $1::uuid", alert["id"]
                    )
                    == "UPDATE 1"
                ):
                    return
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    asyncio.run(midnight_in_two_seconds())
    with stack.http() as c:
        assert c.get(f"/api/v1/alerts/{alert['id']}").json()["overdue"] is False
    messages = listener.wait(lambda m: any(x["change"] == "overdue" for x in m), timeout=10)
    pushed = next(x for x in messages if x["change"] == "overdue")
    assert pushed["overdue"] and pushed["details"]["escalation"]["to"] == ["安全总监"]
    with stack.http() as c:
        url = f"/api/v1/alerts/{alert['id']}"
        assert c.post(f"{url}/handle", json={"by": "a", "note": "late but done"}).status_code == 200
        closed = c.post(f"{url}/close", json={"by": "a"}).json()
        assert closed["state"] == "closed" and closed["overdue"] is True  # a fact that never un-happens
        assert c.get("/api/v1/alerts", params={"site": site, "overdue": "true"}).json()["total"] == 1
        raised_day = dt.datetime.fromisoformat(closed["raised_at"]).date().isoformat()
        daily = c.get("/api/v1/reports/daily", params={"date": raised_day, "site": site}).json()["sites"][0]
        assert (daily["closed_on_time"], daily["closed_late"], daily["overdue"]) == (0, 1, 1)
    listener.close()
