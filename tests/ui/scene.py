"""A realistic dispatch-room scene on a stack, for the screenshots and their test: three
enterprises, an underground mine with a crowded work site, an open pit with an accelerating
slope, a tank farm and a dust plant; alerts of every severity and state, one overdue since
yesterday, and the month so far for the reports.

Today's and yesterday's data go through the real pipeline (gateways publishing over MQTT, the
evaluator raising, the API handling); the earlier days of the month, which only the reports show,
are written into the alert store directly, as closed alerts with their times."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from tests.conftest import StackHandle, unique
from tests.ui.conftest import gateway, wait_for

TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "scene-gateway-1"
SURNAMES, GIVEN = "张王李刘陈杨赵黄周吴徐孙", "伟芳强洋杰磊勇涛斌刚亮鹏"
PEOPLE = [s + g for s, g in zip(SURNAMES * 2, GIVEN + GIVEN[::-1], strict=True)]


@dataclass
class Scene:
    sites: dict[str, str]  # role in the scene → site code
    enterprises: list[str]
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → alert object

    @property
    def codes(self) -> list[str]:
        return sorted(self.sites.values())


def _catalog(s: dict[str, str], e: dict[str, str]) -> dict[str, Any]:
    mine, pit, tank, dust = s["mine"], s["pit"], s["tank"], s["dust"]

    def site(code: str, ent: str, name: str, kind: str, capacity: int | None = None) -> dict[str, Any]:
        out = {"code": code, "enterprise": ent, "name": name, "kind": kind, "timezone": "Asia/Shanghai"}
        return {**out, "state": "operating", **({"shift_capacity": capacity} if capacity else {})}

    def point(code: str, at: str, kind: str, unit: str, name: str, **extra: Any) -> dict[str, Any]:
        return {"code": code, "site": at, "kind": kind, "unit": unit, "name": name, "period_s": 600, **extra}

    return {
        "enterprises": [
            {"code": e["jl"], "name": "威海金岭矿业有限公司"},
            {"code": e["lb"], "name": "鲁北石化储运有限公司"},
            {"code": e["hx"], "name": "华兴铝业制品有限公司"},
        ],
        "sites": [
            site(mine, e["jl"], "金岭铁矿 井下", "underground_mine", 120),
            site(pit, e["jl"], "金岭铁矿 露天采场", "open_pit"),
            site(tank, e["lb"], "鲁北石化 储罐区", "tank_farm"),
            site(dust, e["hx"], "华兴铝业 抛光车间", "dust_plant"),
        ],
        "gateways": [{"code": "GW-1", "site": c, "password": PASSWORD} for c in (mine, pit, tank, dust)],
        "zones": [
            {"code": "WF-302", "site": mine, "name": "302 采场", "risk": "high", "max_people": 9},
            {"code": "WF-305", "site": mine, "name": "305 采场", "risk": "high", "max_people": 9},
            {"code": "SHAFT", "site": mine, "name": "主井井口", "risk": "normal"},
            {"code": "MAG-1", "site": mine, "name": "井下炸药库", "risk": "restricted"},
        ],
        "points": [
            point("GT-101", mine, "gas_lel", "%LEL", "302 采场 甲烷"),
            point("GT-102", mine, "gas_lel", "%LEL", "305 采场 甲烷"),
            point("HS-201", mine, "gas_toxic", "ppm", "回风巷 硫化氢"),
            point("GNSS-01", pit, "slope_displacement", "mm", "东帮 GNSS-01", period_s=1800),
            point("GNSS-02", pit, "slope_displacement", "mm", "东帮 GNSS-02", period_s=1800),
            point("GNSS-03", pit, "slope_displacement", "mm", "西帮 GNSS-03", period_s=1800),
            point("RG-1", pit, "rainfall", "mm/h", "采场 雨量计"),
            point("LT-101", tank, "tank_level", "%", "1#罐 液位"),
            point("LT-102", tank, "tank_level", "%", "2#罐 液位"),
            point("TT-101", tank, "tank_temperature", "°C", "1#罐 温度"),
            point("PT-301", tank, "tank_pressure", "MPa", "3#球罐 压力"),
            point("GT-201", tank, "gas_lel", "%LEL", "罐区 可燃气体"),
            point("DP-1", dust, "dust_dp", "Pa", "1#除尘器 压差"),
            point("HT-1", dust, "hopper_temperature", "°C", "1#灰斗 温度"),
            point(
                "HT-2",
                dust,
                "hopper_temperature",
                "°C",
                "2#灰斗 温度",
                rules=[{"rule": "threshold", "above": [50], "severities": [1], "deadband": 2}],
            ),
        ],
        "tags": [{"code": f"T-{i:03d}", "site": mine, "person": name} for i, name in enumerate(PEOPLE, 1)],
    }


def _minutes(now_ms: int, minutes: int, value: Any) -> list[dict[str, Any]]:
    """One reading a minute for the last `minutes` minutes, `value(i)` with i = 0 the oldest."""
    return [{"ts": now_ms - (minutes - 1 - i) * 60_000, "value": round(value(i), 2)} for i in range(minutes)]


def _series(now_ms: int, rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    """The last hour of every analog point. The evaluator judges only the last 10 minutes (its late
    window): that is where gas rises at 302, a tank overfills, a hopper warms, the dust collector
    clogs for three minutes and two brief spikes come and go."""

    def noisy(base: float, amp: float) -> Any:
        return lambda i: base + amp * math.sin(i / 7) + rng.uniform(-amp, amp) / 3

    def after(start: int, base: Any, rise: Any) -> Any:
        return lambda i: base(i) if i < start else rise(i - start)

    flat = noisy(6, 0.4)
    return {
        "GT-101": _minutes(now_ms, 60, after(50, flat, lambda k: 6 + k**1.6 * 1.6)),
        "GT-102": _minutes(now_ms, 60, noisy(4, 0.8)),
        "HS-201": _minutes(now_ms, 60, noisy(2.2, 0.4)),
        "RG-1": _minutes(now_ms, 60, lambda i: max(0.0, 3 * math.sin(i / 12))),
        "LT-101": _minutes(now_ms, 60, noisy(62, 0.3)),
        "LT-102": _minutes(now_ms, 60, lambda i: 80 + i * 0.05 + max(0, i - 50) * 0.9),
        "TT-101": _minutes(now_ms, 60, lambda i: 43 if 53 <= i <= 54 else 31 + rng.uniform(-0.4, 0.4)),
        "PT-301": _minutes(now_ms, 60, noisy(1.1, 0.02)),
        "GT-201": _minutes(now_ms, 60, lambda i: 28 if i == 54 else 2 + rng.uniform(-0.5, 0.5)),
        "DP-1": _minutes(now_ms, 60, lambda i: 1880 + (i - 51) * 5 if 51 <= i <= 53 else 1200 + rng.uniform(-30, 30)),
        "HT-1": _minutes(now_ms, 60, noisy(45, 1.5)),
        "HT-2": _minutes(now_ms, 60, after(50, noisy(47, 0.3), lambda k: 47 + k * 0.6)),
    }


def _slope(end_ms: int, rate: Any) -> list[dict[str, Any]]:
    """Two days of cumulative displacement up to `end_ms`, one reading per 30 min, the rate
    `rate(days before end)` in mm/d."""
    out, total = [], 0.0
    for k in range(97):
        days_ago = (96 - k) / 48
        total += rate(days_ago) / 48
        out.append({"ts": end_ms - (96 - k) * 1_800_000, "value": round(total, 2)})
    return out


def _publish(stack: StackHandle, site: str, readings: list[dict[str, Any]]) -> None:
    gw = gateway(stack, site, PASSWORD)
    try:
        gw.flush([gw.telemetry(readings[i : i + 500]) for i in range(0, len(readings), 500)])
    finally:
        gw.close()


def _alert(stack: StackHandle, site: str, source: str, rule: str | None = None) -> dict[str, Any]:
    with stack.http() as c:

        def find() -> list[dict[str, Any]]:
            found = c.get("/api/v1/alerts", params={"site": site, "limit": 1000}).json()["alerts"]
            return [
                a
                for a in found
                if a["source"]["code"] == source and (rule is None or a["rule"] == rule) and a["state"] != "closed"
            ]

        return dict(wait_for(find, bool, timeout=20)[0])


def _step(stack: StackHandle, alert: dict[str, Any], action: str, by: str, note: str = "") -> None:
    with stack.http() as c:
        r = c.post(f"/api/v1/alerts/{alert['id']}/{action}", json={"by": by, "note": note})
        assert r.status_code == 200, r.text


HISTORY_SOURCES = {
    "mine": [("zone", "WF-302", "headcount"), ("point", "GT-101", "threshold"), ("point", "HS-201", "threshold")],
    "pit": [("point", "GNSS-01", "slope_trend"), ("point", "GNSS-03", "slope_trend")],
    "tank": [("point", "LT-101", "threshold"), ("point", "TT-101", "threshold"), ("point", "GT-201", "threshold")],
    "dust": [("point", "DP-1", "threshold"), ("point", "HT-1", "threshold")],
}


async def _month_so_far(dsn: str, sites: dict[str, str], today: dt.date, rng: random.Random) -> None:
    """Closed alerts on the days of this month before yesterday, most closed on time, some late."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT code, id FROM sites WHERE code = ANY($1)", list(sites.values()))
        ids = {r["code"]: r["id"] for r in rows}
        for day in range(1, today.day - 1):
            date = today.replace(day=day)
            for _ in range(rng.randint(2, 7)):
                role = rng.choice(list(HISTORY_SOURCES))
                source_type, source, rule = rng.choice(HISTORY_SOURCES[role])
                severity = rng.choices([1, 2, 3, 4], weights=[3, 5, 3, 1])[0]
                raised = dt.datetime.combine(date, dt.time(rng.randint(7, 21), rng.randint(0, 59)), TZ)
                due = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), TZ)
                late = rng.random() < 0.15
                closed = due + dt.timedelta(hours=rng.uniform(1, 9)) if late else raised + dt.timedelta(minutes=40)
                await conn.execute(
                    "INSERT INTO alerts (id, site_id, source_type, source_code, rule, severity, state, value, peak,"
                    " message, raised_at, due_at, overdue, acknowledged_at, handled_at, closed_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, 'closed', 0, 0, $7, $8, $9, $10, $11, $12, $12)",
                    uuid.uuid4(),
                    ids[sites[role]],
                    source_type,
                    source,
                    rule,
                    severity,
                    f"{source} {rule}",
                    raised,
                    due,
                    late,
                    raised + dt.timedelta(minutes=5),
                    closed,
                )
    finally:
        await conn.close()


