"""The pages behind the board: an alert with its readings chart (threshold lines, the raise
marked) and history, a headcount alert with the zone's occupants, a site's zones and points,
the reports, the language switch and site-local times."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import StackHandle, site_catalog, unique
from tests.ui.conftest import LAPTOP, Ui, gateway, now_ms, publish, raised_alert, red_site, wait_for


def chart_option(page: Page, selector: str) -> Any:
    return page.evaluate(
        "sel => { const c = echarts.getInstanceByDom(document.querySelector(sel)); return c && c.getOption() }",
        selector,
    )


def test_the_alert_page_charts_the_readings_with_threshold_lines_and_the_raise(stack: StackHandle, ui: Ui) -> None:
    site = red_site(stack, "UIA", rule={"rule": "threshold", "above": [50, 80], "severities": [3, 4]})
    t = now_ms()
    publish(stack, site, [{"point": "P0", "ts": t - 60_000 + i * 10_000, "value": 20.0 + i} for i in range(5)])
    alert = raised_alert(stack, site, 85.0)
    with stack.http() as c:  # ingest stores the reading beside the evaluator raising the alert
        wait_for(lambda: c.get(f"/api/v1/alerts/{alert['id']}").json()["readings"], lambda r: len(r) == 6)
    page = ui.page(stack.token)
    ui.go(page, f"#/alerts/{alert['id']}")
    expect(page.locator("header.alert-head")).to_have_class(re.compile(r"\bsev-4\b"))
    expect(page.locator("header.alert-head h1")).to_contain_text(f"site {site} · P0 · 超限")
    expect(page.locator(".readings-chart canvas")).to_be_attached()
    option = wait_for(lambda: chart_option(page, ".readings-chart"), lambda o: o is not None)
    series = option["series"][0]
    assert [point[1] for point in series["data"]] == [20.0, 21.0, 22.0, 23.0, 24.0, 85.0]
    marks = series["markLine"]["data"]
    assert sorted(m["yAxis"] for m in marks if "yAxis" in m) == [50, 80]
    raise_marks = [m for m in marks if "xAxis" in m]
    assert len(raise_marks) == 1
    # The time axis is in the site's wall clock (UTC+8), not the browser's (Los Angeles here).
    assert raise_marks[0]["xAxis"] == series["data"][-1][0]
    wall = alert["raised_at"][11:19]
    expect(page.locator("dd.alert-raised_at")).to_have_text(f"{alert['raised_at'][:10]} {wall}")
    expect(page.locator("ol.history li")).to_have_count(1)
    expect(page.locator("ol.history li").first).to_contain_text("报警")
    expect(page.locator("header.alert-head .due")).to_have_text(re.compile(r"^剩 \d+:\d\d:\d\d$"))


def test_a_headcount_alert_shows_the_zones_occupants(stack: StackHandle, ui: Ui) -> None:
    site = unique("UIZ")
    doc = site_catalog(site, enterprise=unique("ENT-UI"), points=0)
    doc["tags"] = [{"code": f"T-{i:02d}", "site": site, "person": f"工人{i:02d}"} for i in range(10)]
    assert stack.load_catalog(doc).status_code == 200
    gw = gateway(stack, site)
    t = now_ms()
    gw.flush([gw.positions([{"tag": f"T-{i:02d}", "ts": t + i, "kind": "locate", "zone": "Z-1"} for i in range(10)])])
    gw.close()
    with stack.http() as c:
        alerts = wait_for(
            lambda: c.get("/api/v1/alerts", params={"site": site, "severity": 4}).json()["alerts"],
            lambda found: any(a["rule"] == "headcount" for a in found),
        )
    alert = next(a for a in alerts if a["rule"] == "headcount")
    page = ui.page(stack.token)
    ui.go(page, f"#/alerts/{alert['id']}")
    occupants = page.locator("table.occupants tbody tr")
    expect(occupants).to_have_count(10)
    expect(page.locator("section.occupants h2 small")).to_have_text("10 / 9")
    expect(occupants.first).to_contain_text("T-00")
    expect(page.locator("table.occupants")).to_contain_text("工人09")

    ui.go(page, f"#/sites/{site}")
    zone = page.locator("article.zone[data-zone='Z-1']")
    expect(zone).to_have_attribute("data-state", "alarm")
    expect(zone.locator(".headcount")).to_have_text("10")
    expect(zone.locator(".limit")).to_have_text(" / 9")
    # the zone card opens who is in the zone, and closes it again
    zone.click()
    expect(page.locator("section.occupants table.occupants tbody tr")).to_have_count(10)
    expect(zone).to_have_class(re.compile(r"\bopen\b"))
    zone.click()
    expect(page.locator("section.occupants")).to_have_count(0)


def test_the_site_page_shows_points_with_value_state_and_sparkline(stack: StackHandle, ui: Ui) -> None:
    site = red_site(stack, "UIP", points=2)
    publish(stack, site, [{"point": "P1", "ts": now_ms(), "value": 12.5}])
    raised_alert(stack, site, 77.0)
    page = ui.page(stack.token, viewport=LAPTOP)
    ui.go(page, f"#/sites/{site}")
    p0 = page.locator("table.points tr[data-point='P0']")
    p1 = page.locator("table.points tr[data-point='P1']")
    expect(p0.locator("td.pt-value")).to_have_text("77 %LEL")
    expect(p0.locator("td.pt-state .chip")).to_have_text("红")
    expect(p0.locator("td.pt-state")).to_contain_text("未签收")
    expect(p1.locator("td.pt-value")).to_have_text("12.5 %LEL")
    expect(p1.locator("td.pt-state")).to_have_text("正常")
    expect(p0.locator("svg.spark path")).to_have_count(1)
    expect(p0.locator("td.thresholds")).to_have_text("≥50")
    # A new reading shows without a reload: the page refreshes on its site's alert events.
    publish(stack, site, [{"point": "P1", "ts": now_ms(), "value": 66.0}])
    expect(p1.locator("td.pt-state .chip")).to_have_text("红")
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), "wider than a laptop screen"


def test_reports_show_the_days_figures_and_download(stack: StackHandle, ui: Ui) -> None:
    site = red_site(stack, "UIR")
    raised_alert(stack, site)
    page = ui.page(stack.token)
    ui.go(page, "#/reports")
    row = page.locator(f"table.daily tr[data-site='{site}']")
    expect(row.locator("td.raised")).to_have_text("1")
    expect(row.locator("td.open")).to_have_text("1")
    expect(page.locator(".daily-chart canvas")).to_be_attached()
    expect(page.locator(".monthly-chart canvas")).to_be_attached()
    expect(page.locator(f"table.monthly tr[data-site='{site}'] td.alerts_raised")).to_have_text("1")
    with page.expect_download() as download:
        page.locator(".report-daily button.download-csv").click()
    assert re.fullmatch(r"daily-\d{4}-\d\d-\d\d\.csv", download.value.suggested_filename)
    assert site in Path(download.value.path()).read_text(encoding="utf-8-sig")
    with page.expect_download() as download:
        page.locator(".report-monthly button.download-xlsx").click()
    assert download.value.suggested_filename.endswith(".xlsx")


def test_chinese_by_default_and_an_english_switch_that_stays(stack: StackHandle, ui: Ui) -> None:
    page = ui.page(stack.token)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("header.top nav a[data-route=board]")).to_have_text("报警看板")
    expect(page.locator("table.alerts th.due")).to_have_text("剩余处置时间")
    page.locator("header.top button.lang").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("header.top nav a[data-route=board]")).to_have_text("Alert board")
    expect(page.locator("table.alerts th.due")).to_have_text("Time left")
    expect(page.locator("header.top .who .role")).to_have_text("Admin")
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("table.alerts th.actions")).to_have_text("Actions")
    page.locator("header.top button.lang").click()
    expect(page.locator("table.alerts th.actions")).to_have_text("操作")


def test_the_mute_switch_stays_and_the_ui_loads_without_echarts(stack: StackHandle, ui: Ui) -> None:
    page = ui.page(stack.token)
    mute = page.locator("header.top button.mute")
    expect(mute).to_have_attribute("aria-pressed", "false")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(page.locator("header.top button.mute")).to_have_attribute("aria-pressed", "true")
    # Without node_modules the API answers 404 for ECharts: the pages still work and say so.
    page.route("**/vendor/echarts.min.js", lambda route: route.fulfill(status=404, body="not installed"))
    page.reload()
    ui.go(page, "#/reports")
    expect(page.locator(".daily-chart .charts-unavailable")).to_contain_text("图表组件不可用")
    expect(page.locator("table.daily")).to_be_visible()
