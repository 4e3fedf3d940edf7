"""The dispatch room on a realistic scene (tests/ui/scene.py) at 1920×1080, checked and
photographed: the board, an alert page, a site page and the reports. `make screenshots` sets
SITEWATCH_SCREENSHOTS=docs/screenshots to refresh the README's pictures; otherwise they go to a
temporary folder."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import StackHandle
from tests.ui import scene as scenes
from tests.ui.conftest import LAPTOP, Ui


@pytest.fixture(scope="module")
def scene(stack: StackHandle) -> scenes.Scene:
    return scenes.build(stack)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("SITEWATCH_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def operator(stack: StackHandle, scene: scenes.Scene) -> str:
    return stack.token_for("operator", "--sites", ",".join(scene.codes), "--name", "市应急局 调度席")


def not_closed(stack: StackHandle, scene: scenes.Scene) -> list[dict[str, Any]]:
    with stack.http() as c:
        found = [c.get("/api/v1/alerts", params={"site": site, "limit": 1000}).json()["alerts"] for site in scene.codes]
    return [a for alerts in found for a in alerts if a["state"] != "closed"]


def settle(page: Page) -> None:
    """Every chart drawn, its entry animation over, before a picture is taken."""
    expect(page.locator(".chart:not([data-drawn='1'])")).to_have_count(0)


def test_board(stack: StackHandle, ui: Ui, scene: scenes.Scene, shots: Path) -> None:
    page = ui.page(operator(stack, scene))
    ui.open_board(page)
    rows = page.locator("tr.alert-row")
    expect(rows).to_have_count(len(not_closed(stack, scene)))  # the two closed ones are gone
    expect(rows.first).to_have_attribute("data-id", scene.alerts["crowded"]["id"])  # red, waiting
    expect(rows.nth(1)).to_have_attribute("data-id", scene.alerts["slope"]["id"])
    overdue = page.locator(f"tr.alert-row[data-id='{scene.alerts['overdue']['id']}']")
    expect(overdue).to_have_class(re.compile(r"\boverdue\b"))
    expect(overdue.locator("td.due")).to_contain_text("逾期")
    expect(page.locator(".summary .overdue-count")).to_have_text("逾期 1")
    settle(page)
    page.screenshot(path=shots / "board.png")
    laptop = ui.page(operator(stack, scene), viewport=LAPTOP)
    ui.open_board(laptop)
    expect(laptop.locator("tr.alert-row")).to_have_count(len(not_closed(stack, scene)))
    assert laptop.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), "the board overflows a laptop"


def test_alert_page(stack: StackHandle, ui: Ui, scene: scenes.Scene, shots: Path) -> None:
    page = ui.page(operator(stack, scene))
    ui.go(page, f"#/alerts/{scene.alerts['gas']['id']}")
    expect(page.locator("header.alert-head .state")).to_have_text("已签收")
    expect(page.locator(".readings-chart canvas")).to_be_attached()
    expect(page.locator("ol.history li").last).to_contain_text("已通知 302 采场撤人并加强通风")
    settle(page)
    page.screenshot(path=shots / "alert.png")


def test_site_page(stack: StackHandle, ui: Ui, scene: scenes.Scene, shots: Path) -> None:
    page = ui.page(operator(stack, scene))
    ui.go(page, f"#/sites/{scene.sites['mine']}")
    expect(page.locator("article.zone[data-zone='WF-302']")).to_have_attribute("data-state", "alarm")
    expect(page.locator("article.zone[data-zone='WF-305']")).to_have_attribute("data-state", "warning")
    expect(page.locator("table.points tr[data-point='GT-101'] td.pt-state .chip")).to_have_text("橙")
    settle(page)
    page.screenshot(path=shots / "site.png")
    ui.go(page, f"#/sites/{scene.sites['pit']}")
    slope = page.locator("table.slopes tr[data-point='GNSS-01']")
    expect(slope.locator("td.forecast")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    settle(page)
    page.screenshot(path=shots / "slope.png")


def test_reports_page(stack: StackHandle, ui: Ui, scene: scenes.Scene, shots: Path) -> None:
    page = ui.page(operator(stack, scene))
    ui.go(page, "#/reports")
    tank = page.locator(f"table.daily tr[data-site='{scene.sites['tank']}']")
    expect(tank.locator("td.closed_on_time")).to_have_text("2")
    expect(page.locator(".monthly-chart canvas")).to_be_attached()
    expect(page.locator(f"table.monthly tr[data-site='{scene.sites['tank']}'] td.inspection_rectified")).to_have_text(
        "1"
    )
    settle(page)
    page.screenshot(path=shots / "reports.png")