def build(stack: StackHandle) -> Scene:
    """Load the scene's catalog and drive it to the state the screenshots show."""
    rng = random.Random(20261125)
    roles = (("mine", "JL-MINE"), ("pit", "JL-PIT"), ("tank", "LB-TANK"), ("dust", "HX-DUST"))
    s = {role: unique(code) for role, code in roles}
    e = {key: unique(f"ENT-{key.upper()}") for key in ("jl", "lb", "hx")}
    assert stack.load_catalog(_catalog(s, e)).status_code == 200
    scene = Scene(sites=s, enterprises=list(e.values()))
    now = int(time.time() * 1000)
    today = dt.datetime.now(TZ).date()
    _in_thread(_month_so_far(stack.dsn, s, today, rng))

    # The last hour of every analog point; two days of the slopes, up to half an hour ago.
    series = _series(now, rng)
    by_site = {
        s["mine"]: ["GT-101", "GT-102", "HS-201"],
        s["pit"]: ["RG-1"],
        s["tank"]: ["LT-101", "LT-102", "TT-101", "PT-301", "GT-201"],
        s["dust"]: ["DP-1", "HT-1", "HT-2"],
    }
    for site, points in by_site.items():
        _publish(stack, site, [{"point": p, **r} for p in points for r in series[p]])
    rates = {
        "GNSS-01": lambda ago: 50 / (2 + ago),  # accelerating creep: 1/v reaches 0 two days from now
        "GNSS-02": lambda ago: 2.1,
        "GNSS-03": lambda ago: 1.2 + 0.1 * math.sin(ago * 6),
    }
    # The restarted evaluator replays the 24 h before the newest reading it had judged (`now`): the
    # slopes' readings lie 1 ms later than whole half-hours before it, so that a full window is replayed.
    slopes = {point: _slope(now + 1, rate) for point, rate in rates.items()}
    _publish(stack, s["pit"], [{"point": p, **r} for p, rows in slopes.items() for r in rows[:-1]])

    # People underground: ten at 302 (a major hazard: red), eight at 305 (warning), four at the shaft.
    placement = ["WF-302"] * 10 + ["WF-305"] * 8 + ["SHAFT"] * 4
    gw = gateway(stack, s["mine"], PASSWORD)
    events = [
        {"tag": f"T-{i:03d}", "ts": now - 300_000 + i * 10_000, "kind": "locate", "zone": zone}
        for i, zone in enumerate(placement, 1)
    ]
    gw.flush([gw.positions(events)])
    gw.close()

    for name, site, source, rule in (
        ("crowded", s["mine"], "WF-302", "headcount"),
        ("gas", s["mine"], "GT-101", None),
        ("tank", s["tank"], "LT-102", None),
        ("hopper", s["dust"], "HT-2", None),
        ("spike", s["tank"], "TT-101", None),
        ("flash", s["tank"], "GT-201", None),
        ("overdue", s["dust"], "DP-1", None),
    ):
        scene.alerts[name] = _alert(stack, site, source, rule)

    # The evaluator judges the last 10 minutes as they come; what is older it takes from the store
    # when it starts. Restarted, it has the slopes' two days, and the dust collector's alert, as
    # if raised yesterday afternoon and never closed: overdue since midnight.
    wait_for(lambda: _alert(stack, s["dust"], "DP-1")["cleared"], bool)
    stack.down("alerting")
    yesterday = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(15, 2, 17), TZ)
    _in_thread(_backdate(stack.dsn, scene.alerts["overdue"]["id"], yesterday))
    stack.up()
    latest = int(time.time() * 1000)  # after what the evaluator took as already judged
    _publish(stack, s["pit"], [{"point": p, "ts": latest, "value": rows[-1]["value"]} for p, rows in slopes.items()])
    scene.alerts["slope"] = _alert(stack, s["pit"], "GNSS-01")
    scene.alerts["overdue"] = wait_for(lambda: _alert(stack, s["dust"], "DP-1"), lambda a: a["overdue"])

    # The dispatch room at work: some acknowledged, one handled, two closed on time.
    _step(stack, scene.alerts["gas"], "acknowledge", "张调度", "已通知 302 采场撤人并加强通风")
    _step(stack, scene.alerts["tank"], "handle", "李值班", "已安排倒罐，液位回落中")
    for name in ("spike", "flash"):
        _step(stack, scene.alerts[name], "handle", "李值班", "现场复核为瞬时波动，探头已校准")
        _step(stack, scene.alerts[name], "close", "李值班", "复测正常")
    _hazards(stack, scene)
    return scene


def _in_thread(coroutine: Any) -> None:
    """Run a database coroutine beside Playwright's sync API, which owns this thread's loop."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, coroutine).result()


async def _backdate(dsn: str, alert_id: str, raised: dt.datetime) -> None:
    """Move an alert and its history back to `raised`, due at the end of that day."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            old = await conn.fetchval("SELECT raised_at FROM alerts WHERE id = $1::uuid", alert_id)
            due = dt.datetime.combine(raised.date() + dt.timedelta(days=1), dt.time(0), TZ)
            await conn.execute(
                "UPDATE alerts SET raised_at = $2, due_at = $3 WHERE id = $1::uuid", alert_id, raised, due
            )
            await conn.execute(
                "UPDATE alert_history SET at = at - ($2::timestamptz - $3::timestamptz) WHERE alert_id = $1::uuid",
                alert_id,
                old,
                raised,
            )
    finally:
        await conn.close()


def _hazards(stack: StackHandle, scene: Scene) -> None:
    """The month's hazard ledger: found by the monitoring and by an inspection, some rectified."""
    with stack.http() as c:
        for name in ("crowded", "overdue"):
            a = scene.alerts[name]
            r = c.post("/api/v1/hazards", json={"by": "安全科", "title": a["message"][:60], "alert_id": a["id"]})
            assert r.status_code == 201, r.text
        r = c.post(
            "/api/v1/hazards",
            json={"by": "应急管理局", "title": "储罐区防火堤破损", "site": scene.sites["tank"], "source": "inspection"},
        )
        assert r.status_code == 201, r.text
        assert (
            c.post(f"/api/v1/hazards/{r.json()['id']}/rectify", json={"by": "李值班", "note": "已修复"}).status_code
            == 200
        )
